"""Metrics: Keras 3's names, arguments and results, accumulated on the device.

`update_state` (and the model's `update`) adds a batch to float64 backend arrays and
never reads the device; `result()` is the one host read and returns a Python float
(a NumPy array for several thresholds). With weights w_i (1 when none are given):

    Mean                sum_i w_i v_i / sum_i w_i       (v_i: the mean over a sample's values)
    Sum                 sum_i w_i v_i
    MeanMetricWrapper   Mean of fn(y_true, y_pred) per sample: the accuracies, mae, mse,
                        mape, msle, logcosh, cosine_similarity, hinges, cross-entropies,
                        kl_divergence, poisson (the formulas of gpudl.losses)
    RootMeanSquaredError  sqrt(Mean of (p - y)^2)
    TruePositives ...   sum of w over [y != 0] [p > t], one count per threshold t
    Precision           TP / (TP + FP),   Recall  TP / (TP + FN)   (0 when the denominator is)
    AUC                 Keras's Riemann sum over num_thresholds buckets (see AUC.result)
    PrecisionAtRecall ...  the best of one rate where another is >= a value (_AtConstraint)
    FBetaScore, F1Score    (1 + b^2) P R / (b^2 P + R) per class, averaged as Keras
    R2Score             1 - SS_res / SS_tot per output column, aggregated as Keras
"accuracy" picks binary/sparse/categorical accuracy from the output width and the loss.
"""

import inspect
import math
import warnings

import numpy as np

from gpudl import registry
from gpudl.backend import floatx, get_backend
from gpudl.errors import invalid_value, unknown_name
from gpudl.frontend import activations, losses
from gpudl.frontend.losses import EPSILON
from gpudl.naming import snake_case
from gpudl.frontend.losses import (  # noqa: F401  (Keras's keras.metrics.* functions)
    binary_crossentropy, categorical_crossentropy, categorical_hinge, hinge, huber, kl_divergence, log_cosh,
    mean_absolute_error, mean_absolute_percentage_error, mean_squared_error, mean_squared_logarithmic_error, poisson,
    sparse_categorical_crossentropy, squared_hinge)

NEG_INF = -1e10  # Keras's metrics_utils.NEG_INF


def _xp():
    return get_backend().xp


def _predictions(y_pred):
    """y_pred as a floating backend array (lists and integers as floatx)."""
    y_pred = get_backend().asarray(y_pred)
    return y_pred if y_pred.dtype.kind == "f" else y_pred.astype(floatx())


def _sample_weights(sample_weight, count, dtype):
    """None, or weights of shape (count,) (a scalar or an (m, 1) column is accepted)."""
    if sample_weight is None:
        return None
    weights = get_backend().asarray(sample_weight, dtype=dtype).reshape(-1)
    return _xp().broadcast_to(weights, (count,)) if weights.size == 1 else weights


class Variable:
    """A metric's state (Keras's metric variable): a backend array with `assign`,
    `assign_add` (in place, on the device) and `numpy()` (a host read)."""

    def __init__(self, shape, dtype, name):
        self.value = _xp().zeros(shape, dtype=dtype)
        self.name = name

    def assign(self, value):
        self.value[...] = value

    def assign_add(self, value):
        self.value += value

    def numpy(self):
        return get_backend().to_numpy(self.value)

    def __float__(self):
        return float(self.numpy())

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.numpy(), dtype=dtype)

    @property
    def shape(self):
        return self.value.shape

    def __repr__(self):
        return f"<Variable {self.name} shape={self.shape}>"


class Metric:
    """Base class of metrics (Keras's `keras.metrics.Metric`).

    A subclass writes `update_state(y_true, y_pred, sample_weight=None)`, `result()` and,
    when it keeps its own state, `reset_state()`; state made with `add_variable` is reset
    by the base class. y_true and y_pred are backend arrays (gpudl.backend.get_backend().xp
    computes on them); keep the state there too, so that updates never wait for the device.

    Args:
        name: the metric's name (default: the class name in snake_case).
        dtype: Keras's metric dtype, kept for get_config (accumulators are float64).

    Model-facing: `update(y_true, y_pred, logits=False, sample_weight=None)`, where
    logits=True means y_pred is the input of the loss's fused output activation
    (`self.output_activation`, set by `get`), and `reset()`.
    """

    output_activation = None

    def __init__(self, name=None, dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self._dtype = dtype
        self._variables = []

    @property
    def dtype(self):
        return self._dtype or floatx()

    @property
    def variables(self):
        return list(self._variables)

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        """A zero-initialized state array (float64 unless `dtype` says otherwise)."""
        if initializer not in ("zeros", None):
            raise invalid_value("initializer", '"zeros" (metric state starts at zero)', initializer, self.name)
        variable = Variable(tuple(shape), dtype or np.float64, name or f"variable_{len(self._variables)}")
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define "
                                  f"update_state(y_true, y_pred, sample_weight=None).")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must define result().")

    def reset_state(self):
        for variable in self._variables:
            variable.assign(0)

    def update(self, y_true, y_pred, logits=False, sample_weight=None):
        """The model's call: one batch of device arrays (logits: see the class docstring)."""
        if logits:
            y_pred = self.activate(y_pred)
        self.update_state(y_true, y_pred, sample_weight=sample_weight)

    def activate(self, logits):
        """The output activation applied to the logits the model hands over."""
        return activations.get(self.output_activation)(logits)

    def reset(self):
        self.reset_state()

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _read(variable):
    """The one host read of a metric: float64 NumPy."""
    return variable.numpy().astype(np.float64)


def _divide_no_nan(numerator, denominator):
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _as_result(values):
    """A float for one value, else a NumPy array (Keras: a scalar or a vector tensor)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.reshape(-1)[0]) if values.size == 1 else values


class Sum(Metric):
    """sum_i w_i v_i over everything passed to update_state(values, sample_weight)."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(name="total")

    def update_state(self, values, sample_weight=None):
        values, weights = _samplewise(values, sample_weight, "sum")
        self.total.assign_add((values if weights is None else values * weights).sum(dtype=np.float64))

    def result(self):
        return float(_read(self.total))


class Mean(Metric):
    """sum_i w_i v_i / sum_i w_i, v_i the mean of sample i's values (Keras's Mean)."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(name="total")
        self.count = self.add_variable(name="count")

    def update_state(self, values, sample_weight=None):
        values, weights = _samplewise(values, sample_weight, "mean")
        if weights is None:
            self.total.assign_add(values.sum(dtype=np.float64))
            self.count.assign_add(values.shape[0] if values.ndim else 1)
        else:
            self.total.assign_add((values * weights).sum(dtype=np.float64))
            self.count.assign_add(weights.sum(dtype=np.float64))

    def result(self):
        return float(_divide_no_nan(_read(self.total), _read(self.count)))


def _samplewise(values, sample_weight, reduction):
    """Values reduced (mean or sum) to one per sample, and the weights (None, or (m,))."""
    values = _predictions(values)
    if values.ndim > 1:
        axes = tuple(range(1, values.ndim))
        reduce = values.mean if reduction == "mean" else values.sum
        values = reduce(axis=axes, dtype=np.float64)
    count = values.shape[0] if values.ndim else 1
    weights = _sample_weights(sample_weight, count, np.float64)
    return values, None if weights is None else weights.reshape(values.shape)


class MeanMetricWrapper(Mean):
    """The Mean of `fn(y_true, y_pred, **kwargs)`, a function of backend arrays returning
    one value per sample (or per sample and output)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name or snake_case(type(self).__name__), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _predictions(y_pred)
        super().update_state(self._fn(get_backend().asarray(y_true), y_pred, **self._fn_kwargs),
                             sample_weight=sample_weight)

    def get_config(self):
        config = {**super().get_config(), **self._fn_kwargs}
        if type(self) is MeanMetricWrapper:
            config["fn"] = getattr(self._fn, "__name__", repr(self._fn))
        return config


# Accuracy functions (Keras's keras.metrics.*_accuracy): 1.0 for a hit, 0.0 for a miss.

def _matching_rank(y_true, y_pred):
    """y_true as a column when y_pred is (m, 1) and y_true (m,) (Keras's squeeze_or_expand)."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    if y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        return y_true[..., 0]
    return y_true


def accuracy(y_true, y_pred):
    y_pred = _predictions(y_pred)
    y_true = _matching_rank(get_backend().asarray(y_true), y_pred)
    return (y_true.astype(y_pred.dtype) == y_pred).astype(floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_pred = _predictions(y_pred)
    y_true = _matching_rank(get_backend().asarray(y_true), y_pred)
    return ((y_pred > threshold).astype(y_true.dtype) == y_true).astype(floatx())


def categorical_accuracy(y_true, y_pred):
    y_true = get_backend().asarray(y_true)
    return (y_true.argmax(axis=-1) == _predictions(y_pred).argmax(axis=-1)).astype(floatx())


def _labels(y_true):
    y_true = get_backend().asarray(y_true)
    labels = y_true[..., 0] if y_true.ndim == 2 and y_true.shape[-1] == 1 else y_true
    # integer labels compare and index as they are (no cast: a launch per step on a device)
    return labels if np.can_cast(labels.dtype, np.int64) else labels.astype(np.int64)


def sparse_categorical_accuracy(y_true, y_pred):
    return (_labels(y_true) == _predictions(y_pred).argmax(axis=-1)).astype(floatx())


def _in_top_k(labels, y_pred, k):
    """Keras's in_top_k: 1 + (number of scores above the label's) <= k (ties count as hits)."""
    xp = _xp()
    at_label = xp.take_along_axis(y_pred, labels[:, None], axis=-1)
    at_label = xp.where(xp.isnan(at_label), -xp.inf, at_label)
    return (1 + (y_pred > at_label).sum(axis=-1) <= k).astype(floatx())


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(get_backend().asarray(y_true).argmax(axis=-1), _predictions(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """from_sorted_ids: y_pred holds class ids sorted by score (its first k are the top k)."""
    labels = _labels(y_true)
    if from_sorted_ids:
        return (labels[:, None] == get_backend().asarray(y_pred)[:, :k]).any(axis=-1).astype(floatx())
    return _in_top_k(labels, _predictions(y_pred), k)


class Accuracy(MeanMetricWrapper):
    """How often y_pred equals y_true exactly."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often (y_pred > threshold) equals y_true. With sigmoid logits from the model,
    z > log(t / (1 - t)) is the same test without computing the sigmoid."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    def update(self, y_true, y_pred, logits=False, sample_weight=None):
        if logits and self.output_activation == "sigmoid" and 0 < self.threshold < 1:
            logit_threshold = math.log(self.threshold / (1 - self.threshold))
            Mean.update_state(self, binary_accuracy(y_true, y_pred, logit_threshold), sample_weight=sample_weight)
        else:
            super().update(y_true, y_pred, logits, sample_weight)


class _RankMetric(MeanMetricWrapper):
    """Accuracies decided by the order of the scores: the softmax/sigmoid of the logits
    keeps their order, so logits are used as they are."""

    def activate(self, logits):
        return logits


class CategoricalAccuracy(_RankMetric):
    """How often argmax(y_pred) equals argmax(y_true) (one-hot targets)."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(_RankMetric):
    """How often argmax(y_pred) equals the integer label."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(_RankMetric):
    """How often the one-hot target is among the k highest scores."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k


class SparseTopKCategoricalAccuracy(_RankMetric):
    """How often the integer label is among the k highest scores."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=from_sorted_ids)
        self.k = k
        self.from_sorted_ids = from_sorted_ids

    def activate(self, logits):
        if self.from_sorted_ids:
            raise ValueError(f"{self.name}: from_sorted_ids=True needs class ids as y_pred, but the model "
                             f"outputs scores; use from_sorted_ids=False.")
        return logits


# Regression, hinge and probabilistic metrics: the Mean of a gpudl.losses function.

class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(losses.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(losses.mean_absolute_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(losses.mean_absolute_percentage_error, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(losses.mean_squared_logarithmic_error, name=name, dtype=dtype)


class LogCoshError(MeanMetricWrapper):
    def __init__(self, name="logcosh", dtype=None):
        super().__init__(losses.log_cosh, name=name, dtype=dtype)


def cosine_similarity(y_true, y_pred, axis=-1):
    """sum_k y_k p_k / (|y| |p|) per sample (the loss's value with its sign flipped)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


class CosineSimilarity(MeanMetricWrapper):
    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis)


class Hinge(MeanMetricWrapper):
    def __init__(self, name="hinge", dtype=None):
        super().__init__(losses.hinge, name=name, dtype=dtype)


class SquaredHinge(MeanMetricWrapper):
    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(losses.squared_hinge, name=name, dtype=dtype)


class CategoricalHinge(MeanMetricWrapper):
    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(losses.categorical_hinge, name=name, dtype=dtype)


class KLDivergence(MeanMetricWrapper):
    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(losses.kl_divergence, name=name, dtype=dtype)


class Poisson(MeanMetricWrapper):
    def __init__(self, name="poisson", dtype=None):
        super().__init__(losses.poisson, name=name, dtype=dtype)


class BinaryCrossentropy(MeanMetricWrapper):
    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(losses.binary_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)


class CategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        super().__init__(losses.categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        super().__init__(losses.sparse_categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         ignore_class=ignore_class, axis=axis)


class RootMeanSquaredError(Mean):
    """sqrt(sum_i w_i mean_k (p_ik - y_ik)^2 / sum_i w_i)."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _predictions(y_pred)
        error = y_pred - _matching_rank(get_backend().asarray(y_true), y_pred).astype(y_pred.dtype)
        super().update_state(error * error, sample_weight=sample_weight)

    def result(self):
        return math.sqrt(super().result())


R2_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """The coefficient of determination per output column k, over every batch seen:
        R2_k = 1 - sum_i w_i (y_ik - p_ik)^2 / (sum_i w_i y_ik^2 - (sum_i w_i y_ik)^2 / sum_i w_i)
    (0 where that is infinite, as Keras), then averaged ("uniform_average"), weighted by the
    columns' total variation ("variance_weighted_average") or kept per column (None).
    num_regressors p > 0 adjusts it: 1 - (1 - R2)(n - 1) / (n - p - 1), n the number of
    target values seen (Keras counts every element of y_true), unless p >= n - 1 (a warning).
    sample_weight: a scalar, (batch,) or (batch, K).

    Args (Keras's): class_aggregation="uniform_average", num_regressors=0, name, dtype.
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in R2_AGGREGATIONS:
            raise invalid_value("class_aggregation", f"one of {R2_AGGREGATIONS}", class_aggregation, "R2Score")
        if num_regressors < 0:
            raise invalid_value("num_regressors", "a value >= 0", num_regressors, "R2Score")
        super().__init__(name=name, dtype=dtype)
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self.num_samples = self.add_variable(name="num_samples")
        self._sums = None  # sum, squared_sum, residual, count: (K,) each, made on the first batch

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = _xp()
        y_pred, y_true = _predictions(y_pred), get_backend().asarray(y_true)
        if y_pred.ndim == 1 and y_true.shape[-1:] == (1,):  # Keras expands the rank-1 side to (N, 1)
            y_pred = y_pred[:, None]
        y_true = _matching_rank(y_true, y_pred).astype(np.float64)
        _check_2d("R2Score", y_true, y_pred)
        if self._sums is None:
            self._sums = [self.add_variable(shape=(y_pred.shape[-1],), name=name)
                          for name in ("sum", "squared_sum", "residual", "count")]
        weights = xp.ones((), dtype=np.float64) if sample_weight is None else \
            get_backend().asarray(sample_weight, dtype=np.float64)
        weights = xp.broadcast_to(weights[:, None] if weights.ndim == 1 else weights, y_true.shape)
        weighted = y_true * weights
        error = y_true - y_pred
        for variable, value in zip(self._sums, (weighted, y_true * weighted, error * error * weights, weights)):
            variable.assign_add(value.sum(axis=0))
        self.num_samples.assign_add(y_true.size)

    def result(self):
        if self._sums is None:
            return 0.0
        total_y, squared, residual, count = (_read(variable) for variable in self._sums)
        with np.errstate(divide="ignore", invalid="ignore"):
            variation = squared - total_y * (total_y / count)
            scores = 1 - residual / variation
        scores = np.where(np.isinf(scores), 0.0, scores)
        if self.class_aggregation == "uniform_average":
            score = scores.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (variation * scores).sum() / variation.sum()
        else:
            score = scores
        n, p = float(_read(self.num_samples)), self.num_regressors
        if p and p >= n - 1:
            warnings.warn(f"R2Score: num_regressors={p} with {n:g} target values: the adjusted R2 score is "
                          f"undefined (it needs n - p - 1 > 0); falling back to the standard R2 score.",
                          stacklevel=2)
        elif p:
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return score if self.class_aggregation is None else float(score)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


def _check_2d(where, y_true, y_pred):
    if y_true.ndim != 2 or y_pred.ndim != 2:
        raise ValueError(f"{where} expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                         f"y_pred.shape={tuple(y_pred.shape)} and y_true.shape={tuple(y_true.shape)}.")


# Confusion-matrix metrics.

def _check_thresholds(thresholds, where):
    values = [thresholds] if np.isscalar(thresholds) else list(thresholds)
    if not values or any(t is None or not 0 <= t <= 1 for t in values):
        raise invalid_value("thresholds", "a float or a list of floats in [0, 1]", thresholds, where)
    return values


def _evenly_spaced(thresholds):
    """Keras's test for thresholds i / (T - 1), i = 0..T-1 (T >= 3), within eps."""
    count = len(thresholds)
    return count >= 3 and np.allclose(thresholds, np.arange(count) / (count - 1), atol=EPSILON)


class _ConfusionCounter:
    """Weighted counts, per threshold t_j, of positives (y != 0) and negatives with p > t_j.

    Each prediction falls in one bucket b and is above t_j exactly for j <= b; a histogram
    of buckets, summed from the top, gives every threshold's count in one pass:
      evenly spaced thresholds (Keras's fast path, p clipped to [0, 1]):
          b = ceil(p (T - 1)) - 1   (at least 0 when the end thresholds are -eps and 1 + eps)
      any others: b = (number of thresholds below p) - 1.
    multi_label keeps one histogram per output column."""

    def __init__(self, thresholds, evenly, with_epsilon=False, multi_label=False):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.order = np.argsort(self.thresholds, kind="stable")
        self.evenly, self.with_epsilon, self.multi_label = evenly, with_epsilon, multi_label

    def buckets(self, y_pred):
        xp = _xp()
        count = len(self.thresholds)
        if self.evenly:
            buckets = xp.ceil(xp.clip(y_pred, 0, 1) * (count - 1)) - 1
            buckets = xp.maximum(buckets, 0) if self.with_epsilon else buckets
            return buckets.astype(np.int64)
        ascending = xp.asarray(self.thresholds[self.order], dtype=y_pred.dtype)
        return xp.searchsorted(ascending, y_pred.reshape(-1), side="left").reshape(y_pred.shape) - 1

    def counts(self, y_true, y_pred, weights):
        """(above_positive, above_negative, positives, negatives): the first two (T,) or
        (T, C) in the thresholds' order, the totals () or (C,)."""
        xp = _xp()
        columns = y_pred.shape[-1] if self.multi_label else 1
        count = len(self.thresholds)
        column = xp.arange(y_pred.size) % columns
        bins = (column * (count + 1) + self.buckets(y_pred).reshape(-1) + 1)
        positive = (y_true.reshape(-1) != 0).astype(np.float64)
        weights = weights.reshape(-1)

        def above(mass):
            histogram = xp.bincount(bins, weights=mass, minlength=columns * (count + 1))
            histogram = histogram.reshape(columns, count + 1)[:, 1:]
            totals = xp.cumsum(histogram[:, ::-1], axis=1)[:, ::-1].T  # (T, C), sorted thresholds
            unsorted = xp.empty_like(totals)
            unsorted[xp.asarray(self.order)] = totals
            return unsorted if self.multi_label else unsorted[:, 0]

        def total(mass):
            sums = xp.bincount(column, weights=mass, minlength=columns)
            return sums if self.multi_label else sums[0]

        return (above(positive * weights), above((1 - positive) * weights),
                total(positive * weights), total((1 - positive) * weights))


def _confusion_inputs(y_true, y_pred, sample_weight, class_id=None):
    """Backend arrays of matching shape, and the weights broadcast over them (float64)."""
    y_pred = _predictions(y_pred)
    y_true = _matching_rank(get_backend().asarray(y_true), y_pred)
    if class_id is not None:
        y_true, y_pred = y_true[..., class_id:class_id + 1], y_pred[..., class_id:class_id + 1]
    weights = _sample_weights(sample_weight, y_pred.shape[0], np.float64)
    if weights is None:
        weights = _xp().ones(y_pred.shape[0], dtype=np.float64)
    weights = weights.reshape((-1,) + (1,) * (y_pred.ndim - 1))
    return y_true, y_pred, _xp().broadcast_to(weights, y_pred.shape)


class _ConfusionMetric(Metric):
    """Accumulates TP, FP, TN, FN per threshold (only those in `kinds`)."""

    kinds = ()

    def __init__(self, thresholds, name, dtype, default_threshold=0.5, class_id=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _check_thresholds(default_threshold if thresholds is None else thresholds,
                                            type(self).__name__)
        self.class_id = class_id
        self._counter = _ConfusionCounter(self.thresholds, _evenly_spaced(self.thresholds))
        for kind in self.kinds:
            setattr(self, kind, self.add_variable(shape=(len(self.thresholds),), name=kind))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, weights = _confusion_inputs(y_true, y_pred, sample_weight, self.class_id)
        above_positive, above_negative, positives, negatives = self._counter.counts(y_true, y_pred, weights)
        values = {"true_positives": above_positive, "false_positives": above_negative,
                  "false_negatives": positives - above_positive, "true_negatives": negatives - above_negative}
        for kind in self.kinds:
            getattr(self, kind).assign_add(values[kind])

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMetric):
    """Weighted count of y != 0 with y_pred > threshold (per threshold; default 0.5)."""

    kinds = ("true_positives",)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, name, dtype)

    def result(self):
        return _as_result(_read(getattr(self, self.kinds[0])))


class FalsePositives(TruePositives):
    """Weighted count of y == 0 with y_pred > threshold."""

    kinds = ("false_positives",)


class TrueNegatives(TruePositives):
    """Weighted count of y == 0 with y_pred <= threshold."""

    kinds = ("true_negatives",)


class FalseNegatives(TruePositives):
    """Weighted count of y != 0 with y_pred <= threshold."""

    kinds = ("false_negatives",)


class Precision(_ConfusionMetric):
    """TP / (TP + FP) at each threshold (default 0.5); class_id picks one output column.
    top_k is not supported (None only)."""

    kinds = ("true_positives", "false_positives")

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise invalid_value("top_k", "None (gpudl does not support top_k)", top_k, type(self).__name__)
        super().__init__(thresholds, name, dtype, class_id=class_id)
        self.top_k = top_k

    def result(self):
        return _as_result(_divide_no_nan(_read(self.true_positives),
                                         _read(self.true_positives) + _read(getattr(self, self.kinds[1]))))

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


class Recall(Precision):
    """TP / (TP + FN) at each threshold (default 0.5)."""

    kinds = ("true_positives", "false_negatives")


class _AtConstraint(_ConfusionMetric):
    """Keras's SensitivitySpecificityBase: the best `dependent` rate over the thresholds
    where the `constrained` rate is >= the given value (0 when none is), from TP, FP, TN, FN
    at num_thresholds thresholds 0, 1/(T-1), ..., 1 (0.5 alone for T=1), y_pred > t.
        recall = sensitivity = TP / (TP + FN),  specificity = TN / (TN + FP),
        precision = TP / (TP + FP)   (0 when the denominator is)
    class_id picks one output column, else every value counts."""

    kinds = ("true_positives", "false_positives", "true_negatives", "false_negatives")
    constrained = dependent = None  # rate names; `constrained` is also the argument's name

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        where = type(self).__name__
        if not 0 <= value <= 1:
            raise invalid_value(self.constrained, "a float in [0, 1]", value, where)
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                or num_thresholds <= 0:
            raise invalid_value("num_thresholds", "an integer > 0", num_thresholds, where)
        thresholds = [0.5] if num_thresholds == 1 else \
            [0.0] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0]
        super().__init__(thresholds, name, dtype, class_id=class_id)
        self.value, self.num_thresholds = value, num_thresholds
        setattr(self, self.constrained, value)

    def result(self):
        tp, fp, tn, fn = (_read(getattr(self, kind)) for kind in self.kinds)
        recall = _divide_no_nan(tp, tp + fn)
        rates = {"recall": recall, "sensitivity": recall, "specificity": _divide_no_nan(tn, tn + fp),
                 "precision": _divide_no_nan(tp, tp + fp)}
        feasible = rates[self.constrained] >= self.value
        return float(np.max(np.where(feasible, rates[self.dependent], 0.0), initial=0.0))

    def get_config(self):
        return {**Metric.get_config(self), "class_id": self.class_id, "num_thresholds": self.num_thresholds,
                self.constrained: self.value}


class PrecisionAtRecall(_AtConstraint):
    """The best precision where recall >= `recall`. Args (Keras's): recall, num_thresholds=200,
    class_id=None, name, dtype."""

    constrained, dependent = "recall", "precision"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)


class RecallAtPrecision(_AtConstraint):
    """The best recall where precision >= `precision`."""

    constrained, dependent = "precision", "recall"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)


class SensitivityAtSpecificity(_AtConstraint):
    """The best sensitivity (recall) where specificity >= `specificity`."""

    constrained, dependent = "specificity", "sensitivity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


class SpecificityAtSensitivity(_AtConstraint):
    """The best specificity where sensitivity (recall) >= `sensitivity`."""

    constrained, dependent = "sensitivity", "specificity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)


F_AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """F-beta per class of (batch, K) targets, over every batch seen (Keras's formula, eps=1e-7):
        precision = TP / (TP + FP + eps),  recall = TP / (TP + FN + eps)
        F = (1 + beta^2) precision recall / (beta^2 precision + recall + eps)
    A prediction is positive when y_pred > threshold, or (threshold None) when it is its
    row's maximum and |y_pred| > 1e-9. Counts are weighted by sample_weight (batch,).
    average: None (one score per class, an array), "micro" (counts pooled over classes),
    "macro" (the mean of the classes' scores), "weighted" (their mean weighted by each
    class's weighted count of y_true).

    Args (Keras's): average=None, beta=1.0, threshold=None, name="fbeta_score", dtype.
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        where = type(self).__name__
        if average not in F_AVERAGES:
            raise invalid_value("average", f"one of {F_AVERAGES}", average, where)
        if not isinstance(beta, float) or beta <= 0:
            raise invalid_value("beta", "a Python float > 0", beta, where)
        if threshold is not None and (not isinstance(threshold, float) or not 0 < threshold <= 1):
            raise invalid_value("threshold", "None or a Python float with 0 < threshold <= 1", threshold, where)
        super().__init__(name=name, dtype=dtype)
        self.average, self.beta, self.threshold = average, beta, threshold
        self._counts = None  # TP, FP, FN, support: (K,) each, or () for "micro"

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = _xp()
        y_pred = _predictions(y_pred)
        y_true = get_backend().asarray(y_true).astype(np.float64)
        _check_2d(type(self).__name__, y_true, y_pred)
        if self._counts is None:
            shape = () if self.average == "micro" else (y_pred.shape[-1],)
            self._counts = [self.add_variable(shape=shape, name=name) for name in
                            ("true_positives", "false_positives", "false_negatives", "intermediate_weights")]
        if self.threshold is None:
            positive = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (xp.abs(y_pred) > 1e-9)
        else:
            positive = y_pred > self.threshold
        positive = positive.astype(np.float64)
        weights = _sample_weights(sample_weight, y_pred.shape[0], np.float64)
        weights = 1.0 if weights is None else weights[:, None]
        axis = None if self.average == "micro" else 0
        for variable, value in zip(self._counts, (positive * y_true, positive * (1 - y_true),
                                                  (1 - positive) * y_true, y_true)):
            variable.assign_add((value * weights).sum(axis=axis))

    def result(self):
        if self._counts is None:
            return 0.0
        tp, fp, fn, support = (_read(variable) for variable in self._counts)
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        beta2 = self.beta ** 2
        scores = (1 + beta2) * precision * recall / (beta2 * precision + recall + EPSILON)
        if self.average == "weighted":
            return float((scores * support / (support.sum() + EPSILON)).sum())
        if self.average is not None:
            return float(scores.mean())
        return scores

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1: 2 precision recall / (precision + recall)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


AUC_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
AUC_SUMMATIONS = ("interpolation", "majoring", "minoring")


class AUC(Metric):
    """Area under the ROC or PR curve, from TP/FP/TN/FN at num_thresholds thresholds
    (i / (num_thresholds - 1) with the ends moved to -eps and 1 + eps), as Keras.

    Args (Keras's): num_thresholds=200, curve="ROC"|"PR"|"PRGAIN",
        summation_method="interpolation"|"majoring"|"minoring", name, dtype,
        thresholds (instead of num_thresholds), multi_label, num_labels, label_weights,
        from_logits (apply a sigmoid to y_pred first).
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if str(curve).lower() not in AUC_CURVES:
            raise invalid_value("curve", f"one of {list(AUC_CURVES.values())}", curve, "AUC")
        if str(summation_method).lower() not in AUC_SUMMATIONS:
            raise invalid_value("summation_method", f"one of {list(AUC_SUMMATIONS)}", summation_method, "AUC")
        if num_labels and not multi_label:
            raise invalid_value("num_labels", "None unless multi_label=True", num_labels, "AUC")
        super().__init__(name=name, dtype=dtype)
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_check_thresholds(thresholds, "AUC"))
            evenly = _evenly_spaced([0.0] + inner + [1.0])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                    or num_thresholds <= 1:
                raise invalid_value("num_thresholds", "an integer > 1", num_thresholds, "AUC")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        self.num_thresholds = len(inner) + 2
        self._thresholds = [0.0 - EPSILON] + inner + [1.0 + EPSILON]
        self.curve = AUC_CURVES[str(curve).lower()]
        self.summation_method = str(summation_method).lower()
        self.multi_label, self.num_labels = multi_label, num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, dtype=np.float64)
        self._from_logits = from_logits
        self._counter = _ConfusionCounter(self._thresholds, evenly, with_epsilon=True, multi_label=multi_label)
        self._counts = None  # TP, FP, TN, FN variables, shaped on the first batch when multi_label

    @property
    def thresholds(self):
        return list(self._thresholds)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, weights = _confusion_inputs(y_true, y_pred, sample_weight)
        if self._from_logits:
            y_pred = activations.sigmoid(y_pred)
        if self.label_weights is not None and not self.multi_label:
            weights = weights * _xp().asarray(self.label_weights)
        if self._counts is None:
            shape = (self.num_thresholds, y_pred.shape[-1]) if self.multi_label else (self.num_thresholds,)
            self._counts = [self.add_variable(shape=shape, name=kind) for kind in
                            ("true_positives", "false_positives", "true_negatives", "false_negatives")]
        above_positive, above_negative, positives, negatives = self._counter.counts(y_true, y_pred, weights)
        for variable, value in zip(self._counts, (above_positive, above_negative, negatives - above_negative,
                                                  positives - above_positive)):
            variable.assign_add(value)

    def result(self):
        """Keras's sums over consecutive thresholds i, i+1 (x descending as i grows):
        ROC: sum (fpr_i - fpr_i+1) (tpr_i + tpr_i+1) / 2   ("interpolation"; min/max for
        minoring/majoring); PR with interpolation (Davis & Goadrich): precision is
        interpolated along TP as a function of P = TP + FP,
            slope = dTP / dP,  intercept = TP_i+1 - slope P_i+1,
            area_i = slope (dTP + intercept log(P_i / P_i+1)) / (TP_i+1 + FN_i+1)."""
        if self._counts is None:
            return 0.0
        tp, fp, tn, fn = (_read(variable) for variable in self._counts)
        if self.curve == "PR" and self.summation_method == "interpolation":
            d_tp = tp[:-1] - tp[1:]
            p = tp + fp
            d_p = p[:-1] - p[1:]
            slope = _divide_no_nan(d_tp, np.maximum(d_p, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
            areas = _divide_no_nan(slope * (d_tp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        else:
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            elif self.curve == "PR":
                x, y = recall, _divide_no_nan(tp, tp + fp)
            else:  # PRGAIN
                scale = _divide_no_nan(tp + fn, tn + fp)
                x = np.maximum(np.where(tp == 0, 0.0, 1 - scale * _divide_no_nan(fn, tp)), 0)
                y = np.where(tp == 0, 1.0, 1 - scale * _divide_no_nan(fp, tp))
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:-1], y[1:])
            else:
                heights = np.maximum(y[:-1], y[1:])
            areas = (x[:-1] - x[1:]) * heights
        if not self.multi_label:
            return float(areas.sum())
        by_label = areas.sum(axis=0)
        if self.label_weights is None:
            return float(by_label.mean())
        return float(_divide_no_nan((by_label * self.label_weights).sum(), self.label_weights.sum()))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels, "from_logits": self._from_logits,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist()}
        if self._init_from_thresholds:
            config["thresholds"] = self._thresholds[1:-1]
        return config


CLASSES = [Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
           TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, RootMeanSquaredError,
           MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, CosineSimilarity,
           LogCoshError, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson, BinaryCrossentropy,
           CategoricalCrossentropy, SparseCategoricalCrossentropy, AUC, Precision, Recall, TruePositives,
           FalsePositives, TrueNegatives, FalseNegatives, PrecisionAtRecall, RecallAtPrecision,
           SensitivityAtSpecificity, SpecificityAtSensitivity, F1Score, FBetaScore, R2Score]

# Keras's names of the metrics compile() takes: class names, their snake_case, the short
# aliases; plus "rmse" and "logcosh". Keras's reduction metrics (Mean, Sum, MeanMetricWrapper)
# are a kind of their own: built from objects and configs, never from a name in compile().
COMPILE_CLASSES = [cls for cls in CLASSES if cls not in (Mean, Sum, MeanMetricWrapper)]
registry.register("metric", COMPILE_CLASSES)
registry.register("reduction_metric", (Mean, Sum, MeanMetricWrapper))
METRICS = {cls.__name__: cls for cls in COMPILE_CLASSES}
METRICS.update({snake_case(cls.__name__): cls for cls in COMPILE_CLASSES})
METRICS.update({alias: cls for cls, aliases in [
    (BinaryCrossentropy, ("bce", "BCE")), (MeanSquaredError, ("mse", "MSE")), (MeanAbsoluteError, ("mae", "MAE")),
    (MeanAbsolutePercentageError, ("mape", "MAPE")), (MeanSquaredLogarithmicError, ("msle", "MSLE")),
    (RootMeanSquaredError, ("rmse",)), (LogCoshError, ("logcosh",))] for alias in aliases})

FUNCTIONS = {fn.__name__: fn for fn in (accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                                        top_k_categorical_accuracy, sparse_top_k_categorical_accuracy,
                                        cosine_similarity)}
FUNCTIONS.update({fn.__name__: fn for fn in losses.FUNCTIONS if fn.__name__ != "cosine_similarity"
                  and "focal" not in fn.__name__})  # Keras's metrics have no focal functions


def _accuracy_for(loss, output_units):
    """Binary for one output unit or binary cross-entropy, sparse for integer labels,
    else categorical."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return SparseCategoricalAccuracy
    if isinstance(loss, losses.BinaryCrossentropy) or output_units == 1:
        return BinaryAccuracy
    return CategoricalAccuracy


def get(identifier, loss, output_units):
    """A Metric from a name (Keras's; the metric is named as written), a Metric object or
    class, a function of (y_true, y_pred) (wrapped in MeanMetricWrapper) or a config dict;
    it learns the loss's fused output activation (for the model's logits). `loss` is a Loss
    or any identifier losses.loss_object takes."""
    loss = losses.loss_object(loss)
    if isinstance(identifier, Metric):
        metric = identifier
    elif inspect.isclass(identifier) and issubclass(identifier, Metric):
        metric = identifier()
    elif isinstance(identifier, dict):
        metric = deserialize(identifier)
    elif isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        metric = _accuracy_for(loss, output_units)(name=identifier)
    elif isinstance(identifier, str) and identifier in METRICS:
        metric = METRICS[identifier](name=identifier)
    elif isinstance(identifier, str):
        raise unknown_name("metric", identifier, list(METRICS) + ["accuracy", "acc"])
    elif callable(identifier):
        metric = MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None))
    else:
        raise invalid_value("metrics", "metric names, Metric objects or functions", identifier)
    metric.output_activation = loss.fused_activation
    return metric


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config, custom_objects=None):
    """The Metric of `serialize(metric)`; custom classes and functions come from custom_objects."""
    name, arguments = config["class_name"], dict(config["config"])
    cls = registry.find(name, ("metric", "reduction_metric"), custom_objects)
    if cls is None:
        known = {**registry.classes("metric"), **registry.classes("reduction_metric"), **(custom_objects or {})}
        raise unknown_name("metric", name, known)
    if name == "MeanMetricWrapper":
        functions = {**FUNCTIONS, **(custom_objects or {})}
        if arguments.get("fn") not in functions:
            raise unknown_name("metric function", arguments.get("fn"), functions)
        arguments["fn"] = functions[arguments["fn"]]
    return cls.from_config(arguments)
