"""Keras-style layers; subclass Layer for your own (build / forward / backward)."""

from gpudl.frontend.layers.activation import Activation, ReLU, Softmax
from gpudl.frontend.layers.base import Layer, Parameter
from gpudl.frontend.layers.batch_normalization import BatchNormalization
from gpudl.frontend.layers.dense import Dense
from gpudl.frontend.layers.dropout import Dropout
from gpudl.frontend.layers.flatten import Flatten
from gpudl.frontend.layers.input import Input
from gpudl.frontend.layers.normalization import Normalization

__all__ = ["Activation", "BatchNormalization", "Dense", "Dropout", "Flatten", "Input", "Layer",
           "Normalization", "Parameter", "ReLU", "Softmax"]

LAYER_CLASSES = {cls.__name__: cls for cls in (Activation, BatchNormalization, Dense, Dropout, Flatten,
                                                 Normalization, ReLU, Softmax)}
