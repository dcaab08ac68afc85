"""UnitNormalization layer."""

import numpy as np

from gpudl.frontend.layers.base import Layer

EPSILON = 1e-12  # Keras's floor of the norm (ops.normalize(..., epsilon=1e-12))


class UnitNormalization(Layer):
    """Scales each input to unit L2 norm over `axis` (Keras's ops.normalize):
        y = x * r,   r = min(1 / sqrt(sum x^2), 1 / 1e-12)   (the sum over `axis`)
        dx = r * (dy - y * sum(dy * y))   where the norm exceeds 1e-12, else dx = dy * 1e12.

    Args:
        axis: int or list/tuple of ints, the axes to normalize over (Keras's counting:
            0 is the batch axis; default -1, the features).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and all(isinstance(a, (int, np.integer)) for a in axis):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            self.axis = int(axis)
        else:
            raise TypeError(f"UnitNormalization '{self.name}': Invalid value for `axis` argument: expected an int or "
                            f"a list/tuple of ints. Received: axis={axis!r}")

    def _axes(self):
        return tuple(self.axis) if isinstance(self.axis, list) else (self.axis,)

    def build(self, input_shape):
        rank = len(input_shape) + 1
        if any(not -rank <= a < rank for a in self._axes()):
            raise ValueError(f"UnitNormalization '{self.name}': Axis {self.axis} is out of bounds for input shape "
                             f"(None, {', '.join(map(str, input_shape))}).")

    def output_feature_shape(self, feature_shape):
        return tuple(feature_shape)

    def forward(self, x, training=False):
        square_sum = (x * x).sum(axis=self._axes(), keepdims=True)
        with np.errstate(divide="ignore"):
            self._inverse_norm = self.xp.minimum(1 / self.xp.sqrt(square_sum), x.dtype.type(1 / EPSILON))
        self._y = x * self._inverse_norm
        return self._y

    def backward(self, dy):
        inverse_norm, y = self._inverse_norm, self._y
        projection = (dy * y).sum(axis=self._axes(), keepdims=True)
        floored = inverse_norm == inverse_norm.dtype.type(1 / EPSILON)  # norm <= 1e-12: r is a constant
        return inverse_norm * (dy - self.xp.where(floored, 0, y * projection))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
