"""Reshape layer."""

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend.layers.base import Layer


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (batch axis kept); dx = dy reshaped back.

    Args:
        target_shape: tuple of positive ints, at most one -1 (inferred), batch axis excluded.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = (target_shape,) if isinstance(target_shape, (int, np.integer)) else tuple(target_shape)
        valid = all(isinstance(d, (int, np.integer)) and (d > 0 or d == -1) for d in target_shape)
        if not target_shape or not valid or sum(d == -1 for d in target_shape) > 1:
            raise invalid_value("target_shape", "a tuple of positive ints with at most one -1", target_shape,
                                f"Reshape '{self.name}'")
        self.target_shape = tuple(int(d) for d in target_shape)

    def output_feature_shape(self, feature_shape):
        size, known = int(np.prod(feature_shape)), int(np.prod([d for d in self.target_shape if d != -1]))
        if (size % known if -1 in self.target_shape else size != known):
            raise ValueError(f"Reshape '{self.name}' cannot reshape inputs of shape (None, "
                             f"{', '.join(map(str, feature_shape))}) to target_shape={self.target_shape}: "
                             f"{size} values per sample.")
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def build(self, input_shape):
        self.output_feature_shape(input_shape)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.output_feature_shape(x.shape[1:]))

    def backward(self, dy):
        return dy.reshape(self._shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
