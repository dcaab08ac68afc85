"""Keras-style layers; subclass Layer for your own (build / forward / backward)."""

from gpudl import registry
from gpudl.errors import NotInGpudl
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
from gpudl.frontend.layers.identity import Identity
from gpudl.frontend.layers.input import Input
from gpudl.frontend.layers.input_layer import InputLayer
from gpudl.frontend.layers.layer_normalization import LayerNormalization
from gpudl.frontend.layers.leaky_relu import LeakyReLU
from gpudl.frontend.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add,
                                           average, concatenate, dot, maximum, minimum, multiply, subtract)
from gpudl.frontend.layers.normalization import Normalization
from gpudl.frontend.layers.prelu import PReLU
from gpudl.frontend.layers.relu import ReLU
from gpudl.frontend.layers.rescaling import Rescaling
from gpudl.frontend.layers.reshape import Reshape
from gpudl.frontend.layers.softmax import Softmax
from gpudl.frontend.layers.unit_normalization import UnitNormalization

__all__ = ["Activation", "ActivityRegularization", "Add", "AlphaDropout", "Average", "BatchNormalization", "Concatenate",
           "Dense", "Dot", "Dropout", "ELU", "Flatten", "GaussianDropout", "GaussianNoise", "Identity", "Input",
           "InputLayer", "Layer", "LayerNormalization", "LeakyReLU", "Maximum", "Minimum", "Multiply", "Normalization",
           "PReLU", "Parameter", "ReLU", "Rescaling", "Reshape", "Softmax", "Subtract", "UnitNormalization", "add",
           "average", "concatenate", "deserialize", "dot", "maximum", "minimum", "multiply", "serialize", "subtract"]

LAYER_CLASSES = registry.register("layer", (
    Activation, ActivityRegularization, AlphaDropout, BatchNormalization, Dense, Dropout, ELU, Flatten,
    GaussianDropout, GaussianNoise, Identity, InputLayer, LayerNormalization, LeakyReLU, Normalization, PReLU, ReLU,
    Rescaling, Reshape, Softmax, UnitNormalization,
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract))  # the merge layers


def serialize(layer):
    """Keras's dict for a layer: module ("keras.layers" for gpudl's own; a custom layer's
    Python module, None for __main__), class_name, config (get_config), registered_name
    (None for gpudl's own, the class name for a custom layer) and, once built,
    build_config {"input_shape": (None, ...)}."""
    if not isinstance(layer, Layer):
        raise TypeError(f"gpudl.layers.serialize expects a gpudl Layer; received {layer!r}.")
    cls = type(layer)
    own = LAYER_CLASSES.get(cls.__name__) is cls
    module = "keras.layers" if own else (None if cls.__module__ == "__main__" else cls.__module__)
    config = {"module": module, "class_name": cls.__name__, "config": layer.get_config(),
              "registered_name": None if own else cls.__name__}
    if layer.built:
        config["build_config"] = {"input_shape": (None, *layer.input_shape)}
    return config


def deserialize(config, custom_objects=None):
    """The layer a dict from serialize describes: its class from `custom_objects` (by
    registered_name or class_name) or gpudl's layers (never imported by module name),
    rebuilt with from_config, and built when the dict has a build_config."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"`gpudl.layers.deserialize` expects a dict with 'class_name' and 'config' (as "
                         f"gpudl.layers.serialize returns); received {config!r}.")
    cls = (registry.find(config.get("registered_name"), ("layer",), custom_objects)
           or registry.find(config["class_name"], ("layer",), custom_objects))
    if cls is None:
        known = {**LAYER_CLASSES, **(custom_objects or {})}
        raise TypeError(f"Could not locate class {config['class_name']!r}: pass it in custom_objects. Known layers: "
                        f"{', '.join(sorted(known))}")
    layer = cls.from_config(dict(config.get("config") or {}))
    if not isinstance(layer, Layer):
        raise ValueError(f"`gpudl.layers.deserialize` was passed a `config` object that is not a gpudl Layer. "
                         f"Received: {config}")
    input_shape = (config.get("build_config") or {}).get("input_shape")
    if input_shape is not None:
        layer.build(tuple(input_shape))
    return layer


# Keras layers that an MLP library does not have: reaching for one says so, and what gpudl offers.
NOT_IN_GPUDL = {
    **dict.fromkeys(("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                     "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D", "MaxPooling1D",
                     "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
                     "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                     "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "SpatialDropout2D"),
                    "convolution"),
    **dict.fromkeys(("LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "LSTMCell", "GRUCell", "SimpleRNNCell",
                     "ConvLSTM2D", "TimeDistributed", "Embedding", "Attention", "MultiHeadAttention"),
                    "recurrent and sequence"),
    "Lambda": "code-wrapping (a Lambda's function needs autodiff)",
}


def __getattr__(name):
    if name in NOT_IN_GPUDL:
        raise NotInGpudl(
            f"gpudl has no {name}: {NOT_IN_GPUDL[name]} layers are not part of gpudl, a library for multilayer "
            f"perceptrons (Dense, BatchNormalization, Dropout, ... in a Sequential). A layer of your own is a "
            f"gpudl.layers.Layer with build(input_shape), forward(x, training) and backward(dy).")
    raise AttributeError(f"module 'gpudl.layers' has no attribute {name!r}")
