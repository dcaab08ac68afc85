"""Input normalization with statistics of the training data (course: use the same
mu and sigma on dev and test)."""

import numpy as np

from gpudl.frontend.layers.base import Layer, Parameter

EPSILON = 1e-7  # Keras's backend epsilon: the floor of the standard deviation


class Normalization(Layer):
    """y = (x - mean) / max(sqrt(variance), 1e-7), per feature (the last axis).

    Call `adapt(x_train)` to compute mean and variance from training data, or pass
    them. They are non-trainable weights, saved with the model; until then the
    layer is the identity (mean 0, variance 1).

    Args:
        mean, variance: optional per-feature statistics.
    """

    def __init__(self, mean=None, variance=None, **kwargs):
        super().__init__(**kwargs)
        self._given = None if mean is None else (np.asarray(mean, np.float64), np.asarray(variance, np.float64))

    def adapt(self, data):
        """Set mean and variance from `data` of shape (N, features...), over all but the last axis."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"Normalization '{self.name}'.adapt expects a non-empty (N, features) "
                             f"array; received shape {data.shape}.")
        axes = tuple(range(data.ndim - 1))
        self._given = (data.mean(axis=axes), data.var(axis=axes))
        if self.built:
            self._store(*self._given)

    def build(self, input_shape):
        features = input_shape[-1]
        if self._given is None:
            self._given = (np.zeros(features), np.ones(features))
        if self._given[0].size not in (1, features):
            raise ValueError(f"Normalization '{self.name}' was adapted to {self._given[0].size} features "
                             f"but receives {features}.")
        zeros = np.zeros((features,), self.dtype)
        self.mean = Parameter(f"{self.name}/mean", zeros.copy(), trainable=False)
        self.variance = Parameter(f"{self.name}/variance", zeros.copy(), trainable=False)
        self.weights = [self.mean, self.variance]
        self._store(*self._given)

    def _store(self, mean, variance):
        self.mean.value[...] = self.xp.asarray(mean)
        self.variance.value[...] = self.xp.asarray(variance)

    def forward(self, x, training=False):
        self._std = self.xp.maximum(self.xp.sqrt(self.variance.value), EPSILON)
        return (x - self.mean.value) / self._std

    def backward(self, dy):
        return dy / self._std
