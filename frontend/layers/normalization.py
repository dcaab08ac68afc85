"""Input normalization with statistics of the training data (course: use the same
mu and sigma on dev and test)."""

import numpy as np

from gpudl.backend import floatx, get_backend
from gpudl.frontend.layers.base import Layer

EPSILON = 1e-7  # Keras's backend epsilon: the floor of the standard deviation


class Normalization(Layer):
    """y = (x - mean) / max(sqrt(variance), 1e-7), per index of `axis`;
    with invert=True, y = mean + x * max(sqrt(variance), 1e-7). dx = dy / std (dy * std).

    Statistics come from `adapt(x_train)` (Keras: numpy mean and biased variance over
    the other axes) or are passed as `mean` and `variance`. Adapted statistics are the
    non-trainable weights mean, variance, count (saved with the model); passed ones go
    in the config. `layer.mean` / `layer.variance` read them in the broadcast shape
    Keras gives, e.g. (1, features). adapt before the layer is built keeps them as
    computed and writes them when a model builds the layer, in the model's dtype.

    Args:
        axis: int, tuple of ints or None: the axes that keep their own statistics
            (Keras's counting: 0 is the batch axis; -1 the features). None: one mean and
            variance over everything; then adapt and the layer take 1-D arrays too.
        mean, variance: optional statistics, scalars or broadcastable to the kept axes.
        invert: apply the inverse transformation.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"When setting values directly, both `mean` and `variance` must be set. Received: "
                             f"mean={mean} and variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(f"When setting values directly, `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {np.shape(mean)} and variance shape {np.shape(variance)}")
            if np.ndim(mean) > len(self.axis):
                raise ValueError(f"The rank of `mean` must be less than or equal to the number of axes "
                                 f"({len(self.axis)}). Received: mean shape {np.shape(mean)} for axis {self.axis}")
        self.input_mean, self.input_variance = mean, variance
        self.invert = invert
        self._adapted = None  # (mean, variance, input shape) from an adapt before build

    def _layout(self, input_shape):
        """(kept axes, reduced axes, broadcast shape, statistics shape) for a feature shape."""
        ndim = len(input_shape) + 1
        if any(not -ndim <= a < ndim or a % ndim == 0 for a in self.axis):
            raise ValueError(f"Normalization '{self.name}': `axis` values must name feature axes in [1, {ndim}) "
                             f"or [-{ndim - 1}, 0) of inputs of shape (None, {', '.join(map(str, input_shape))}); "
                             f"received axis={self.axis}.")
        keep = tuple(sorted(a % ndim for a in self.axis))
        full = (1,) + tuple(input_shape)
        reduce = tuple(d for d in range(ndim) if d not in keep)
        return keep, reduce, tuple(full[d] if d in keep else 1 for d in range(ndim)), tuple(full[d] for d in keep)

    def build(self, input_shape):
        self._keep, self._reduce, self._broadcast_shape, shape = self._layout(input_shape)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight("mean", shape, "zeros", trainable=False)
            self.adapt_variance = self.add_weight("variance", shape, "ones", trainable=False)
            self.count = self.add_weight("count", (), "zeros", trainable=False, dtype="int64")
            if self._adapted is not None:
                self._check_adapt_shape(self._adapted[2], input_shape)
                self.adapt_mean.assign(self._adapted[0])
                self.adapt_variance.assign(self._adapted[1])
        else:
            self._constants = tuple(get_backend().asarray(self._broadcast(value).astype(self.dtype))
                                    for value in (self.input_mean, self.input_variance))

    def _broadcast(self, value):
        """A given statistic aligned with the kept axes (its last axis on the last kept axis)."""
        value = np.asarray(value, dtype=np.float64)
        expanded = [1] * len(self._broadcast_shape)
        for i in range(1, value.ndim + 1):
            expanded[self._keep[-i]] = value.shape[-i]
        return np.broadcast_to(value.reshape(expanded), self._broadcast_shape)

    def _statistic(self, index):
        if self.built:
            if self.input_mean is not None:
                return self._constants[index]
            return (self.adapt_mean, self.adapt_variance)[index].value.reshape(self._broadcast_shape)
        if self._adapted is not None:
            _, _, broadcast, _ = self._layout(self._adapted[2])
            return np.asarray(self._adapted[index], dtype=self.dtype or floatx()).reshape(broadcast)
        return None

    @property
    def mean(self):
        """The mean in the broadcast shape (None before build or adapt)."""
        return self._statistic(0)

    @property
    def variance(self):
        return self._statistic(1)

    def _check_adapt_shape(self, data_shape, input_shape):
        keep, _, _, _ = self._layout(input_shape)
        full_data, full_input = (None,) + tuple(data_shape), (None,) + tuple(input_shape)
        if (keep and len(data_shape) != len(input_shape)) or any(full_data[d] != full_input[d] for d in keep):
            raise ValueError(f"The layer was built with input_shape={full_input}, but adapt() is being called with "
                             f"data with an incompatible shape, data.shape={full_data}")

    def adapt(self, data):
        """Compute mean and variance from `data` (an array of shape (N, ...), or an iterable
        of such batches, or of (x, y) batches), over every axis but `axis`.
        One array: numpy mean and variance, as Keras. Batches: Keras's running combination."""
        if hasattr(data, "shape") or (isinstance(data, (list, tuple)) and data and not hasattr(data[0], "shape")):
            data = np.asarray(get_backend().to_numpy(data))
            min_rank = 2 if self.axis else 1  # axis=None: 1-D data are N samples of one value, as in Keras
            if data.ndim < min_rank or data.shape[0] == 0:
                raise ValueError(f"Normalization '{self.name}'.adapt expects a non-empty array of shape "
                                 f"{'(N, features...)' if self.axis else '(N, ...)'}; received shape {data.shape}.")
            _, reduce, _, _ = self._layout(data.shape[1:])
            mean, variance, data_shape = np.mean(data, axis=reduce), np.var(data, axis=reduce), data.shape[1:]
        else:
            mean, variance, data_shape = self._combine_batches(data)
        if self.built:
            self._check_adapt_shape(data_shape, self.input_shape)
            self.adapt_mean.assign(mean)
            self.adapt_variance.assign(variance)
        else:
            self._layout(data_shape)
            self._adapted = (mean, variance, tuple(data_shape))

    def _combine_batches(self, batches):
        """Keras's streaming rule: weights by count, variances combined with the shift of the mean."""
        total_mean = total_var = None
        total_count = 0
        for batch in batches:
            batch = np.asarray(get_backend().to_numpy(batch[0] if isinstance(batch, tuple) else batch), np.float64)
            _, reduce, _, _ = self._layout(batch.shape[1:])
            count = int(np.prod([batch.shape[d] for d in reduce]))
            batch_mean, batch_var = batch.mean(axis=reduce), batch.var(axis=reduce)
            if total_mean is None:
                total_mean, total_var, shape = np.zeros_like(batch_mean), np.zeros_like(batch_var), batch.shape[1:]
            total_count += count
            weight = count / total_count
            new_mean = total_mean * (1 - weight) + batch_mean * weight
            total_var = ((total_var + (total_mean - new_mean) ** 2) * (1 - weight)
                         + (batch_var + (batch_mean - new_mean) ** 2) * weight)
            total_mean = new_mean
        if total_mean is None:
            raise ValueError(f"Normalization '{self.name}'.adapt received no batches.")
        return total_mean, total_var, shape

    def forward(self, x, training=False):
        self._std = self.xp.maximum(self.xp.sqrt(self.variance), x.dtype.type(EPSILON))
        return self.mean + x * self._std if self.invert else (x - self.mean) / self._std

    def backward(self, dy):
        return dy * self._std if self.invert else dy / self._std

    def get_config(self):
        def plain(value):
            return None if value is None else np.asarray(value).tolist()

        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": plain(self.input_mean), "variance": plain(self.input_variance)}
