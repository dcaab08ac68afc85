"""ActivityRegularization layer."""

from gpudl.frontend import regularizers
from gpudl.frontend.layers.base import Layer


class ActivityRegularization(Layer):
    """The identity, adding a penalty on its input to the loss (Keras 3's rule: divided
    by the batch size):
        penalty = (l1 * sum|x| + l2 * sum x^2) / batch;   dx = dy + (l1 sign(x) + 2 l2 x) / batch.
    The penalty of the last forward pass counts in regularization_loss().

    Args:
        l1, l2: non-negative floats.
    """

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.activity_regularizer = regularizers.L1L2(l1=l1, l2=l2)
        self.l1, self.l2 = l1, l2

    def forward(self, x, training=False):
        self._regularize_activity(x)
        return x

    def backward(self, dy):
        return self._activity_gradient(dy)

    def get_config(self):
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}
