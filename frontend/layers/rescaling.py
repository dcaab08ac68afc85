"""Rescaling layer."""

import numpy as np

from gpudl.frontend.layers.base import Layer


class Rescaling(Layer):
    """y = x * scale + offset (e.g. scale=1/255 for pixels);  dx = dy * scale.

    Args:
        scale: float, or an array broadcast over the last axis.
        offset: float, or an array broadcast over the last axis.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def _constant(self, value, dtype):
        return self.xp.asarray(np.asarray(value, dtype=dtype))

    def forward(self, x, training=False):
        self._scale = self._constant(self.scale, x.dtype)
        return x * self._scale + self._constant(self.offset, x.dtype)

    def backward(self, dy):
        return dy * self._scale

    def get_config(self):
        def plain(value):
            return np.asarray(value).tolist() if np.ndim(value) else value

        return {**super().get_config(), "scale": plain(self.scale), "offset": plain(self.offset)}
