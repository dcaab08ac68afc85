"""The Layer base class and the Parameter it owns.

A layer is `build` (shapes and parameters), `forward`, `backward`:
    build(input_shape)             declare parameters with add_weight / add_state
    forward(x, training) -> y      keep what backward needs on self
    backward(dy) -> dx             write parameter gradients into `param.grad`; dx may be
                                   None when `self.input_gradient_needed` is False
Shapes exclude the batch axis. Subclass it for a custom layer; the gradient
checker (gpudl.gradient_check) verifies its backward pass.
"""

import re

import numpy as np

from gpudl.backend import get_backend

_name_counts = {}


def unique_name(base):
    """dense, dense_1, dense_2, ... like Keras."""
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def snake_case(class_name):
    """BatchNormalization -> batch_normalization, ReLU -> re_lu (Keras's rule)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Parameter:
    """A named weight of a layer: `value` and `grad` are views into the model's arena
    (for trainable parameters) or a plain array (for state such as moving_mean)."""

    def __init__(self, name, value, trainable=True, regularizer=None):
        self.name = name
        self.value = value
        self.grad = None
        self.trainable = trainable
        self.regularizer = regularizer

    @property
    def shape(self):
        return tuple(self.value.shape)

    def __repr__(self):
        return f"<Parameter {self.name} shape={self.shape} trainable={self.trainable}>"


class Layer:
    """Base class of all layers. See the module docstring for the contract."""

    def __init__(self, name=None, trainable=True, dtype=None):
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = trainable
        self.dtype = dtype
        self.built = False
        self.input_shape = None
        self.weights = []  # Parameters in Keras's get_weights order
        self.input_gradient_needed = True  # the model clears it when nothing below learns

    # -- building -----------------------------------------------------------
    def build(self, input_shape):
        """Create parameters for inputs of `input_shape` (batch axis excluded)."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def build_for(self, input_shape, dtype):
        """Build once for `input_shape` in `dtype`; returns the output shape."""
        if not self.built:
            self.dtype = np.dtype(self.dtype or dtype).name
            self.input_shape = tuple(input_shape)
            self.build(self.input_shape)
            self.built = True
        return self.compute_output_shape(tuple(input_shape))

    def add_weight(self, name, shape, initializer, regularizer=None, trainable=True):
        """Declare a parameter, initialized now on the host, moved into the arena later."""
        value = initializer(tuple(shape), self.dtype)
        param = Parameter(f"{self.name}/{name}", value, trainable=trainable, regularizer=regularizer)
        self.weights.append(param)
        return param

    # -- running ------------------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training)")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} must implement backward(dy)")

    @property
    def trainable_weights(self):
        return [p for p in self.weights if p.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [p for p in self.weights if not (p.trainable and self.trainable)]

    def regularization_loss(self):
        """sum of the penalties of this layer's regularized parameters."""
        return sum(p.regularizer(p.value) for p in self.weights if p.regularizer is not None)

    def add_regularization_gradients(self):
        """grad += d(penalty)/d(value) for each regularized parameter."""
        for p in self.weights:
            if p.regularizer is not None:
                p.grad += p.regularizer.gradient(p.value)

    # -- describing ---------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def count_params(self):
        return int(sum(np.prod(p.shape) for p in self.weights))

    @property
    def xp(self):
        return get_backend().xp

    @property
    def ops(self):
        return get_backend().ops

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"
