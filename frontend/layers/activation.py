"""Activation layers: Activation(name), ReLU, Softmax."""

from gpudl.frontend import activations
from gpudl.frontend.layers.base import Layer


class Activation(Layer):
    """Applies an activation function elementwise (softmax: over the last axis).

    Args:
        activation: one of relu, leaky_relu, tanh, sigmoid, softmax, linear.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation or "linear"
        self._activation, self._activation_backward = activations.get(self.activation)

    def forward(self, x, training=False, logits=False):
        """`logits=True` passes x through (the model fuses the activation into the loss)."""
        self._skip_activation = logits
        self._a = x if logits else self._activation(x)
        return self._a

    def backward(self, dy):
        return dy if self._skip_activation else self._activation_backward(dy, self._a)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(Activation):
    """a = max(z, 0)."""

    def __init__(self, **kwargs):
        super().__init__("relu", **kwargs)

    def get_config(self):
        return Layer.get_config(self)


class Softmax(Activation):
    """a = exp(z) / sum exp(z) over the last axis."""

    def __init__(self, **kwargs):
        super().__init__("softmax", **kwargs)

    def get_config(self):
        return Layer.get_config(self)
