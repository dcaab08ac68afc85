"""Softmax layer."""

from gpudl.errors import invalid_value
from gpudl.frontend.layers.activation import Activation
from gpudl.frontend.layers.base import Layer


class Softmax(Activation):
    """a = exp(z) / sum exp(z) over the last axis (the model may fuse it into the loss).

    Args:
        axis: -1 (the only axis gpudl supports: the features of (batch, features)).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        if axis != -1:
            raise invalid_value("axis", "-1 (gpudl's softmax runs over the last axis)", axis, f"Softmax '{self.name}'")
        self.axis = axis

    def get_config(self):
        return {**Layer.get_config(self), "axis": self.axis}
