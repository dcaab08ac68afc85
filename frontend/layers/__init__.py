"""Keras-style layers; subclass Layer for your own (build / forward / backward)."""

from gpudl.frontend.layers.activation import Activation
from gpudl.frontend.layers.activity_regularization import ActivityRegularization
from gpudl.frontend.layers.alpha_dropout import AlphaDropout
from gpudl.frontend.layers.base import Layer, Parameter
from gpudl.frontend.layers.batch_normalization import BatchNormalization
from gpudl.frontend.layers.dense import Dense
from gpudl.frontend.layers.dropout import Dropout
from gpudl.frontend.layers.elu import ELU
from gpudl.frontend.layers.flatten import Flatten
from gpudl.frontend.layers.gaussian_dropout import GaussianDropout
from gpudl.frontend.layers.gaussian_noise import GaussianNoise
from gpudl.frontend.layers.input import Input
from gpudl.frontend.layers.input_layer import InputLayer
from gpudl.frontend.layers.layer_normalization import LayerNormalization
from gpudl.frontend.layers.leaky_relu import LeakyReLU
from gpudl.frontend.layers.normalization import Normalization
from gpudl.frontend.layers.prelu import PReLU
from gpudl.frontend.layers.relu import ReLU
from gpudl.frontend.layers.rescaling import Rescaling
from gpudl.frontend.layers.reshape import Reshape
from gpudl.frontend.layers.softmax import Softmax

__all__ = ["Activation", "ActivityRegularization", "AlphaDropout", "BatchNormalization", "Dense", "Dropout", "ELU",
           "Flatten", "GaussianDropout", "GaussianNoise", "Input", "InputLayer", "Layer", "LayerNormalization",
           "LeakyReLU", "Normalization", "PReLU", "Parameter", "ReLU", "Rescaling", "Reshape", "Softmax"]

LAYER_CLASSES = {cls.__name__: cls for cls in (
    Activation, ActivityRegularization, AlphaDropout, BatchNormalization, Dense, Dropout, ELU, Flatten,
    GaussianDropout, GaussianNoise, InputLayer, LayerNormalization, LeakyReLU, Normalization, PReLU, ReLU, Rescaling,
    Reshape, Softmax)}
