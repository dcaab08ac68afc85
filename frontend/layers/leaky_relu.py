"""LeakyReLU layer."""

import warnings

from gpudl.errors import invalid_value
from gpudl.frontend import activations
from gpudl.frontend.layers.base import Layer


class LeakyReLU(Layer):
    """y = x if x > 0 else negative_slope * x;  dy/dx = 1 or negative_slope.

    Args:
        negative_slope: float >= 0 (Keras's layer default 0.3; `alpha=` is its deprecated name).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or not negative_slope >= 0:
            raise invalid_value("negative_slope", "a non-negative float", negative_slope, f"LeakyReLU '{self.name}'")
        self.negative_slope = negative_slope

    def forward(self, x, training=False):
        self._x = x
        return activations.leaky_relu(x, self.negative_slope)

    def backward(self, dy):
        return activations.leaky_relu_backward(dy, self._x, None, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
