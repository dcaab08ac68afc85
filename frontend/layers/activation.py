"""Activation: applies an activation function (by name or gpudl.activations function)."""

from gpudl.frontend import activations
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.fused_block import inside_active_block


class Activation(Layer):
    """Applies an activation function elementwise (softmax, log_softmax: over the last axis).

    Args:
        activation: a name (see gpudl.activations: relu, gelu, elu, selu, swish, ...) or
            one of gpudl.activations' functions.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.serialize(activation)
        self._activation, self._activation_backward = activations.forward_backward(
            activation if callable(activation) else self.activation)

    def forward(self, x, training=False, logits=False):
        """`logits=True` passes x through (the model fuses the activation into the loss)."""
        self._skip_activation = logits or inside_active_block(self)  # fused: its batch-norm applied it
        self._z = x
        self._a = x if self._skip_activation else self._activation(x)
        return self._a

    def backward(self, dy):
        return dy if self._skip_activation else self._activation_backward(dy, self._z, self._a)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}
