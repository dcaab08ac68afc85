"""Dense: a = g(x W + b), W of shape (in, out)."""

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend import activations, constraints, initializers, regularizers
from gpudl.frontend.layers import fused_block
from gpudl.frontend.layers.base import Layer


class Dense(Layer):
    """Fully connected layer: `a = activation(x @ kernel + bias)`.

    Args:
        units: positive int, output width.
        activation: an activation name or gpudl.activations function; None for linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializer names, Keras dicts or objects.
        kernel_regularizer, bias_regularizer: regularizers whose penalties join the loss.
        activity_regularizer: a regularizer of the output `a`; as in Keras 3 its penalty
            is divided by the batch size, and it counts in `regularization_loss()` from the
            last forward pass.
        kernel_constraint, bias_constraint: constraints applied after each optimizer step.

    Call arguments:
        x: (batch, in) array.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise invalid_value("units", "a positive integer", units, f"Dense '{self.name}'")
        self.units = int(units)
        self.activation = activations.serialize(activation)
        self._activation, self._activation_backward = activations.forward_backward(
            activation if callable(activation) else self.activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense '{self.name}' expects inputs of shape (batch, features); "
                             f"received feature shape {input_shape}. Add a Flatten layer first.")
        self.kernel = self.add_weight("kernel", (input_shape[0], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)

    def output_feature_shape(self, feature_shape):
        return (self.units,)

    def forward(self, x, training=False, logits=False):
        """`logits=True` returns z, skipping the activation (the model fuses it into the loss)."""
        z = x @ self.kernel.value
        folded = None if logits else fused_block.dense_forward(self, z, training)
        if folded is not None:  # bias add, ReLU [and dropout] in one pass (gpudl.frontend.layers.fusion)
            self._x, self._z, self._a, self._skip_activation = x, None, folded, False
            return folded
        if self.use_bias:
            z += self.bias.value
        self._x, self._z = x, z
        self._skip_activation = logits
        needs_a = not logits or self.activity_regularizer is not None
        self._a = self._activation(z) if needs_a else None
        self._regularize_activity(self._a)
        return z if logits else self._a

    def backward(self, dy):
        dz = fused_block.dense_backward(self, dy, self._a)  # None unless the forward ran fused
        if dz is not None:
            pass
        elif not self._skip_activation:
            dz = self._activation_backward(self._activity_gradient(dy), self._z, self._a)
        elif self.activity_regularizer is None:
            dz = dy  # dL/dz from the fused loss
        else:  # fused loss: dL/dz plus the activity penalty's gradient through the activation
            dz = dy + self._activation_backward(self._activity_gradient(0 * self._a), self._z, self._a)
        self.xp.matmul(self._x.T, dz, out=self.kernel.grad)
        if self.use_bias:
            dz.sum(axis=0, out=self.bias.grad)
        return dz @ self.kernel.value.T if self.input_gradient_needed else None

    def get_config(self):
        config = {**super().get_config(), "units": self.units, "activation": self.activation,
                  "use_bias": self.use_bias,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer),
                  "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                  "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                  "kernel_constraint": constraints.serialize(self.kernel_constraint),
                  "bias_constraint": constraints.serialize(self.bias_constraint)}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config
