"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend.layers.base import Layer


class Flatten(Layer):
    """Flattens all axes but the batch axis (row-major, Keras's "channels_last" order).

    Args:
        data_format: None or "channels_last" (gpudl has no channels_first layouts).
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise invalid_value("data_format", "None or 'channels_last'", data_format, f"Flatten '{self.name}'")
        self.data_format = data_format

    def output_feature_shape(self, feature_shape):
        return (int(np.prod(feature_shape)),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
