"""ELU layer."""

from gpudl.frontend import activations
from gpudl.frontend.layers.base import Layer


class ELU(Layer):
    """y = x if x > 0 else alpha * (exp(x) - 1);  dy/dx = 1 or y + alpha.

    Args:
        alpha: float, the value y approaches for very negative x is -alpha.
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(self, x, training=False):
        self._x = x
        self._y = activations.elu(x, self.alpha)
        return self._y

    def backward(self, dy):
        return activations.elu_backward(dy, self._x, self._y, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
