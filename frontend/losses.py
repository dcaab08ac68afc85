"""Losses: Keras 3's names, arguments and reductions, each with its gradient: a built-in loss
gives its value AND dL/dy_pred, fused by hand; a loss written with Keras's `call` (or a plain
function, LossFunctionWrapper) gets its gradient from PyTorch's autograd (gpudl.frontend.autodiff).

A built-in loss is a per-sample value l_i (most are the mean over the last axis of an
elementwise term) and its gradient dl_i/dp_i; Keras's reduction then weighs and sums,
w_i being the sample weights (1 when none are given), m the number of per-sample values:
    "sum_over_batch_size", "mean"   L = sum_i w_i l_i / m        (m, NOT sum_i w_i)
    "sum"                           L = sum_i w_i l_i
    "mean_with_sample_weight"       L = sum_i w_i l_i / sum_i w_i   (/ m without weights)
    "none", None                    w_i l_i   (the gradient is that of their sum)

    mean_squared_error              (p - y)^2                          mean over the last axis
    mean_absolute_error             |p - y|                            mean
    mean_absolute_percentage_error  100 |p - y| / max(|y|, eps)        mean
    mean_squared_logarithmic_error  (log(max(p, eps) + 1) - log(max(y, eps) + 1))^2    mean
    huber                           e^2 / 2 if |e| <= delta else delta |e| - delta^2 / 2, e = p - y
    log_cosh                        e + softplus(-2 e) - log 2 = log cosh e
    hinge / squared_hinge           max(1 - y p, 0) (squared); y in {0, 1} becomes 2 y - 1
    categorical_hinge               max(max_k (1 - y_k) p_k - sum_k y_k p_k + 1, 0)     per row
    kl_divergence                   sum_k y_k log(y_k / p_k), both clipped to [eps, 1]  per row
    poisson                         p - y log(p + eps)                 mean
    cosine_similarity               -sum_k y_k p_k / (|y| |p|)         per row (norms floored at eps)
    binary_crossentropy             -(y log p + (1 - y) log(1 - p)), p clipped to [eps, 1 - eps]
    categorical_crossentropy        -sum_k y_k log q_k, q = p / sum p clipped     per row
    binary_focal_crossentropy       w (1 - p_t)^gamma bce, p_t = y p + (1 - y)(1 - p), w = alpha y +
                                    (1 - alpha)(1 - y) with apply_class_balancing else 1     mean
    categorical_focal_crossentropy  -sum_k alpha (1 - q_k)^gamma y_k log q_k   (q as above)  per row
eps = 1e-7 (Keras's backend.epsilon()); where a probability is clipped its gradient is 0
(1/2 on a bound, as JAX differentiates Keras's clip). A softmax (sigmoid) output followed by
a (binary) cross-entropy is fused: the model hands the loss the logits, the value is Keras's
(the output's probabilities clipped, so a confidently wrong sample costs -log eps = 16.1, not
its logit gap) and the gradient reaches the logits without a division by a probability:
c (A - Y) / m per one-hot row, c = 0 where the label's probability is clipped (the fused
kernel when the reduction is a plain mean). `from_logits=True` keeps the exact log-sum-exp.

Targets (batch,) against outputs (batch, K), K > 1: the elementwise losses broadcast them
as Keras does (y_true - y_pred compares target j with output column j), which works only
for a batch of 1 or of K; other batches are refused with a clear error, where Keras
fails to broadcast (keras/src/losses/loss.py squeeze_or_expand_to_same_rank).
"""

import inspect
import math

import numpy as np

from gpudl import registry
from gpudl.backend import floatx, get_backend
from gpudl.frontend import ops
from gpudl.errors import invalid_value, unknown_name
from gpudl.naming import snake_case

EPSILON = 1e-7  # keras.backend.epsilon(): probabilities are clipped to [eps, 1 - eps]
PROBABILITY_EPSILON = EPSILON
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")  # equal without weights

CUSTOM_LOSS_HELP = """Write Keras's `call(y_true, y_pred)` with keras.ops (autograd differentiates it; \
pip install "gpudl[autodiff]"), or give the gradient yourself with this one method:

    class MyLoss(gpudl.losses.Loss):
        def value_and_gradient(self, y_true, y_pred, sample_weight=None):
            xp = gpudl.backend.get_backend().xp   # numpy or cupy: y_true, y_pred are its arrays
            diff = y_pred - y_true
            loss = xp.asarray((diff ** 2).mean()) # a 0-d array: float() would wait for the GPU
            return loss, diff * (2 / diff.size)   # (loss, dloss/dy_pred shaped like y_pred)

sample_weight is None or an array of shape (batch,)."""


def _xp():
    return get_backend().xp


def _as_loss_value(value):
    """A 0-d float64 backend array (the fused kernel may give a Python float)."""
    return _xp().asarray(value, dtype=np.float64)


def reduce_weighted(values, gradient, sample_weight, reduction):
    """Keras's reduction (module docstring) of per-sample losses `values` (m,) whose
    gradients are the rows of `gradient` (m, ...); returns (loss, dL/dy_pred)."""
    xp = _xp()
    m = values.shape[0]
    weights = None if sample_weight is None else sample_weight.astype(values.dtype, copy=False)
    weighted = values if weights is None else values * weights
    if reduction in ("none", None):
        scale = 1.0
        loss = weighted
    elif reduction == "sum":
        scale = 1.0
        loss = _as_loss_value(weighted.sum(dtype=np.float64))
    elif reduction == "mean_with_sample_weight" and weights is not None:
        total = weights.sum(dtype=np.float64)
        scale = (total != 0) / xp.where(total != 0, total, 1)  # Keras's divide_no_nan
        loss = _as_loss_value(weighted.sum(dtype=np.float64) * scale)
        scale = scale.astype(gradient.dtype)
    else:  # "sum_over_batch_size", "mean", or "mean_with_sample_weight" without weights
        scale = 1.0 / m
        loss = _as_loss_value(weighted.sum(dtype=np.float64) / m)
    row_factor = scale if weights is None else weights.astype(gradient.dtype, copy=False) * scale
    if weights is not None:
        row_factor = row_factor.reshape((m,) + (1,) * (gradient.ndim - 1))
    return loss, gradient * row_factor


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise invalid_value("reduction", f"one of {REDUCTIONS}", reduction)
    return reduction


class Loss:
    """Base class of losses (Keras's `keras.losses.Loss`).

    A custom loss subclasses it and writes Keras's `call(y_true, y_pred)` (per-sample values, with
    keras.ops; autograd gives the gradient) or gpudl's `value_and_gradient` (see CUSTOM_LOSS_HELP).

    Args:
        reduction: "sum_over_batch_size" (default), "sum", "mean",
            "mean_with_sample_weight", "none" or None (module docstring).
        name: the loss's name (default: the class name in snake_case).
        dtype: the dtype `__call__` computes in (default: gpudl.backend.floatx()).

    Model-facing contract (backend arrays in, no host reads):
        value_and_gradient(y_true, y_pred, sample_weight=None) -> (loss, dL/dy_pred)
        logits_value_and_gradient(y_true, logits, sample_weight=None)   (losses with
            a `fused_activation`): the same with the output activation's input.
    """

    fused_activation = None  # the output activation whose logits this loss can take
    from_logits = False
    broadcasts_targets = False  # elementwise: targets (N,) broadcast against outputs (N, K), see below
    name, reduction = "loss", "sum_over_batch_size"  # for subclasses that skip super().__init__

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self.reduction = _check_reduction(reduction)
        self._dtype = dtype

    @property
    def dtype(self):
        return self._dtype or floatx()

    def value_and_gradient(self, y_true, y_pred, sample_weight=None):
        """A loss written with Keras's `call` alone: its value by `call` and Keras's reduction, its
        gradient by PyTorch's autograd (gpudl.frontend.autodiff), on memory shared with the arrays."""
        if not self.uses_call():
            raise NotImplementedError(f"{type(self).__name__} has neither `call` nor `value_and_gradient`. "
                                      f"{CUSTOM_LOSS_HELP}")
        return autodiff_value_and_gradient(self, y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} has no `call`.")

    def uses_call(self):
        """True for a loss that writes Keras's `call` and no `value_and_gradient` of its own."""
        cls = type(self)
        return cls.value_and_gradient is Loss.value_and_gradient and cls.call is not Loss.call

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss as Keras returns it: a float, or per-sample values (a NumPy array)
        for reduction "none"/None."""
        backend = get_backend()
        y_pred = backend.asarray(y_pred, dtype=self.dtype)
        y_true = backend.asarray(y_true)
        one_sample = y_pred.ndim == 1
        if one_sample:  # Keras: the mean over the last axis, reduced to a scalar
            y_true, y_pred = y_true[None], y_pred[None]
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]
        if sample_weight is not None:
            sample_weight = backend.asarray(sample_weight, dtype=y_pred.dtype)
            sample_weight = backend.xp.broadcast_to(sample_weight.reshape(-1), (y_pred.shape[0],))
        if self.uses_call():  # forward only, on the arrays: no engine
            loss = backend.to_numpy(ops.convert_to_tensor(reduce_weighted_values(
                self.call(y_true, y_pred), sample_weight, self.reduction)))
        else:
            loss = backend.to_numpy(self.value_and_gradient(y_true, y_pred, sample_weight)[0])
        if loss.ndim == 0:
            return float(loss)
        return loss[0] if one_sample else loss

    def prepare_targets(self, y, output_shape, where="y"):
        """Check host targets against the model's output shape (batch axis excluded);
        return them in the form value_and_gradient takes."""
        y = np.asarray(y)
        if y.ndim == 1 and output_shape == (1,):
            y = y.reshape(-1, 1)
        if self.uses_call():  # the user's call reads the targets as it likes (Keras checks nothing)
            return y
        if self.broadcasts_targets and y.ndim == 1 and len(output_shape) == 1:
            return y  # Keras's broadcast: each batch is checked by check_target_broadcast
        if y.shape[1:] != tuple(output_shape):
            raise ValueError(f"`{where}` has shape {y.shape} but the model outputs (None, "
                             f"{', '.join(map(str, output_shape))}) and {self.name} expects targets "
                             f"of the same shape.")
        return y

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def check_target_broadcast(name, y_true, y_pred):
    """Keras's y_true - y_pred for targets (B,) and outputs (B, K): NumPy broadcasting
    pairs target j with column j, defined only when B is 1 or K (Keras fails otherwise)."""
    if y_true.ndim == y_pred.ndim - 1 and y_true.shape[-1] not in (1, y_pred.shape[-1]):
        raise ValueError(
            f"{name}: targets of shape {tuple(y_true.shape)} do not broadcast against outputs of shape "
            f"{tuple(y_pred.shape)}. Like Keras, {name} subtracts targets (batch,) from outputs (batch, K) "
            f"along the last axis, which is defined only for a batch of 1 or of K={y_pred.shape[-1]}; give "
            f"targets of shape (batch, {y_pred.shape[-1]}).")


class _SampleLoss(Loss):
    """A loss given by `per_sample(y_true, y_pred) -> (l (m,), gradient)`, where
    `gradient()` computes dl_i/dy_pred (rows) only when training asks for it."""

    def value_and_gradient(self, y_true, y_pred, sample_weight=None):
        values, gradient = self._per_sample(y_true, y_pred)
        return reduce_weighted(values, gradient(), sample_weight, self.reduction)

    def call(self, y_true, y_pred):
        """Keras's per-sample losses (before weighting and reduction)."""
        return self._per_sample(y_true, y_pred)[0]

    def _per_sample(self, y_true, y_pred):
        if self.broadcasts_targets:
            check_target_broadcast(self.name, y_true, y_pred)
        return self.per_sample(y_true, y_pred)


class _ElementwiseLoss(_SampleLoss):
    """The mean over the last axis of an elementwise term of (y_true, y_pred)."""

    broadcasts_targets = True


def _mean_over_last_axis(term, derivative):
    """Per-sample mean of an elementwise term, and the lazy gradient derivative / K."""
    k = term.shape[-1]
    return term.mean(axis=-1), lambda: derivative() / term.dtype.type(k)


def clip_gradient(p, low=EPSILON, high=1 - EPSILON):
    """d clip(p, low, high)/dp as JAX differentiates Keras's clip (a max, then a min, each
    splitting a tie in two): 1 inside, 0 outside, 1/2 on a bound."""
    return ((p > low).astype(p.dtype) + (p >= low)) * ((p < high).astype(p.dtype) + (p <= high)) / 4


class MeanSquaredError(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        return _mean_over_last_axis(diff * diff, lambda: 2 * diff)


class MeanAbsoluteError(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        return _mean_over_last_axis(_xp().abs(diff), lambda: _xp().sign(diff))


class MeanAbsolutePercentageError(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        y = y_true.astype(y_pred.dtype, copy=False)
        diff = y_pred - y
        floor = xp.maximum(xp.abs(y), EPSILON)
        values, gradient = _mean_over_last_axis(xp.abs(diff / floor), lambda: xp.sign(diff) / floor)
        return 100 * values, lambda: 100 * gradient()


class MeanSquaredLogarithmicError(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        y = y_true.astype(y_pred.dtype, copy=False)
        p_floor = xp.maximum(y_pred, EPSILON)
        diff = xp.log(p_floor + 1) - xp.log(xp.maximum(y, EPSILON) + 1)
        return _mean_over_last_axis(diff * diff, lambda: 2 * diff / (p_floor + 1) * (y_pred > EPSILON))


class Huber(_ElementwiseLoss):
    """Args: delta: where the loss turns from quadratic to linear (default 1.0)."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = delta

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        error = y_pred - y_true.astype(y_pred.dtype, copy=False)
        delta = y_pred.dtype.type(self.delta)
        inside = xp.abs(error) <= delta
        term = xp.where(inside, 0.5 * error * error, delta * xp.abs(error) - 0.5 * delta * delta)
        return _mean_over_last_axis(term, lambda: xp.where(inside, error, delta * xp.sign(error)))

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        x = y_pred - y_true.astype(y_pred.dtype, copy=False)
        softplus = xp.maximum(-2 * x, 0) + xp.log1p(xp.exp(-xp.abs(2 * x)))  # softplus(-2x), stable
        return _mean_over_last_axis(x + softplus - math.log(2.0), lambda: xp.tanh(x))


def _hinge_labels(y_true, dtype):
    """Keras: when every label is 0 or 1, they become -1 and 1 (decided on the device)."""
    xp = _xp()
    y = y_true.astype(dtype, copy=False)
    return xp.where(xp.all((y == 0) | (y == 1)), 2 * y - 1, y)


class Hinge(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        y = _hinge_labels(y_true, y_pred.dtype)
        margin = _xp().maximum(1 - y * y_pred, 0)
        return _mean_over_last_axis(margin, lambda: -y * (margin > 0))


class SquaredHinge(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        y = _hinge_labels(y_true, y_pred.dtype)
        margin = _xp().maximum(1 - y * y_pred, 0)
        return _mean_over_last_axis(margin * margin, lambda: -2 * y * margin)


class CategoricalHinge(_SampleLoss):
    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        y = y_true.astype(y_pred.dtype, copy=False)
        negatives = (1 - y) * y_pred
        worst = negatives.argmax(axis=-1)
        loss = xp.maximum(xp.take_along_axis(negatives, worst[:, None], axis=-1)[:, 0]
                          - (y * y_pred).sum(axis=-1) + 1, 0)

        def gradient():
            picked = xp.arange(y.shape[-1]) == worst[:, None]
            return ((1 - y) * picked - y) * (loss > 0)[:, None]

        return loss, gradient


class KLDivergence(_SampleLoss):
    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        y = xp.clip(y_true.astype(y_pred.dtype, copy=False), EPSILON, 1)
        p = xp.clip(y_pred, EPSILON, 1)
        return (y * xp.log(y / p)).sum(axis=-1), lambda: -y / p * clip_gradient(y_pred, EPSILON, 1)


class Poisson(_ElementwiseLoss):
    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def per_sample(self, y_true, y_pred):
        y = y_true.astype(y_pred.dtype, copy=False)
        return _mean_over_last_axis(y_pred - y * _xp().log(y_pred + EPSILON), lambda: 1 - y / (y_pred + EPSILON))


def _check_last_axis(axis, where):
    if axis not in (-1, 1):
        raise invalid_value("axis", "-1 (the last axis of (batch, features) arrays)", axis, where)
    return axis


class CosineSimilarity(_SampleLoss):
    """Args: axis: the axis of the vectors (-1, the only one of (batch, features) arrays)."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = _check_last_axis(axis, "CosineSimilarity")

    def per_sample(self, y_true, y_pred):
        """Keras's normalize(x) = x * min(1 / |x|, 1 / eps); the gradient of -y_n . p_n:
        -(y_n - (y_n . p_n) p_n) / |p| where the norm is above eps, else -y_n / eps."""
        y_unit, _, _ = _normalize(y_true.astype(y_pred.dtype, copy=False))
        p_unit, inverse_norm, unfloored = _normalize(y_pred)
        cosine = (y_unit * p_unit).sum(axis=-1)
        return -cosine, lambda: -inverse_norm * (y_unit - unfloored * cosine[:, None] * p_unit)


def _normalize(x):
    """(x * inv, inv, inv is 1/|x|) with inv = min(1/|x|, 1/eps) per row (Keras's normalize)."""
    xp = _xp()
    with np.errstate(divide="ignore"):
        exact = 1 / xp.sqrt((x * x).sum(axis=-1, keepdims=True))
    inverse_norm = xp.minimum(exact, 1 / EPSILON).astype(x.dtype)
    return x * inverse_norm, inverse_norm, exact < 1 / EPSILON


class _CrossEntropy(_SampleLoss):
    """Cross-entropies: `from_logits` (y_pred is the activation's input) and
    `label_smoothing` y' = y (1 - s) + s / K (categorical) or + s / 2 (binary)."""

    def __init__(self, from_logits, label_smoothing, axis, reduction, name, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits
        if not 0 <= label_smoothing <= 1:
            raise invalid_value("label_smoothing", "a float in [0, 1]", label_smoothing, type(self).__name__)
        self.label_smoothing = label_smoothing
        self.axis = _check_last_axis(axis, type(self).__name__)

    smoothing_classes = None  # the K of label smoothing: 2 (binary), else the width of y

    def targets(self, y_true, y_pred):
        """The targets as the formulas (and the fused kernel) take them: smoothed floats."""
        y = y_true.astype(y_pred.dtype, copy=False)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / (self.smoothing_classes or y.shape[-1])
        return y

    def _per_sample(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_per_sample(y_true, y_pred)
        return self.per_sample(y_true, y_pred)

    def logits_value_and_gradient(self, y_true, logits, sample_weight=None):
        """The fused path: Keras's loss of y_pred = activation(logits) (probabilities clipped),
        its gradient carried through the activation to the logits."""
        through = _through_softmax if self.fused_activation == "softmax" else _through_sigmoid
        values, gradient = through(lambda p: self.per_sample(y_true, p), logits)
        return reduce_weighted(values, gradient(), sample_weight, self.reduction)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalCrossentropy(_CrossEntropy):
    fused_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def per_sample(self, y_true, y_pred):
        return _probability_cross_entropy(self.one_hot(self.targets(y_true, y_pred), y_pred), y_pred)

    def logits_per_sample(self, y_true, logits):
        """l_i = logsumexp(z_i) sum_k y_ik - sum_k y_ik z_ik;  dl_i/dz_i = softmax(z_i) sum_k y_ik - y_i."""
        xp = _xp()
        targets = self.targets(y_true, logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_sum_exp = xp.log(xp.exp(shifted).sum(axis=-1))
        if targets.ndim == 1:  # class indices
            values = log_sum_exp - xp.take_along_axis(shifted, targets[:, None], axis=-1)[:, 0]
        else:
            values = (targets * (log_sum_exp[:, None] - shifted)).sum(axis=-1)

        def gradient():
            softmax = get_backend().ops.softmax(logits)
            if targets.ndim == 1:
                softmax[xp.arange(targets.shape[0]), targets] -= 1
                return softmax
            return softmax * targets.sum(axis=-1, keepdims=True) - targets

        return values, gradient

    def logits_value_and_gradient(self, y_true, logits, sample_weight=None):
        """The fused softmax-cross-entropy kernel (probabilities clipped as Keras clips them)
        when the reduction is a plain mean."""
        if sample_weight is None and self.reduction in MEAN_REDUCTIONS:
            loss, dlogits = get_backend().ops.softmax_cross_entropy(logits, self.targets(y_true, logits),
                                                                    epsilon=EPSILON)
            return _as_loss_value(loss), dlogits
        return super().logits_value_and_gradient(y_true, logits, sample_weight)

    def one_hot(self, targets, y_pred):
        return targets

    def prepare_targets(self, y, output_shape, where="y"):
        y = super().prepare_targets(y, output_shape, where)
        if np.any(y < 0) or np.any(y > 1):
            raise ValueError(f"`{where}` must hold one-hot or probability targets in [0, 1] for "
                             f"{self.name}; found values in [{y.min()}, {y.max()}]. For integer labels "
                             f"use SparseCategoricalCrossentropy.")
        return y


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Integer class labels (m,) or (m, 1). Args as Keras; `ignore_class` must be None."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        if ignore_class is not None:
            raise invalid_value("ignore_class", "None (gpudl has no masked losses)", ignore_class,
                                "SparseCategoricalCrossentropy")
        super().__init__(from_logits, 0.0, axis, reduction, name, dtype)
        self.ignore_class = ignore_class

    def targets(self, y_true, logits):
        labels = y_true.reshape(-1) if y_true.ndim == 2 and y_true.shape[1] == 1 else y_true
        return labels.astype(np.int64, copy=False)

    def one_hot(self, targets, y_pred):
        return _xp().eye(y_pred.shape[-1], dtype=y_pred.dtype)[targets]

    def prepare_targets(self, y, output_shape, where="y"):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        classes = output_shape[-1]
        if y.ndim != 1 or (y.dtype.kind == "f" and np.any(y != np.round(y))) or y.dtype.kind not in "iuf":
            raise ValueError(f"`{where}` must be integer class labels of shape (N,) for {self.name}; "
                             f"received dtype {y.dtype} and shape {y.shape}.")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"`{where}` holds labels in [{int(y.min())}, {int(y.max())}] but the model "
                             f"has {classes} classes: labels must be in [0, {classes - 1}].")
        return y.astype(np.int64)

    def get_config(self):
        config = super().get_config()
        del config["label_smoothing"]
        return {**config, "ignore_class": self.ignore_class}


class BinaryCrossentropy(_CrossEntropy):
    fused_activation = "sigmoid"
    smoothing_classes = 2

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def per_sample(self, y_true, y_pred):
        xp = _xp()
        y = self.targets(y_true, y_pred)
        p = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        term = -(y * xp.log(p) + (1 - y) * xp.log(1 - p))
        return _mean_over_last_axis(term, lambda: (p - y) / (p * (1 - p)) * clip_gradient(y_pred))

    def logits_per_sample(self, y_true, logits):
        """max(z, 0) - z y + log(1 + e^-|z|), mean over the last axis;  d/dz = sigmoid(z) - y."""
        xp = _xp()
        z, y = logits, self.targets(y_true, logits)
        term = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
        return _mean_over_last_axis(term, lambda: _sigmoid(z) - y)

    def prepare_targets(self, y, output_shape, where="y"):
        y = super().prepare_targets(y, output_shape, where)
        if np.any(y < 0) or np.any(y > 1):
            raise ValueError(f"`{where}` must hold targets in [0, 1] for {self.name}; found values in "
                             f"[{y.min()}, {y.max()}].")
        return y


class BinaryFocalCrossentropy(_CrossEntropy):
    """Binary cross-entropy scaled by the focal factor (1 - p_t)^gamma (Lin et al., 2018):
    l = mean_k w (1 - p_t)^gamma bce(y, p), p_t = y p + (1 - y)(1 - p), bce on p clipped
    to [eps, 1 - eps] (the focal factor on p itself, as Keras), w = alpha y + (1 - alpha)(1 - y)
    when apply_class_balancing, else 1. from_logits: p = sigmoid(y_pred) (then clipped).

    Args (Keras's): apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
        label_smoothing=0.0 (y' = y (1 - s) + s / 2), axis=-1, reduction, name, dtype.
    """

    smoothing_classes = 2

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        self.apply_class_balancing, self.alpha, self.gamma = apply_class_balancing, alpha, gamma

    def per_sample(self, y_true, y_pred):
        term, gradient = self.focal_term(self.targets(y_true, y_pred), y_pred)
        return _mean_over_last_axis(term, gradient)

    def logits_per_sample(self, y_true, logits):
        """p = sigmoid(z), then per_sample's formula."""
        return _through_sigmoid(lambda p: self.per_sample(y_true, p), logits)

    def focal_term(self, y, p):
        """The elementwise term and its lazy derivative in p:
        d/dp = w (gamma (1 - p_t)^(gamma - 1) (1 - 2 y) bce + (1 - p_t)^gamma dbce/dp)."""
        xp = _xp()
        clipped = xp.clip(p, EPSILON, 1 - EPSILON)
        bce = -(y * xp.log(clipped) + (1 - y) * xp.log(1 - clipped))
        distance = y + p - 2 * y * p  # 1 - p_t
        focal = distance ** self.gamma
        weight = self.alpha * y + (1 - self.alpha) * (1 - y) if self.apply_class_balancing else 1

        def gradient():
            d_bce = (clipped - y) / (clipped * (1 - clipped)) * clip_gradient(p)
            d_focal = self.gamma * distance ** (self.gamma - 1) * (1 - 2 * y) if self.gamma else 0
            return weight * (d_focal * bce + focal * d_bce)

        return weight * focal * bce, gradient

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha,
                "gamma": self.gamma}


class CategoricalFocalCrossentropy(_CrossEntropy):
    """Categorical cross-entropy with each class's term scaled by alpha (1 - q_k)^gamma
    (Lin et al., 2018): l = -sum_k alpha (1 - q_k)^gamma y_k log q_k, q = p / sum p clipped
    to [eps, 1 - eps]; from_logits: p = softmax(y_pred) first.

    Args (Keras's): alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0
        (y' = y (1 - s) + s / K), axis=-1, reduction, name, dtype.
    """

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        self.alpha, self.gamma = alpha, gamma

    def per_sample(self, y_true, y_pred):
        return _probability_cross_entropy(self.targets(y_true, y_pred), y_pred, self.alpha, self.gamma)

    def logits_per_sample(self, y_true, logits):
        """p = softmax(z), then per_sample's formula."""
        return _through_softmax(lambda p: self.per_sample(y_true, p), logits)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


def _sigmoid(z):
    """1 / (1 + e^-z) without overflow: e^-|z| / (1 + e^-|z|) for z < 0."""
    xp = _xp()
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _through_softmax(per_sample, logits):
    """(values, gradient in z) of a per-sample loss of p = softmax(z) (per_sample(p) ->
    (values, gradient in p)): dl/dz = p (g - sum_k g_k p_k), g = dl/dp."""
    p = get_backend().ops.softmax(logits)
    values, gradient = per_sample(p)

    def logits_gradient():
        g = gradient()
        return p * (g - (g * p).sum(axis=-1, keepdims=True))

    return values, logits_gradient


def _through_sigmoid(per_sample, logits):
    """The same for p = sigmoid(z): dl/dz = dl/dp p (1 - p)."""
    p = _sigmoid(logits)
    values, gradient = per_sample(p)
    return values, lambda: gradient() * p * (1 - p)


def _probability_cross_entropy(y, p, alpha=1.0, gamma=0.0):
    """Keras's (focal) CE on probabilities, per row: q = p / sum p clipped to [eps, 1 - eps],
    l = -sum_k alpha (1 - q_k)^gamma y_k log q_k (alpha=1, gamma=0: plain CE); the exact
    gradient through both the division and the clip:
        dl/dq_k = alpha (gamma (1 - q_k)^(gamma - 1) y_k log q_k - (1 - q_k)^gamma y_k / q_k)."""
    xp = _xp()
    total = p.sum(axis=-1, keepdims=True)
    q = p / total
    q_clipped = xp.clip(q, EPSILON, 1 - EPSILON)
    log_q = xp.log(q_clipped)
    focal = (1 - q_clipped) ** gamma if gamma else 1

    def gradient():
        dq = -focal * y / q_clipped
        if gamma:
            dq = dq + gamma * (1 - q_clipped) ** (gamma - 1) * y * log_q
        dq = alpha * dq * clip_gradient(q)
        return (dq - (dq * q).sum(axis=-1, keepdims=True)) / total

    return -alpha * (focal * y * log_q).sum(axis=-1), gradient


# Keras's loss functions: per-sample losses of backend arrays (keras.losses.mean_squared_error).

def _function(cls, name, **defaults):
    def loss_function(y_true, y_pred, **kwargs):
        backend = get_backend()
        y_pred = backend.asarray(y_pred)
        y_pred = y_pred if y_pred.dtype.kind == "f" else y_pred.astype(floatx())
        y_true = backend.asarray(y_true)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]
        return cls(**{**defaults, **kwargs}).call(y_true, y_pred)

    loss_function.__name__ = loss_function.__qualname__ = name
    loss_function.loss_class = cls
    loss_function.__doc__ = f"Per-sample {name} (Keras's keras.losses.{name}); see {cls.__name__}."
    return loss_function


mean_squared_error = _function(MeanSquaredError, "mean_squared_error")
mean_absolute_error = _function(MeanAbsoluteError, "mean_absolute_error")
mean_absolute_percentage_error = _function(MeanAbsolutePercentageError, "mean_absolute_percentage_error")
mean_squared_logarithmic_error = _function(MeanSquaredLogarithmicError, "mean_squared_logarithmic_error")
huber = _function(Huber, "huber")
log_cosh = _function(LogCosh, "log_cosh")
hinge = _function(Hinge, "hinge")
squared_hinge = _function(SquaredHinge, "squared_hinge")
categorical_hinge = _function(CategoricalHinge, "categorical_hinge")
kl_divergence = _function(KLDivergence, "kl_divergence")
poisson = _function(Poisson, "poisson")
cosine_similarity = _function(CosineSimilarity, "cosine_similarity")
binary_crossentropy = _function(BinaryCrossentropy, "binary_crossentropy")
categorical_crossentropy = _function(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _function(SparseCategoricalCrossentropy, "sparse_categorical_crossentropy")
binary_focal_crossentropy = _function(BinaryFocalCrossentropy, "binary_focal_crossentropy")
categorical_focal_crossentropy = _function(CategoricalFocalCrossentropy, "categorical_focal_crossentropy")

FUNCTIONS = [mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
             mean_squared_logarithmic_error, huber, log_cosh, hinge, squared_hinge, categorical_hinge,
             kl_divergence, poisson, cosine_similarity, binary_crossentropy, categorical_crossentropy,
             sparse_categorical_crossentropy, binary_focal_crossentropy, categorical_focal_crossentropy]
CLASSES = [fn.loss_class for fn in FUNCTIONS]

# Keras's names: class names, function names and its short aliases.
LOSSES = dict(registry.register("loss", CLASSES))
LOSSES.update({fn.__name__: fn.loss_class for fn in FUNCTIONS})
LOSSES.update({alias: cls for cls, aliases in [
    (BinaryCrossentropy, ("bce", "BCE")), (KLDivergence, ("kld", "KLD")), (MeanAbsoluteError, ("mae", "MAE")),
    (MeanSquaredError, ("mse", "MSE")), (MeanAbsolutePercentageError, ("mape", "MAPE")),
    (MeanSquaredLogarithmicError, ("msle", "MSLE"))] for alias in aliases})


# User losses: Keras's `call` (or a plain function) and reduction, differentiated by autograd.

def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: when the ranks differ by one and the longer ends in 1, drop that axis (or add
    one to a rank-1 partner)."""
    rank1, rank2 = ops.ndim(x1), ops.ndim(x2)
    if rank1 == rank2 + 1 and ops.shape(x1)[-1] == 1:
        if rank2 == 1 and expand_rank_1:
            return x1, ops.expand_dims(x2, -1)
        return ops.squeeze(x1, -1), x2
    if rank2 == rank1 + 1 and ops.shape(x2)[-1] == 1:
        if rank1 == 1 and expand_rank_1:
            return ops.expand_dims(x1, -1), x2
        return x1, ops.squeeze(x2, -1)
    return x1, x2


def reduce_weighted_values(values, sample_weight, reduction):
    """Keras's reduce_weighted_values in ops (so it runs on arrays and on torch): values * weights,
    then "sum", sum / number of values ("sum_over_batch_size", "mean"), sum / sum of weights
    ("mean_with_sample_weight" with weights, 0 when they sum to 0), or the values ("none")."""
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, ops.cast(sample_weight, ops.dtype(values)))
        values = ops.multiply(values, sample_weight)
    if reduction in ("none", None) or ops.ndim(values) == 0 or ops.shape(values) == (0,):
        return values
    loss = ops.sum(values)
    if reduction == "sum":
        return loss
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        total = ops.sum(sample_weight)
        return ops.where(ops.not_equal(total, 0), ops.divide(loss, ops.where(ops.equal(total, 0), 1.0, total)), 0.0)
    return ops.divide(loss, float(ops.size(values)))


def autodiff_value_and_gradient(loss, y_true, y_pred, sample_weight):
    """(loss value, dL/dy_pred) of a Loss written with `call`: the user's call and Keras's reduction
    run on torch tensors viewing the arrays, in y_pred's dtype; the gradient is autograd's."""
    from gpudl.frontend import autodiff

    def total(truth, prediction, weights):
        return reduce_weighted_values(loss.call(truth, prediction), weights, loss.reduction)

    truth = y_true.astype(y_pred.dtype, copy=False)  # in the model's dtype (float64 for gradient checks)
    piece = autodiff.Piece(total, [truth, y_pred, sample_weight], [False, True, False])
    value = piece.output
    (_, gradient, _) = piece.backward(_xp().ones(value.shape, dtype=value.dtype))
    return _xp().asarray(value, dtype=np.float64), gradient.astype(y_pred.dtype, copy=False)


class LossFunctionWrapper(Loss):
    """Keras's wrapper of a plain loss function `fn(y_true, y_pred, **kwargs)` (per-sample values),
    reduced as a Loss; what compile makes of `loss=my_function`.

    Args:
        fn: the function; reduction, name, dtype: as Loss; kwargs: passed to fn.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn, self._fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {**super().get_config(), "fn": getattr(self.fn, "__name__", repr(self.fn)), **self._fn_kwargs}


def check_has_gradient(loss):
    """Refuse a Loss whose gradient gpudl cannot know: one that writes only Keras's `call`."""
    cls = type(loss)

    def owner(attribute):
        return next(c for c in cls.__mro__ if attribute in c.__dict__)

    gradient_owner, call_owner = owner("value_and_gradient"), owner("call")
    if gradient_owner is Loss and call_owner is Loss:
        raise ValueError(f"The loss {cls.__name__} defines neither `call` nor `value_and_gradient`. "
                         f"{CUSTOM_LOSS_HELP}")
    if gradient_owner is not Loss and call_owner is not gradient_owner and issubclass(call_owner, gradient_owner):
        raise ValueError(f"The loss {cls.__name__} overrides `call` of {gradient_owner.__name__}, whose "
                         f"`value_and_gradient` would not see it: subclass gpudl.losses.Loss directly (its "
                         f"gradient then comes from autograd), or write `value_and_gradient` too.")
    return loss


# Keras's ALL_OBJECTS_DICT: what keras.losses.get returns for each name.
ALL_OBJECTS = {cls.__name__: cls for cls in CLASSES}
ALL_OBJECTS.update({fn.__name__: fn for fn in FUNCTIONS})
ALL_OBJECTS.update({alias: fn for fn, aliases in [
    (binary_crossentropy, ("bce", "BCE")), (kl_divergence, ("kld", "KLD")), (mean_absolute_error, ("mae", "MAE")),
    (mean_squared_error, ("mse", "MSE")), (mean_absolute_percentage_error, ("mape", "MAPE")),
    (mean_squared_logarithmic_error, ("msle", "MSLE"))] for alias in aliases})


def get(identifier):
    """Keras's keras.losses.get: a function name or alias gives the function
    ("mse" -> mean_squared_error), a class name or class gives an instance, a config dict
    its Loss; a function or Loss object comes back as it is; None gives None.
    (compile resolves its loss with `loss_object`, which always gives a Loss.)"""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier not in ALL_OBJECTS:
            raise unknown_name("loss", identifier, ALL_OBJECTS)
        identifier = ALL_OBJECTS[identifier]
    if not callable(identifier):
        raise invalid_value("loss", "a loss name, function, Loss object or class, or config dict", identifier)
    return identifier() if inspect.isclass(identifier) else identifier


def loss_object(identifier):
    """The Loss that trains: from a name ("mse", "CategoricalCrossentropy"), a Loss object
    or class, one of Keras's loss functions (keras.losses.mean_squared_error ->
    MeanSquaredError()) or a serialized dict. A plain function becomes a LossFunctionWrapper; it and a
    Loss written with `call` are differentiated by autograd (Loss.value_and_gradient)."""
    loss = get(identifier)
    if isinstance(loss, Loss):
        return check_has_gradient(loss)
    if callable(getattr(loss, "loss_class", None)):
        return loss.loss_class()
    if callable(loss):  # a plain function of (y_true, y_pred), differentiated by autograd
        return LossFunctionWrapper(loss, name=getattr(loss, "__name__", None))
    raise invalid_value("loss", "a loss name, a gpudl.losses.Loss object or class", identifier)


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config, custom_objects=None):
    """The Loss of `serialize(loss)`; custom Loss classes come from `custom_objects`."""
    cls = registry.find(config["class_name"], ("loss",), custom_objects)
    if cls is None:
        raise unknown_name("loss", config["class_name"], {**registry.classes("loss"), **(custom_objects or {})})
    return check_has_gradient(cls.from_config(config["config"]))
