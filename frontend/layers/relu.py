"""ReLU layer (Keras's arguments)."""

from gpudl.frontend import activations
from gpudl.errors import invalid_value
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.fused_block import inside_active_block


class ReLU(Layer):
    """Rectified linear unit with Keras's options:
        y = max_value                        if x >= max_value
        y = x                                if threshold <= x < max_value
        y = negative_slope * (x - threshold) otherwise
    dy/dx is 0, 1 and negative_slope on the three pieces.

    Args:
        max_value: optional positive float cap.  negative_slope: float >= 0.
        threshold: non-negative float, where the linear piece starts.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        where = f"ReLU '{self.name}'"
        if max_value is not None and not max_value >= 0:
            raise invalid_value("max_value", "a non-negative float or None", max_value, where)
        if negative_slope is None or not negative_slope >= 0:
            raise invalid_value("negative_slope", "a non-negative float", negative_slope, where)
        if threshold is None or not threshold >= 0:  # Keras: "cannot be None or a negative value"
            raise invalid_value("threshold", "a non-negative float", threshold, where)
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        self.activation = "relu" if (max_value, negative_slope, threshold) == (None, 0.0, 0.0) else None

    def _slope(self, x):
        """dy/dx on each piece, in x's dtype."""
        slope = (x >= self.threshold) + (x < self.threshold) * x.dtype.type(self.negative_slope)
        if self.max_value is not None:
            slope = slope * (x < self.max_value)
        return slope.astype(x.dtype, copy=False)

    def forward(self, x, training=False):
        if inside_active_block(self):  # its batch-norm applied it (gpudl.frontend.layers.fusion)
            return x
        self._x = x
        if self.activation == "relu":  # the default ReLU: max(x, 0), one pass (the Dense activation's code)
            return activations.relu(x)
        y = self.xp.where(x >= self.threshold, x, x.dtype.type(self.negative_slope) * (x - x.dtype.type(self.threshold)))
        return y if self.max_value is None else self.xp.minimum(y, x.dtype.type(self.max_value))

    def backward(self, dy):
        if inside_active_block(self):
            return dy
        if self.activation == "relu":
            return activations.relu_backward(dy, self._x, None)
        return dy * self._slope(self._x)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}
