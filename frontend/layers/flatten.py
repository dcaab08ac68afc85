"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

import numpy as np

from gpudl.frontend.layers.base import Layer


class Flatten(Layer):
    """Flattens all axes but the batch axis."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)
