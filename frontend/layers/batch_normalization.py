"""Batch normalization over the batch axis (Keras defaults momentum=0.99, epsilon=1e-3)."""

from gpudl import collectives
from gpudl.errors import check_rate, check_positive, invalid_value
from gpudl.frontend import constraints, initializers, regularizers
from gpudl.frontend.layers import fused_block as fusion
from gpudl.frontend.layers import global_batch_statistics
from gpudl.frontend.layers.base import Layer, Parameter


class BatchNormalization(Layer):
    """Normalizes each feature with the mini-batch mean and biased variance in
    training, and with their exponentially weighted averages at inference:
        y = gamma * (x - mu) / sqrt(var + epsilon) + beta
        moving = momentum * moving + (1 - momentum) * batch statistic

    Args:
        axis: -1 (or 1): the features of (batch, features) inputs, the only layout gpudl has.
        momentum: float in [0, 1), weight of the old moving statistics.
        epsilon: positive float added to the variance.
        center: learn beta (else beta = 0).  scale: learn gamma (else gamma = 1).
        beta_initializer, gamma_initializer, moving_mean_initializer,
            moving_variance_initializer: initializers (Keras's defaults zeros, ones, zeros, ones).
        beta_regularizer, gamma_regularizer: penalties joining the loss.
        beta_constraint, gamma_constraint: applied after each optimizer step.
        renorm, renorm_clipping, renorm_momentum: Keras's batch renormalization; only their
            defaults (False, None, any) are accepted.
        synchronized: accepted (True or False); under gpudl.distribution.DataParallel the
            statistics are the global batch's either way, as in Keras on JAX.

    Call arguments:
        x: (batch, features). training: batch statistics if True, moving ones if False.
        A layer with trainable=False always runs in inference mode (as in Keras).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        where = f"BatchNormalization '{self.name}'"
        if axis not in (-1, 1) or isinstance(axis, bool):
            raise invalid_value("axis", "-1 or 1 (the features of (batch, features) inputs)", axis, where)
        if renorm is not False:
            raise invalid_value("renorm", "False (gpudl has no batch renormalization)", renorm, where)
        if not isinstance(synchronized, bool):
            raise invalid_value("synchronized", "a bool (under DataParallel the statistics are the global batch's "
                                "either way, as in Keras on JAX)", synchronized, where)
        if renorm_clipping is not None:
            raise invalid_value("renorm_clipping", "None (gpudl has no batch renormalization)", renorm_clipping, where)
        self.axis = int(axis)
        self.momentum = check_rate("momentum", momentum, where)
        self.epsilon = check_positive("epsilon", epsilon, where)
        self.center, self.scale = center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.renorm, self.renorm_clipping, self.renorm_momentum = renorm, renorm_clipping, renorm_momentum
        self.synchronized = synchronized

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"BatchNormalization '{self.name}' expects (batch, features) inputs; "
                             f"received feature shape {input_shape}.")
        shape = input_shape
        self.gamma = (self.add_weight("gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                      constraint=self.gamma_constraint) if self.scale
                      else Parameter("gamma", initializers.Ones()(shape, self.dtype), trainable=False))
        self.beta = (self.add_weight("beta", shape, self.beta_initializer, regularizer=self.beta_regularizer,
                                     constraint=self.beta_constraint) if self.center
                     else Parameter("beta", initializers.Zeros()(shape, self.dtype), trainable=False))
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, self.moving_variance_initializer,
                                               trainable=False)

    def forward(self, x, training=False):
        self._training = training and self.trainable
        self._shard = collectives.shard() if self._training else None  # data parallel: global batch statistics
        # {} unless it heads a fused block (never fused across processes: the block's ReLU/Dropout run alone)
        fused = fusion.forward_arguments(self, self._training and self._shard is None)
        if not self._training:
            return self.ops.batchnorm_forward_infer(x, self.gamma.value, self.beta.value,
                                                    self.moving_mean.value, self.moving_variance.value,
                                                    self.epsilon)
        if self._shard is not None:
            y, self._mean, self._rstd = global_batch_statistics.forward_train(
                x, self.gamma.value, self.beta.value, self.moving_mean.value, self.moving_variance.value,
                self.momentum, self.epsilon, self._shard)
        else:
            y, self._mean, self._rstd = self.ops.batchnorm_forward_train(
                x, self.gamma.value, self.beta.value, self.moving_mean.value, self.moving_variance.value,
                self.momentum, self.epsilon, **fused)
        self._x, self._y = x, y
        return y

    def backward(self, dy):
        if not self._training:  # inference mode: a fixed affine map per feature
            return dy * (self.gamma.value / self.xp.sqrt(self.moving_variance.value + self.epsilon))
        if self._shard is not None:
            dx, dgamma, dbeta = global_batch_statistics.backward(dy, self._x, self.gamma.value, self._mean,
                                                                 self._rstd, self._shard)
            if self.gamma.grad is not None:
                self.gamma.grad[...] = dgamma
            if self.beta.grad is not None:
                self.beta.grad[...] = dbeta
            return dx
        dx, _, _ = self.ops.batchnorm_backward(dy, self._x, self.gamma.value, self.beta.value, self._mean,
                                               self._rstd, **fusion.backward_arguments(self, self._y),
                                               dgamma=self.gamma.grad, dbeta=self.beta.grad)  # written in place
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
                "synchronized": self.synchronized, "renorm": self.renorm, "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum}
