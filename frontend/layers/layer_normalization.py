"""Layer normalization: each sample normalized over its features."""

from gpudl.errors import check_positive
from gpudl.frontend import constraints, initializers, regularizers
from gpudl.frontend.layers.base import Layer


class LayerNormalization(Layer):
    """Normalizes each sample over `axis` (Ba et al. 2016; Keras's formula):
        x_hat = (x - mean) / sqrt(var + epsilon)       (mean, biased var over `axis`, per sample)
        y     = gamma * x_hat + beta
    Backward, with g = dy * gamma and means over `axis`:
        dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + epsilon)
        dgamma = sum of dy * x_hat, dbeta = sum of dy, over the other axes.

    Args:
        axis: int or list of ints, counted like Keras (0 is the batch axis; -1 the last).
        epsilon: positive float added to the variance.
        center: learn beta.  scale: learn gamma.
        beta_initializer, gamma_initializer, *_regularizer, *_constraint: as Keras.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, list, tuple)):
            raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = check_positive("epsilon", epsilon, f"LayerNormalization '{self.name}'")
        self.center, self.scale = center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

    def build(self, input_shape):
        ndim = len(input_shape) + 1
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -ndim <= a < ndim or a % ndim == 0 for a in axes):
            raise ValueError(f"LayerNormalization '{self.name}': axis must name feature axes of inputs of shape "
                             f"(None, {', '.join(map(str, input_shape))}); received axis={self.axis}.")
        self._axes = tuple(sorted(a % ndim for a in axes))
        full_shape = (1,) + tuple(input_shape)
        self._broadcast_shape = tuple(full_shape[d] if d in self._axes else 1 for d in range(ndim))
        shape = tuple(full_shape[d] for d in self._axes)
        self.gamma = (self.add_weight("gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                      constraint=self.gamma_constraint) if self.scale else None)
        self.beta = (self.add_weight("beta", shape, self.beta_initializer, regularizer=self.beta_regularizer,
                                     constraint=self.beta_constraint) if self.center else None)

    def _broadcast(self, param):
        return param.value.reshape(self._broadcast_shape)

    def forward(self, x, training=False):
        mean = x.mean(axis=self._axes, keepdims=True)
        centered = x - mean
        self._inv_std = 1 / self.xp.sqrt((centered * centered).mean(axis=self._axes, keepdims=True)
                                         + x.dtype.type(self.epsilon))
        self._x_hat = centered * self._inv_std
        y = self._x_hat * self._broadcast(self.gamma) if self.scale else self._x_hat
        return y + self._broadcast(self.beta) if self.center else y

    def backward(self, dy):
        x_hat = self._x_hat
        others = tuple(d for d in range(dy.ndim) if d not in self._axes)
        if self.scale and self.gamma.grad is not None:
            self.gamma.grad[...] = (dy * x_hat).sum(axis=others).reshape(self.gamma.shape)
        if self.center and self.beta.grad is not None:
            self.beta.grad[...] = dy.sum(axis=others).reshape(self.beta.shape)
        g = dy * self._broadcast(self.gamma) if self.scale else dy
        return self._inv_std * (g - g.mean(axis=self._axes, keepdims=True)
                                - x_hat * (g * x_hat).mean(axis=self._axes, keepdims=True))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}
