"""The Keras 3 losses and metrics that tests/test_keras_scripts.py listed as gaps:
BinaryFocalCrossentropy and CategoricalFocalCrossentropy (values, gradients, names,
configs), keras.losses.get's return values and the loss_object resolver compile uses,
mse's broadcast of targets (batch,) against outputs (batch, K), and the metrics
PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity,
F1Score, FBetaScore and R2Score.

References: float64 NumPy formulas written here, central differences of the loss itself,
scikit-learn (f1_score, fbeta_score, r2_score, roc_curve-free brute-force counts), and
numbers printed by Keras 3.15.1 on JAX 0.10.2 (CPU) with the script quoted in KERAS_SCRIPT
(`KERAS_BACKEND=jax /work/kerasvenv/bin/python ref.py`, last line of stdout)."""

import numpy as np
import pytest
import scipy.special
import sklearn.metrics

import gpudl
from gpudl.frontend import losses, metrics
from gpudl.frontend.gradient_check import relative_difference

EPS = 1e-7
RNG = np.random.default_rng(77)

# The fixed data of the Keras script (its first lines).
KERAS_SCRIPT = """
import json, numpy as np, keras
Y = np.array([[0, 1, 0], [1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype="float32")
P = np.array([[0.1, 0.8, 0.3], [0.7, 0.2, 0.55], [0.4, 0.95, 0.05], [0.2, 0.45, 0.6]], dtype="float32")
Z = np.array([[-1.5, 2.0, 0.3], [0.7, -0.2, 1.1], [-0.4, 3.0, -2.5], [0.2, 0.0, -0.6]], dtype="float32")
W = np.array([0.5, 2.0, 1.0, 0.0], dtype="float32")
# losses: pred = Z if from_logits else P; targets Y (binary) or Y / Y.sum(-1, keepdims=True) (categorical)
out[key] = [cls(reduction="none", **kw)(y, pred).tolist(), float(cls(**kw)(y, pred, sample_weight=W))]
# metrics on yb, pb, wb below: for nt, w in [(200, None), (200, wb), (7, wb), (1, None)]:
#     m = cls(v, num_thresholds=nt); m.update_state(yb, pb, sample_weight=w); r.append(float(m.result()))
# then m = cls(v, class_id=2); m.update_state(Y, P); m.update_state(Y[::-1], P)
# F-scores: m = cls(average=avg, **kw); m.update_state(Y, P, sample_weight=W); m.update_state(Y[:2], P[2:])
# R2: m = keras.metrics.R2Score(class_aggregation=agg, num_regressors=nr); m.update_state(yr, pr, sample_weight=w)
"""
Y = np.array([[0, 1, 0], [1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype="float32")
P = np.array([[0.1, 0.8, 0.3], [0.7, 0.2, 0.55], [0.4, 0.95, 0.05], [0.2, 0.45, 0.6]], dtype="float32")
Z = np.array([[-1.5, 2.0, 0.3], [0.7, -0.2, 1.1], [-0.4, 3.0, -2.5], [0.2, 0.0, -0.6]], dtype="float32")
W = np.array([0.5, 2.0, 1.0, 0.0], dtype="float32")


# --- focal losses ------------------------------------------------------------------------

def binary_focal_formula(y, p, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                         label_smoothing=0.0):
    """Keras's binary_focal_crossentropy in float64, per sample."""
    y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    p = scipy.special.expit(p) if from_logits else p
    c = np.clip(p, EPS, 1 - EPS)
    bce = -(y * np.log(c) + (1 - y) * np.log(1 - c))
    p_t = y * p + (1 - y) * (1 - p)
    weight = alpha * y + (1 - alpha) * (1 - y) if apply_class_balancing else 1.0
    return (weight * (1 - p_t) ** gamma * bce).mean(-1)


def categorical_focal_formula(y, p, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0):
    """Keras's categorical_focal_crossentropy in float64, per sample."""
    y = y * (1 - label_smoothing) + label_smoothing / y.shape[-1]
    p = scipy.special.softmax(p, -1) if from_logits else p
    q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return (-alpha * (1 - q) ** gamma * y * np.log(q)).sum(-1)


FOCAL_CASES = {  # name -> (class, arguments, formula, [Keras per-sample values, Keras weighted mean])
    "bfce": (losses.BinaryFocalCrossentropy, {}, binary_focal_formula,
             [[0.014026699587702751, 0.05402949079871178, 0.11004038155078888, 0.07057327032089233],
              0.05627817660570145]),
    "bfce_bal": (losses.BinaryFocalCrossentropy,
                 dict(apply_class_balancing=True, alpha=0.3, gamma=1.5, label_smoothing=0.1), binary_focal_formula,
                 [[0.022369470447301865, 0.034917254000902176, 0.04525107145309448, 0.06447236239910126],
                  0.03156758099794388]),
    "bfce_logits": (losses.BinaryFocalCrossentropy, dict(from_logits=True, gamma=3.0, apply_class_balancing=True),
                    binary_focal_formula,
                    [[0.04081084951758385, 0.01524184551090002, 0.016335714608430862, 0.07809889316558838],
                     0.016806207597255707]),
    "cfce": (losses.CategoricalFocalCrossentropy, {}, categorical_focal_formula,
             [[0.011262917891144753, 0.07103737443685532, 0.08490340411663055, 0.049616310745477676],
              0.05815240368247032]),
    "cfce_args": (losses.CategoricalFocalCrossentropy, dict(alpha=0.6, gamma=1.5, label_smoothing=0.2),
                  categorical_focal_formula,
                  [[0.1638278216123581, 0.27200862765312195, 0.35775327682495117, 0.22047293186187744],
                   0.24592110514640808]),
    "cfce_logits": (losses.CategoricalFocalCrossentropy, dict(from_logits=True, gamma=0.5), categorical_focal_formula,
                    [[0.020214036107063293, 0.16548790037631989, 0.4235042631626129, 0.36242952942848206],
                     0.19114676117897034]),
}


def _keras_inputs(cls, arguments):
    y = Y if cls is losses.BinaryFocalCrossentropy else Y / Y.sum(-1, keepdims=True)
    return y, (Z if arguments.get("from_logits") else P)


@pytest.mark.parametrize("case", list(FOCAL_CASES))
def test_focal_loss_matches_the_numbers_keras_printed(case):
    cls, arguments, _, (per_sample, weighted_mean) = FOCAL_CASES[case]
    y, pred = _keras_inputs(cls, arguments)
    np.testing.assert_allclose(cls(reduction="none", **arguments)(y, pred), per_sample, rtol=2e-5)
    assert cls(**arguments)(y, pred, sample_weight=W) == pytest.approx(weighted_mean, rel=2e-5)


def _random_focal_inputs(cls, arguments, m=5, k=4):
    """Probabilities away from the clip at eps (the clip's kink is not differentiable)."""
    if cls is losses.BinaryFocalCrossentropy:
        y = RNG.integers(0, 2, (m, k)).astype(float)
    else:
        y = np.eye(k)[RNG.integers(0, k, m)] * 0.7 + RNG.random((m, k)) * 0.1
    pred = RNG.normal(size=(m, k)) * 2 if arguments.get("from_logits") else RNG.random((m, k)) * 0.9 + 0.05
    return y, pred


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"])
@pytest.mark.parametrize("case", list(FOCAL_CASES))
def test_focal_loss_value_and_gradient_match_float64_formula_and_central_differences(case, reduction):
    cls, arguments, formula, _ = FOCAL_CASES[case]
    loss = cls(reduction=reduction, **arguments)
    y, pred = _random_focal_inputs(cls, arguments)
    weights = RNG.random(len(y)) * 2
    per_sample = formula(y, pred, **arguments) * weights
    expected = {"sum": per_sample.sum(), "mean_with_sample_weight": per_sample.sum() / weights.sum(),
                "none": per_sample}.get(reduction, per_sample.sum() / len(y))
    value, gradient = loss.value_and_gradient(y, pred, weights)
    np.testing.assert_allclose(value, expected, rtol=1e-12)

    approx = central_differences(lambda p: float(np.sum(loss.value_and_gradient(y, p, weights)[0])), pred)
    assert gradient.shape == pred.shape
    assert relative_difference(approx, gradient) < 1e-7


def central_differences(f, x, step=1e-6):
    """df/dx, one element at a time: (f(x + h e_i) - f(x - h e_i)) / 2h."""
    shifts = np.eye(x.size).reshape((x.size,) + x.shape) * step
    return np.array([(f(x + shift) - f(x - shift)) / (2 * step) for shift in shifts]).reshape(x.shape)


@pytest.mark.parametrize("case", list(FOCAL_CASES))
def test_focal_loss_names_configs_and_functions_are_keras(case):
    cls, arguments, _, _ = FOCAL_CASES[case]
    loss = cls(**arguments)
    name = "binary_focal_crossentropy" if cls is losses.BinaryFocalCrossentropy else "categorical_focal_crossentropy"
    function = getattr(losses, name)
    # Keras's get_config (printed by the Keras script: cls(**kw).get_config())
    keras_config = {"name": name, "reduction": "sum_over_batch_size", "from_logits": False, "label_smoothing": 0.0,
                    "axis": -1, "alpha": 0.25, "gamma": 2.0}
    if cls is losses.BinaryFocalCrossentropy:
        keras_config["apply_class_balancing"] = False
    assert loss.get_config() == {**keras_config, **arguments}
    rebuilt = losses.deserialize(losses.serialize(loss))
    assert type(rebuilt) is cls and rebuilt.get_config() == loss.get_config()
    assert losses.get(name) is function and type(losses.get(cls.__name__)) is cls
    assert type(losses.loss_object(name)) is cls and type(losses.loss_object(function)) is cls
    y, pred = _keras_inputs(cls, arguments)
    np.testing.assert_allclose(function(y, pred, **arguments), cls(reduction="none", **arguments)(y, pred),
                               rtol=1e-6)


@pytest.mark.parametrize("loss, activation, y, formula", [
    ("binary_focal_crossentropy", "sigmoid", RNG.integers(0, 2, (16, 3)).astype(float), binary_focal_formula),
    (losses.CategoricalFocalCrossentropy(gamma=1.0), "softmax", np.eye(3)[RNG.integers(0, 3, 16)],
     lambda y, p: categorical_focal_formula(y, p, gamma=1.0))])
def test_model_trains_and_evaluates_with_a_focal_loss(loss, activation, y, formula):
    """evaluate() equals the float64 formula on predict()'s output, and fit lowers it."""
    x = RNG.normal(size=(16, 5))
    gpudl.utils.set_random_seed(4)
    model = gpudl.Sequential([gpudl.layers.Input((5,)), gpudl.layers.Dense(3, activation=activation)],
                             dtype="float64")
    model.compile(gpudl.optimizers.SGD(0.5), loss)
    before = model.evaluate(x, y, verbose=0)
    assert before == pytest.approx(formula(y, model.predict(x, verbose=0)).mean(), rel=1e-12)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


# --- keras.losses.get and the resolver -------------------------------------------------------

def test_get_returns_what_keras_returns():
    """keras/src/losses/__init__.py get: names of functions and aliases give the function,
    class names give an instance, functions and objects come back as they are."""
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("MSE") is losses.mean_squared_error
    assert losses.get("mean_squared_error") is losses.mean_squared_error
    assert losses.get("bce") is losses.binary_crossentropy and losses.get("kld") is losses.kl_divergence
    assert type(losses.get("MeanSquaredError")) is losses.MeanSquaredError
    assert type(losses.get(losses.Huber)) is losses.Huber
    assert losses.get(losses.mean_absolute_error) is losses.mean_absolute_error
    huber = losses.get({"class_name": "Huber", "config": {"delta": 2.0}})
    assert type(huber) is losses.Huber and huber.delta == 2.0
    assert losses.get(None) is None
    with pytest.raises(ValueError, match="Unknown loss: 'msee'"):
        losses.get("msee")
    # Keras 3.15.1: keras.losses.get("mse")(y_true, y_pred) on the serialization_api script's data
    y_true = np.array([[0.0, 1.0], [3.0, -1.0]], dtype="float32")
    y_pred = np.array([[0.5, 0.0], [0.0, 1.0]], dtype="float32")
    np.testing.assert_allclose(losses.get("mse")(y_true, y_pred), ((y_pred - y_true) ** 2).mean(-1), rtol=1e-6)


def plain_function_loss(y_true, y_pred):
    return ((y_pred - y_true) ** 2).mean()


@pytest.mark.parametrize("identifier", ["mse", "mean_squared_error", "MeanSquaredError", losses.mean_squared_error,
                                        losses.MeanSquaredError, losses.MeanSquaredError(),
                                        {"class_name": "MeanSquaredError", "config": {}}])
def test_loss_object_gives_a_loss_for_every_identifier_and_compile_keeps_what_it_received(identifier):
    assert type(losses.loss_object(identifier)) is losses.MeanSquaredError
    model = gpudl.Sequential([gpudl.layers.Input((3,)), gpudl.layers.Dense(2)])
    model.compile("sgd", identifier)
    assert model.loss is identifier and type(model.compiled_loss) is losses.MeanSquaredError


def test_loss_object_wraps_plain_functions_and_get_returns_them_like_keras():
    assert losses.get(plain_function_loss) is plain_function_loss
    wrapped = losses.loss_object(plain_function_loss)
    assert isinstance(wrapped, losses.LossFunctionWrapper) and wrapped.fn is plain_function_loss
    with pytest.raises(ValueError, match="Invalid value received for argument `loss`"):
        losses.loss_object(None)


# --- targets (batch,) against outputs (batch, K) ----------------------------------------------

def test_mse_broadcasts_vector_targets_like_keras():
    """Keras 3.15.1: y_true = np.arange(3.0), y_pred = np.arange(9.0).reshape(3, 3):
    keras.losses.mean_squared_error gives [0, 9, 36], MeanSquaredError()(...) 15.0, and a
    (2,) target against (2, 3) outputs raises "Incompatible shapes for broadcasting"."""
    y_true, y_pred = np.arange(3.0), np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(losses.mean_squared_error(y_true, y_pred), [0.0, 9.0, 36.0])
    assert losses.MeanSquaredError()(y_true, y_pred) == 15.0
    with pytest.raises(ValueError, match=r"targets of shape \(2,\) do not broadcast against outputs of shape "
                                         r"\(2, 3\).*batch of 1 or of K=3"):
        losses.MeanSquaredError()(np.arange(2.0), y_pred[:2])


@pytest.mark.parametrize("identifier", ["mse", "mae", "huber", "log_cosh", "poisson", "msle"])
@pytest.mark.parametrize("batch", [1, 4])
def test_vector_targets_value_and_gradient_equal_the_targets_spread_over_the_columns(identifier, batch):
    """For targets (B,) and outputs (B, K), B in {1, K}, Keras's y_true - y_pred pairs target
    j with column j: the same loss and gradient as targets tile(y, (B, 1))."""
    loss = losses.loss_object(identifier)
    y, pred = np.abs(RNG.normal(size=batch)), np.abs(RNG.normal(size=(batch, 4)))
    weights = RNG.random(batch)
    broadcast = loss.value_and_gradient(y, pred, weights)
    spread = loss.value_and_gradient(np.broadcast_to(y, pred.shape), pred, weights)
    np.testing.assert_allclose(broadcast[0], spread[0], rtol=1e-12)
    np.testing.assert_allclose(broadcast[1], spread[1], rtol=1e-12)


def test_fit_on_vector_targets_runs_where_keras_runs_and_stops_where_it_stops():
    """Keras 3.15.1, Sequential([Dense(10)]), loss="mse", x = arange(n * 20).reshape(n, 20) / 100,
    y = arange(n): n=5 batch 1 trains; n=5 batch 2 and n=12 batch 10 (last batch of 2) raise
    ValueError; n=10 batch 10 trains. At batch 1, a target (1,) is that value in all 10 columns."""
    def model():
        gpudl.utils.set_random_seed(8)
        built = gpudl.models.Sequential([gpudl.layers.Input((20,)), gpudl.layers.Dense(10)], dtype="float64")
        built.compile(gpudl.optimizers.SGD(), loss="mse")
        return built

    x, y = np.arange(100).reshape(5, 20) / 100, np.arange(5.0)
    vector, spread = model(), model()
    vector.fit(x, y, epochs=2, batch_size=1, verbose=0, shuffle=False)
    spread.fit(x, np.repeat(y[:, None], 10, axis=1), epochs=2, batch_size=1, verbose=0, shuffle=False)
    for a, b in zip(vector.get_weights(), spread.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    model().fit(np.arange(200).reshape(10, 20) / 100, np.arange(10.0), batch_size=10, verbose=0)
    for n, batch_size in [(5, 2), (12, 10)]:
        with pytest.raises(ValueError, match=r"targets of shape \(2,\) do not broadcast"):
            model().fit(np.arange(n * 20).reshape(n, 20) / 100, np.arange(float(n)), batch_size=batch_size,
                        verbose=0)


def test_vector_targets_stay_refused_for_losses_keras_does_not_broadcast():
    model = gpudl.Sequential([gpudl.layers.Input((3,)), gpudl.layers.Dense(4, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"`y` has shape \(6,\) but the model outputs \(None, 4\)"):
        model.fit(np.ones((6, 3)), np.zeros(6), verbose=0)


# --- metrics ------------------------------------------------------------------------------

YB = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0], dtype="float32")
PB = np.array([0.1, 0.9, 0.4, 0.35, 0.8, 0.65, 0.3, 0.7, 0.2, 0.5], dtype="float32")
WB = np.array([1, 2, 0.5, 1, 1, 3, 1, 0, 1, 2], dtype="float32")

AT_CASES = {  # class -> (constraint value, Keras's results for the script's five updates)
    metrics.PrecisionAtRecall: (0.6, [1.0, 1.0, 1.0, 0.75, 0.5]),
    metrics.RecallAtPrecision: (0.7, [0.6000000238418579, 0.6666666865348816, 0.6666666865348816,
                                      0.6000000238418579, 0.0]),
    metrics.SensitivityAtSpecificity: (0.8, [0.6000000238418579, 0.6666666865348816, 0.6666666865348816,
                                             0.6000000238418579, 0.0]),
    metrics.SpecificityAtSensitivity: (0.75, [0.6000000238418579, 0.375, 0.25, 0.0, 0.25]),
}
RATES = {metrics.PrecisionAtRecall: ("recall", "precision"), metrics.RecallAtPrecision: ("precision", "recall"),
         metrics.SensitivityAtSpecificity: ("specificity", "recall"),
         metrics.SpecificityAtSensitivity: ("recall", "specificity")}


@pytest.mark.parametrize("cls", list(AT_CASES))
def test_at_constraint_metrics_match_the_numbers_keras_printed(cls):
    value, expected = AT_CASES[cls]
    results = []
    for num_thresholds, weights in [(200, None), (200, WB), (7, WB), (1, None)]:
        metric = cls(value, num_thresholds=num_thresholds)
        metric.update_state(YB, PB, sample_weight=weights)
        results.append(metric.result())
    metric = cls(value, class_id=2)
    metric.update_state(Y, P)
    metric.update_state(Y[::-1], P)
    results.append(metric.result())
    np.testing.assert_allclose(results, expected, rtol=1e-6)


def brute_force_best(y, p, w, thresholds, constrained, dependent, value):
    """Counts at each threshold by a loop, in float64: max dependent rate where the
    constrained rate >= value (0 when none)."""
    best = 0.0
    for t in thresholds:
        predicted = p > t
        tp, fp = w[(y == 1) & predicted].sum(), w[(y == 0) & predicted].sum()
        fn, tn = w[(y == 1) & ~predicted].sum(), w[(y == 0) & ~predicted].sum()
        rates = {"recall": tp / (tp + fn) if tp + fn else 0.0, "specificity": tn / (tn + fp) if tn + fp else 0.0,
                 "precision": tp / (tp + fp) if tp + fp else 0.0}
        if rates[constrained] >= value:
            best = max(best, rates[dependent])
    return best


@pytest.mark.parametrize("cls", list(AT_CASES))
@pytest.mark.parametrize("num_thresholds", [3, 50, 200])
def test_at_constraint_metrics_match_brute_force_counts_over_two_batches(cls, num_thresholds):
    y, p, w = RNG.integers(0, 2, 60), RNG.random(60), RNG.random(60) * 2
    value = RNG.uniform(0.3, 0.9)
    metric = cls(value, num_thresholds=num_thresholds)
    metric.update_state(y[:25], p[:25], sample_weight=w[:25])
    metric.update_state(y[25:], p[25:], sample_weight=w[25:])
    thresholds = np.linspace(0, 1, num_thresholds)
    expected = brute_force_best(y, p, w, thresholds, *RATES[cls], value)
    assert metric.result() == pytest.approx(expected, rel=1e-12)


F_CASES = {  # (average, arguments) -> Keras's result for the script's two updates
    (None, ()): [0.6666666269302368, 1.0, 0.4999999701976776],
    (None, (("threshold", 0.5),)): [0.6666666269302368, 1.0, 1.0],
    (None, (("beta", 2.0), ("threshold", 0.3))): [0.75, 0.9259259104728699, 1.0],
    ("micro", ()): 0.7333332896232605,
    ("micro", (("threshold", 0.5),)): 0.882352888584137,
    ("micro", (("beta", 2.0), ("threshold", 0.3))): 0.876288652420044,
    ("macro", ()): 0.7222222089767456,
    ("macro", (("threshold", 0.5),)): 0.8888888359069824,
    ("macro", (("beta", 2.0), ("threshold", 0.3))): 0.8919753432273865,
    ("weighted", ()): 0.7017543315887451,
    ("weighted", (("threshold", 0.5),)): 0.8596490621566772,
    ("weighted", (("beta", 2.0), ("threshold", 0.3))): 0.8752436637878418,
}


@pytest.mark.parametrize("average, arguments", list(F_CASES))
def test_f_scores_match_the_numbers_keras_printed(average, arguments):
    arguments = dict(arguments)
    cls = metrics.FBetaScore if "beta" in arguments else metrics.F1Score
    metric = cls(average=average, **arguments)
    metric.update_state(Y, P, sample_weight=W)
    metric.update_state(Y[:2], P[2:])
    np.testing.assert_allclose(metric.result(), F_CASES[average, tuple(arguments.items())], rtol=1e-6)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_f_scores_match_scikit_learn_over_two_weighted_batches(average, beta):
    """Keras adds eps=1e-7 to each denominator, so the match is to about 1e-6."""
    y = RNG.integers(0, 2, (40, 4))
    p = RNG.random((40, 4))
    w = RNG.random(40) * 2
    metric = metrics.FBetaScore(average=average, beta=beta, threshold=0.4)
    metric.update_state(y[:15], p[:15], sample_weight=w[:15])
    metric.update_state(y[15:], p[15:], sample_weight=w[15:])
    expected = sklearn.metrics.fbeta_score(y, (p > 0.4).astype(int), beta=beta, average=average, sample_weight=w)
    np.testing.assert_allclose(metric.result(), expected, rtol=2e-6, atol=1e-6)
    if beta == 1.0:
        f1 = metrics.F1Score(average=average, threshold=0.4)
        f1.update_state(y, p, sample_weight=w)
        np.testing.assert_allclose(f1.result(), sklearn.metrics.f1_score(y, (p > 0.4).astype(int), average=average,
                                                                         sample_weight=w), rtol=2e-6, atol=1e-6)


def test_f1_without_threshold_marks_each_row_maximum_like_keras_and_scikit_learn_on_argmax():
    labels = RNG.integers(0, 5, 50)
    p = RNG.random((50, 5))
    metric = metrics.F1Score(average="macro")
    metric.update_state(np.eye(5)[labels], p)
    expected = sklearn.metrics.f1_score(labels, p.argmax(-1), average="macro")
    assert metric.result() == pytest.approx(expected, abs=1e-6)


R2_CASES = {  # (class_aggregation, num_regressors, weighted) -> Keras's result
    (None, 0, False): [0.8543859720230103, 0.7222222089767456],
    (None, 0, True): [0.756677508354187, 0.6982759237289429],
    (None, 2, False): [0.8127819299697876, 0.6428571343421936],
    (None, 9, False): [0.8543859720230103, 0.7222222089767456],
    ("uniform_average", 0, False): 0.7883040904998779,
    ("uniform_average", 0, True): 0.7274767160415649,
    ("uniform_average", 2, False): 0.727819561958313,
    ("uniform_average", 9, False): 0.7883040904998779,
    ("variance_weighted_average", 0, False): 0.7806201577186584,
    ("variance_weighted_average", 0, True): 0.7199035286903381,
    ("variance_weighted_average", 2, False): 0.7179402112960815,
    ("variance_weighted_average", 9, False): 0.7806201577186584,
}
YR = np.array([[1.0, 2.0], [2.0, 0.5], [3.5, 1.0], [0.5, 4.0], [2.5, 2.0]], dtype="float32")
PR = np.array([[1.2, 1.5], [1.8, 1.0], [3.0, 1.5], [1.0, 3.0], [2.0, 2.5]], dtype="float32")


@pytest.mark.parametrize("aggregation, regressors, weighted", list(R2_CASES))
def test_r2_score_matches_the_numbers_keras_printed(aggregation, regressors, weighted):
    """num_regressors=9 with 10 target values falls back to R2 with a warning, as Keras."""
    metric = metrics.R2Score(class_aggregation=aggregation, num_regressors=regressors)
    metric.update_state(YR, PR, sample_weight=np.array([1, 2, 0.5, 1, 3.0]) if weighted else None)
    if regressors == 9:
        with pytest.warns(UserWarning, match="adjusted R2"):
            result = metric.result()
    else:
        result = metric.result()
    np.testing.assert_allclose(result, R2_CASES[aggregation, regressors, weighted], rtol=1e-6)


@pytest.mark.parametrize("aggregation, multioutput", [
    (None, "raw_values"), ("uniform_average", "uniform_average"), ("variance_weighted_average", "variance_weighted")])
def test_r2_score_matches_scikit_learn_over_two_weighted_batches(aggregation, multioutput):
    y = RNG.normal(size=(30, 3))
    p = y + RNG.normal(size=(30, 3)) * 0.5
    w = RNG.random(30) * 2
    metric = metrics.R2Score(class_aggregation=aggregation)
    metric.update_state(y[:12], p[:12], sample_weight=w[:12])
    metric.update_state(y[12:], p[12:], sample_weight=w[12:])
    expected = sklearn.metrics.r2_score(y, p, sample_weight=w, multioutput=multioutput)
    np.testing.assert_allclose(metric.result(), expected, rtol=1e-10)
    adjusted = metrics.R2Score(class_aggregation=aggregation, num_regressors=5)
    adjusted.update_state(y, p)
    n = y.size  # Keras counts every target value
    r2 = sklearn.metrics.r2_score(y, p, multioutput=multioutput)
    np.testing.assert_allclose(adjusted.result(), 1 - (1 - r2) * (n - 1) / (n - 5 - 1), rtol=1e-10)


def test_r2_score_expands_a_rank_1_side_like_keras():
    """Keras 3.15.1: R2Score() on yr[:, :1] and pr[:, 0] gives 0.8543859720230103."""
    for y_true, y_pred in [(YR[:, :1], PR[:, 0]), (YR[:, 0], PR[:, :1])]:
        metric = metrics.R2Score()
        metric.update_state(y_true, y_pred)
        assert metric.result() == pytest.approx(0.8543859720230103, rel=1e-6)


class NoHostRead(np.ndarray):
    """An array that fails on every way of reading a value back to the host."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("a metric update read an array back to the host")

    __float__ = __int__ = __index__ = __bool__ = item = tolist = _refuse


NEW_METRICS = [lambda: metrics.PrecisionAtRecall(0.5), lambda: metrics.RecallAtPrecision(0.5, class_id=1),
               lambda: metrics.SensitivityAtSpecificity(0.5, num_thresholds=7),
               lambda: metrics.SpecificityAtSensitivity(0.5, num_thresholds=1), lambda: metrics.F1Score(),
               lambda: metrics.FBetaScore(average="weighted", beta=2.0, threshold=0.5),
               lambda: metrics.R2Score(class_aggregation="variance_weighted_average")]


@pytest.mark.parametrize("make", NEW_METRICS)
def test_new_metrics_update_on_the_device_and_reset(make):
    y, p, w = RNG.integers(0, 2, (8, 3)).astype(float), RNG.random((8, 3)), RNG.random(8)
    metric = make()
    for part in (slice(0, 5), slice(5, 8)):
        metric.update_state(y[part].view(NoHostRead), p[part].view(NoHostRead), sample_weight=w[part].view(NoHostRead))
    first = metric.result()
    metric.reset_state()
    metric.update_state(y, p, sample_weight=w)
    np.testing.assert_allclose(metric.result(), first, rtol=1e-12)


@pytest.mark.parametrize("make, keras_config", [
    (lambda: metrics.PrecisionAtRecall(0.6), {"class_id": None, "num_thresholds": 200, "recall": 0.6}),
    (lambda: metrics.RecallAtPrecision(0.7), {"class_id": None, "num_thresholds": 200, "precision": 0.7}),
    (lambda: metrics.SensitivityAtSpecificity(0.8), {"class_id": None, "num_thresholds": 200, "specificity": 0.8}),
    (lambda: metrics.SpecificityAtSensitivity(0.75), {"class_id": None, "num_thresholds": 200, "sensitivity": 0.75}),
    (lambda: metrics.F1Score(), {"name": "f1_score", "average": None, "threshold": None}),
    (lambda: metrics.FBetaScore(beta=2.0), {"name": "fbeta_score", "average": None, "beta": 2.0, "threshold": None}),
    (lambda: metrics.R2Score(), {"name": "r2_score", "class_aggregation": "uniform_average", "num_regressors": 0})])
def test_new_metric_configs_are_keras_and_round_trip(make, keras_config):
    """keras_config: the Keras script's get_config() (Keras names unnamed metrics
    precision_at_recall_5 etc. by instance count; gpudl by class)."""
    metric = make()
    config = metric.get_config()
    assert {key: config[key] for key in keras_config} == keras_config and config["dtype"] == "float32"
    rebuilt = metrics.deserialize(metrics.serialize(metric))
    assert type(rebuilt) is type(metric) and rebuilt.get_config() == config


def test_new_metrics_compile_by_name_and_evaluate_like_their_own_result():
    x, y = RNG.normal(size=(12, 4)), RNG.normal(size=(12, 2))
    model = gpudl.Sequential([gpudl.layers.Input((4,)), gpudl.layers.Dense(2)], dtype="float64")
    model.compile("sgd", "mse", metrics=["r2_score", metrics.F1Score(average="micro", threshold=0.5)])
    _, r2, f1 = model.evaluate(x, y, verbose=0)
    predicted = model.predict(x, verbose=0)
    assert r2 == pytest.approx(sklearn.metrics.r2_score(y, predicted), rel=1e-10)
    reference = metrics.F1Score(average="micro", threshold=0.5)
    reference.update_state(y, predicted)
    assert f1 == pytest.approx(reference.result(), rel=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda: metrics.PrecisionAtRecall(1.5), "`recall`. Expected a float in [0, 1]"),
    (lambda: metrics.SpecificityAtSensitivity(0.5, num_thresholds=0), "`num_thresholds`. Expected an integer > 0"),
    (lambda: metrics.F1Score(average="samples"), "`average`. Expected one of (None, 'micro', 'macro', 'weighted')"),
    (lambda: metrics.FBetaScore(beta=2), "`beta`. Expected a Python float > 0"),
    (lambda: metrics.F1Score(threshold=0.0), "`threshold`. Expected None or a Python float with 0 < threshold <= 1"),
    (lambda: metrics.R2Score(class_aggregation="mean"), "`class_aggregation`. Expected one of"),
    (lambda: metrics.R2Score(num_regressors=-1), "`num_regressors`. Expected a value >= 0"),
    (lambda: losses.BinaryFocalCrossentropy(label_smoothing=2.0), "`label_smoothing`. Expected a float in [0, 1]"),
    (lambda: losses.CategoricalFocalCrossentropy(axis=0), "`axis`. Expected -1"),
    (lambda: metrics.F1Score().update_state(np.ones(3), np.ones(3)), "F1Score expects 2D inputs"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        make()
