"""Dense: a = g(x W + b), W of shape (in, out)."""

from gpudl.errors import invalid_value
from gpudl.frontend import activations, initializers, regularizers
from gpudl.frontend.layers.base import Layer


class Dense(Layer):
    """Fully connected layer: `a = activation(x @ kernel + bias)`.

    Args:
        units: positive int, output width.
        activation: name of an activation (see gpudl.frontend.activations), None for linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializer names or objects.
        kernel_regularizer: a regularizer (its penalty joins the loss), or None.

    Call arguments:
        x: (batch, in) array.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise invalid_value("units", "a positive integer", units, f"Dense '{self.name}'")
        self.units = units
        self.activation = activation or "linear"
        self._activation, self._activation_backward = activations.get(self.activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense '{self.name}' expects inputs of shape (batch, features); "
                             f"received feature shape {input_shape}. Add a Flatten layer first.")
        self.kernel = self.add_weight("kernel", (input_shape[0], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def forward(self, x, training=False, logits=False):
        """`logits=True` skips the activation (the model fuses it into the loss)."""
        z = x @ self.kernel.value
        if self.use_bias:
            z += self.bias.value
        self._x = x
        self._a = z if logits else self._activation(z)
        self._skip_activation = logits
        return self._a

    def backward(self, dy):
        dz = dy if self._skip_activation else self._activation_backward(dy, self._a)
        self.xp.matmul(self._x.T, dz, out=self.kernel.grad)
        if self.use_bias:
            dz.sum(axis=0, out=self.bias.grad)
        return dz @ self.kernel.value.T if self.input_gradient_needed else None

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("kernel_initializer", "bias_initializer"):
            config[key] = initializers.deserialize(config[key])
        config["kernel_regularizer"] = regularizers.deserialize(config["kernel_regularizer"])
        return cls(**config)
