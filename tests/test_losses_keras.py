"""Losses with Keras 3's names, reductions, sample_weight and label_smoothing: values against
float64 NumPy formulas written here and against numbers Keras printed; every hand-written
gradient against two-sided differences of the loss itself."""

import numpy as np
import pytest
import scipy.special

import gpudl
from gpudl.frontend import losses
from gpudl.frontend.gradient_check import relative_difference

EPS = 1e-7
RNG = np.random.default_rng(2026)
M, K = 6, 4


def _binary_to_signs(y):
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


# name -> (loss object, per-sample float64 formula, y_true, y_pred); formulas from Keras's docs
def _cases():
    probs = RNG.random((M, K)) * 0.9 + 0.05
    target_probs = RNG.random((M, K))
    target_probs /= target_probs.sum(axis=1, keepdims=True)
    values, targets = RNG.normal(size=(M, K)) * 2, RNG.normal(size=(M, K))
    bits = RNG.integers(0, 2, (M, K)).astype(float)
    labels = RNG.integers(0, K, M)
    smooth_bits, smooth_probs = bits * 0.9 + 0.05, target_probs * 0.8 + 0.2 / K

    def huber(y, p, d=0.3):
        e = p - y
        return np.where(np.abs(e) <= d, e * e / 2, d * np.abs(e) - d * d / 2).mean(-1)

    def cce(y, p):
        q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
        return -(y * np.log(q)).sum(-1)

    def bce(y, p):
        p = np.clip(p, EPS, 1 - EPS)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(-1)

    return {
        "mse": ("mse", lambda y, p: ((p - y) ** 2).mean(-1), targets, values),
        "mae": ("mae", lambda y, p: np.abs(p - y).mean(-1), targets, values),
        "mape": ("mape", lambda y, p: 100 * (np.abs(y - p) / np.maximum(np.abs(y), EPS)).mean(-1), targets, values),
        "msle": ("msle", lambda y, p: ((np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(y, EPS))) ** 2).mean(-1),
                 np.abs(targets), values),
        "huber": (losses.Huber(delta=0.3), huber, targets, values),
        "log_cosh": ("log_cosh", lambda y, p: np.log(np.cosh(p - y)).mean(-1), targets, values),
        "hinge": ("hinge", lambda y, p: np.maximum(1 - _binary_to_signs(y) * p, 0).mean(-1), bits, values),
        "hinge_signed": ("hinge", lambda y, p: np.maximum(1 - y * p, 0).mean(-1), 2 * bits - 1, values),
        "squared_hinge": ("squared_hinge", lambda y, p: (np.maximum(1 - _binary_to_signs(y) * p, 0) ** 2).mean(-1),
                          bits, values),
        "categorical_hinge": ("categorical_hinge",
                              lambda y, p: np.maximum(((1 - y) * p).max(-1) - (y * p).sum(-1) + 1, 0), bits, values),
        "kl_divergence": ("kld", lambda y, p: (np.clip(y, EPS, 1) * np.log(np.clip(y, EPS, 1) / np.clip(p, EPS, 1)))
                          .sum(-1), target_probs, probs),
        "poisson": ("poisson", lambda y, p: (p - y * np.log(p + EPS)).mean(-1), np.abs(targets), probs * 3),
        "cosine_similarity": ("cosine_similarity", lambda y, p: -(y * p).sum(-1) / np.linalg.norm(y, axis=-1)
                              / np.linalg.norm(p, axis=-1), targets, values),
        "bce": ("binary_crossentropy", bce, bits, probs),
        "bce_smoothed": (losses.BinaryCrossentropy(label_smoothing=0.1), lambda y, p: bce(smooth_bits, p), bits, probs),
        "bce_logits_smoothed": (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                                lambda y, z: bce(smooth_bits, scipy.special.expit(z)), bits, values),
        "cce": ("categorical_crossentropy", cce, target_probs, probs),
        "cce_smoothed": (losses.CategoricalCrossentropy(label_smoothing=0.2), lambda y, p: cce(smooth_probs, p),
                         target_probs, probs),
        "cce_logits_smoothed": (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
                                lambda y, z: -(smooth_probs * scipy.special.log_softmax(z, -1)).sum(-1),
                                target_probs, values),
        "scce": ("sparse_categorical_crossentropy", lambda y, p: cce(np.eye(K)[y], p), labels, probs),
        "scce_logits": (losses.SparseCategoricalCrossentropy(from_logits=True),
                        lambda y, z: -scipy.special.log_softmax(z, -1)[np.arange(M), y], labels, values),
    }


CASES = _cases()
WEIGHTS = RNG.random(M) * 2


def reference(per_sample, weights, reduction):
    """Keras's reduction, in float64: the weighted sum over m samples, not over sum(w)."""
    weighted = per_sample * (1.0 if weights is None else weights)
    if reduction in ("none", None):
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean_with_sample_weight" and weights is not None:
        return weighted.sum() / weights.sum()
    return weighted.sum() / len(per_sample)


def loss_object(identifier, reduction="sum_over_batch_size"):
    loss = losses.loss_object(identifier)
    return type(loss).from_config({**loss.get_config(), "reduction": reduction})


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_value_matches_float64_formula_with_each_reduction_and_sample_weight(case, reduction):
    identifier, formula, y_true, y_pred = CASES[case]
    loss = loss_object(identifier, reduction)
    for weights in (None, WEIGHTS):
        value, gradient = loss.value_and_gradient(y_true, y_pred, weights)
        assert gradient.shape == y_pred.shape
        np.testing.assert_allclose(value, reference(formula(y_true, y_pred), weights, reduction), rtol=1e-12)
        if reduction != "none":
            assert isinstance(value, np.ndarray) and value.shape == ()  # a 0-d array, never a Python float


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_gradient_matches_central_differences(case, reduction):
    identifier, _, y_true, y_pred = CASES[case]
    loss = loss_object(identifier, reduction)

    def total(p):
        return float(np.sum(loss.value_and_gradient(y_true, p, WEIGHTS)[0]))

    step, approx = 1e-6, np.zeros_like(y_pred)
    for index in np.ndindex(y_pred.shape):
        shift = np.zeros_like(y_pred)
        shift[index] = step
        approx[index] = (total(y_pred + shift) - total(y_pred - shift)) / (2 * step)
    analytic = loss.value_and_gradient(y_true, y_pred, WEIGHTS)[1]
    assert relative_difference(approx, analytic) < 1e-7


@pytest.mark.parametrize("identifier, targets", [
    ("categorical_crossentropy", CASES["cce"][2]), ("sparse_categorical_crossentropy", CASES["scce"][2])])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_fused_softmax_path_equals_the_logits_formula(identifier, targets, reduction):
    """The model's logits path (kernel, or per-row losses with weights) against
    -sum y log_softmax(z) and its gradient softmax(z) - y, reduced as Keras."""
    logits = RNG.normal(size=(M, K)) * 3
    y = np.eye(K)[targets] if targets.ndim == 1 else targets
    per_sample = -(y * scipy.special.log_softmax(logits, -1)).sum(-1)
    loss = loss_object(identifier, reduction)
    for weights in (None, WEIGHTS):
        value, dlogits = loss.logits_value_and_gradient(targets, logits, weights)
        assert isinstance(value, np.ndarray) and value.shape == ()
        np.testing.assert_allclose(value, reference(per_sample, weights, reduction), rtol=1e-12)
        row_gradient = scipy.special.softmax(logits, -1) - y
        d_loss_d_row = np.array([reference(row, weights, reduction) for row in np.eye(M)])  # linear in the rows
        np.testing.assert_allclose(dlogits, row_gradient * d_loss_d_row[:, None], rtol=1e-10, atol=1e-15)


class NoHostRead(np.ndarray):
    """An array that fails on every way of reading a value back to the host."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("a loss read an array back to the host")

    __float__ = __int__ = __index__ = __bool__ = item = tolist = _refuse


@pytest.mark.parametrize("case", list(CASES))
def test_weighted_value_and_gradient_never_read_the_device(case):
    """What fit calls each step stays on the device. (The unweighted fused softmax path is
    the kernel's: its NumPy reference is tested with the kernels.)"""
    identifier, _, y_true, y_pred = CASES[case]
    loss = losses.loss_object(identifier)
    value, gradient = loss.value_and_gradient(y_true.view(NoHostRead), y_pred.view(NoHostRead),
                                              WEIGHTS.view(NoHostRead))
    assert value.shape == () and gradient.shape == y_pred.shape
    if loss.fused_activation:
        loss.logits_value_and_gradient(y_true.view(NoHostRead), y_pred.view(NoHostRead), WEIGHTS.view(NoHostRead))


def test_sample_weight_divides_by_the_batch_size_not_the_weights():
    """Keras's sum_over_batch_size: doubling every weight doubles the loss;
    mean_with_sample_weight divides it away."""
    y, p = CASES["mse"][2], CASES["mse"][3]
    plain = losses.MeanSquaredError()(y, p)
    assert losses.MeanSquaredError()(y, p, sample_weight=np.full(M, 2.0)) == pytest.approx(2 * plain, rel=1e-6)
    by_weight = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert by_weight(y, p, sample_weight=np.full(M, 2.0)) == pytest.approx(plain, rel=1e-6)


# Keras 3.15.1 (JAX backend, JAX_ENABLE_X64=1, keras.config.set_floatx("float64")) printed
#   keras.losses.<Class>(reduction=..., **args)(y_true, y_pred, sample_weight=w)
# on the inputs of _keras_inputs(). Keras's ops.mean computes in float32 even then, so the
# losses that average over the last axis (BinaryCrossentropy, Huber) agree to float32 only.
def _keras_inputs():
    rng = np.random.default_rng(7)
    y = rng.random((6, 4))
    y /= y.sum(1, keepdims=True)
    return dict(y=y, p=rng.random((6, 4)) * 0.9 + 0.05, w=rng.random(6) * 2, labels=rng.integers(0, 4, 6),
                z=rng.normal(size=(6, 4)) * 2, bits=rng.integers(0, 2, (6, 4)).astype(float))


@pytest.mark.parametrize("loss, y_key, p_key, keras_value, rtol", [
    (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), "y", "z", 2.4715594145765993, 1e-13),
    (losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"), "labels", "z",
     2.1613465050002816, 1e-13),
    (losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="sum"), "y", "p", 9.826375501722097, 1e-13),
    (losses.KLDivergence(), "y", "p", 0.050326667740085596, 1e-13),
    (losses.CosineSimilarity(reduction="mean_with_sample_weight"), "y", "z", 0.2894854707089865, 1e-13),
    (losses.CategoricalHinge(), "bits", "z", 2.5470507661911816, 1e-13),
    (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), "bits", "z", 0.8940867608499721, 1e-7),
    (losses.Huber(delta=0.3), "y", "p", 0.05298915298498171, 1e-7),
])
def test_weighted_losses_match_numbers_keras_printed(loss, y_key, p_key, keras_value, rtol):
    data = _keras_inputs()
    float32_value = loss(data[y_key], data[p_key], sample_weight=data["w"])
    assert float32_value == pytest.approx(keras_value, rel=1e-6)
    float64_loss = type(loss)(**loss.get_config(), dtype="float64")
    assert float64_loss(data[y_key], data[p_key], sample_weight=data["w"]) == pytest.approx(keras_value, rel=rtol)


def test_call_returns_a_float_or_per_sample_values_and_expands_a_label_column():
    y, p = RNG.random(5), RNG.random((5, 1))
    assert isinstance(losses.MeanAbsoluteError()(y, p), float)
    np.testing.assert_allclose(losses.MeanAbsoluteError(reduction="none")(y, p), np.abs(p[:, 0] - y), rtol=1e-6)
    assert losses.MeanSquaredError()([1.0, 2.0], [1.0, 3.0]) == pytest.approx(0.5)  # Keras: one sample


def test_loss_functions_return_per_sample_values():
    y, p = CASES["mse"][2], CASES["mse"][3]
    np.testing.assert_allclose(gpudl.losses.mean_squared_error(y, p), ((y - p) ** 2).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(gpudl.losses.huber(y, p, delta=0.3), CASES["huber"][1](y, p), rtol=1e-12)
    y_bits, probs = CASES["bce"][2], CASES["bce"][3]
    np.testing.assert_allclose(gpudl.losses.binary_crossentropy(y_bits, probs, label_smoothing=0.1),
                               CASES["bce_smoothed"][1](y_bits, probs), rtol=1e-12)


@pytest.mark.parametrize("name, cls", [
    ("mae", losses.MeanAbsoluteError), ("MAPE", losses.MeanAbsolutePercentageError),
    ("msle", losses.MeanSquaredLogarithmicError), ("huber", losses.Huber), ("log_cosh", losses.LogCosh),
    ("kld", losses.KLDivergence), ("KLDivergence", losses.KLDivergence), ("bce", losses.BinaryCrossentropy),
    ("cosine_similarity", losses.CosineSimilarity), ("squared_hinge", losses.SquaredHinge)])
def test_keras_names_give_the_loss_classes(name, cls):
    assert type(losses.loss_object(name)) is cls
    assert type(losses.loss_object(cls)) is cls


def test_default_names_are_keras_names():
    assert [cls().name for cls in (losses.Huber, losses.LogCosh, losses.KLDivergence, losses.CosineSimilarity)] == \
        ["huber_loss", "log_cosh", "kl_divergence", "cosine_similarity"]


@pytest.mark.parametrize("loss", [
    losses.Huber(delta=2.5, reduction="sum", name="h"), losses.CosineSimilarity(reduction="none"),
    losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3, reduction="mean_with_sample_weight"),
    losses.BinaryCrossentropy(label_smoothing=0.1, name="b"), losses.SparseCategoricalCrossentropy(from_logits=True),
    losses.Poisson(reduction=None)])
def test_serialize_round_trip_keeps_every_argument(loss):
    rebuilt = losses.deserialize(losses.serialize(loss))
    assert type(rebuilt) is type(loss) and rebuilt.get_config() == loss.get_config()


def plain_mse(y_true, y_pred):
    return ((y_pred - y_true) ** 2).mean()


class CallOnlyLoss(losses.Loss):
    def call(self, y_true, y_pred):
        return ((y_pred - y_true) ** 2).mean(axis=-1)


class CallOverBuiltIn(losses.MeanSquaredError):
    def call(self, y_true, y_pred):
        return abs(y_pred - y_true).mean(axis=-1)


@pytest.mark.parametrize("identifier", [plain_mse, CallOnlyLoss(), CallOnlyLoss])
def test_loss_written_with_call_or_as_a_function_gets_its_gradient_from_autograd(identifier):
    """A plain function (a scalar here: Keras's reduction leaves it as is) or a Loss with call alone:
    value and gradient of the mean squared error, against NumPy."""
    rng = np.random.default_rng(7)
    y, p = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    value, gradient = losses.loss_object(identifier).value_and_gradient(y, p)
    assert float(value) == pytest.approx(((p - y) ** 2).mean(), rel=1e-12)
    np.testing.assert_allclose(gradient, 2 * (p - y) / p.size, rtol=1e-12)


def test_call_over_a_built_in_loss_is_refused_naming_the_way():
    with pytest.raises(ValueError, match="overrides `call`"):
        losses.loss_object(CallOverBuiltIn())


class WeightedSquaredError(losses.Loss):
    """A user loss written the gpudl way: value and gradient together."""

    def value_and_gradient(self, y_true, y_pred, sample_weight=None):
        xp = gpudl.backend.get_backend().xp
        diff = y_pred - y_true
        per_sample = (diff * diff).mean(axis=-1)
        weights = xp.ones_like(per_sample) if sample_weight is None else sample_weight
        return xp.asarray((weights * per_sample).sum() / len(per_sample)), \
            diff * (2 / diff.size) * weights[:, None]


def test_custom_loss_with_value_and_gradient_trains_like_the_built_in():
    x, y = RNG.normal(size=(32, 3)), RNG.normal(size=(32, 2))
    weights = []
    for loss in (WeightedSquaredError(), "mse"):
        gpudl.utils.set_random_seed(3)
        model = gpudl.Sequential([gpudl.layers.Input((3,)), gpudl.layers.Dense(2)], dtype="float64")
        model.compile("sgd", loss)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for custom, built_in in zip(*weights):
        np.testing.assert_allclose(custom, built_in, rtol=1e-12)
    assert WeightedSquaredError()(y, y + 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("make, message", [
    (lambda: losses.MeanSquaredError(reduction="average"), "Invalid value received for argument `reduction`"),
    (lambda: losses.BinaryCrossentropy(label_smoothing=1.5), "`label_smoothing`. Expected a float in [0, 1]"),
    (lambda: losses.CosineSimilarity(axis=0), "`axis`. Expected -1"),
    (lambda: losses.SparseCategoricalCrossentropy(ignore_class=0), "`ignore_class`. Expected None"),
    (lambda: losses.get("mean_squared_errors"), "Unknown loss: 'mean_squared_errors'. Known losses: "),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()
