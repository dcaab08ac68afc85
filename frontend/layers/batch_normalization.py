"""Batch normalization over the batch axis (Keras defaults momentum=0.99, epsilon=1e-3)."""

from gpudl.errors import check_rate, check_positive
from gpudl.frontend import initializers
from gpudl.frontend.layers.base import Layer, Parameter


class BatchNormalization(Layer):
    """Normalizes each feature with the mini-batch mean and biased variance in
    training, and with their exponentially weighted averages at inference:
        y = gamma * (x - mu) / sqrt(var + epsilon) + beta
        moving = momentum * moving + (1 - momentum) * batch statistic

    Args:
        momentum: float in [0, 1), weight of the old moving statistics.
        epsilon: positive float added to the variance.
        center: learn beta (else beta = 0).  scale: learn gamma (else gamma = 1).

    Call arguments:
        x: (batch, features). training: batch statistics if True, moving ones if False.
        A layer with trainable=False always runs in inference mode (as in Keras).
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        where = f"BatchNormalization '{self.name}'"
        self.momentum = check_rate("momentum", momentum, where)
        self.epsilon = check_positive("epsilon", epsilon, where)
        self.center, self.scale = center, scale

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"BatchNormalization '{self.name}' expects (batch, features) inputs; "
                             f"received feature shape {input_shape}.")
        shape = input_shape
        self.gamma = (self.add_weight("gamma", shape, initializers.Ones()) if self.scale
                      else Parameter("gamma", initializers.Ones()(shape, self.dtype), trainable=False))
        self.beta = (self.add_weight("beta", shape, initializers.Zeros()) if self.center
                     else Parameter("beta", initializers.Zeros()(shape, self.dtype), trainable=False))
        self.moving_mean = self.add_weight("moving_mean", shape, initializers.Zeros(), trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, initializers.Ones(), trainable=False)

    def forward(self, x, training=False):
        self._training = training and self.trainable
        if not self._training:
            return self.ops.batchnorm_forward_infer(x, self.gamma.value, self.beta.value,
                                                    self.moving_mean.value, self.moving_variance.value,
                                                    self.epsilon)
        y, self._mean, self._rstd = self.ops.batchnorm_forward_train(
            x, self.gamma.value, self.beta.value, self.moving_mean.value, self.moving_variance.value,
            self.momentum, self.epsilon)
        self._x = x
        return y

    def backward(self, dy):
        if not self._training:  # inference mode: a fixed affine map per feature
            return dy * (self.gamma.value / self.xp.sqrt(self.moving_variance.value + self.epsilon))
        dx, dgamma, dbeta = self.ops.batchnorm_backward(dy, self._x, self.gamma.value, self.beta.value,
                                                        self._mean, self._rstd)
        if self.gamma.grad is not None:
            self.gamma.grad[...] = dgamma
        if self.beta.grad is not None:
            self.beta.grad[...] = dbeta
        return dx

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
