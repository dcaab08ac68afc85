"""Metrics with Keras 3's names, arguments and sample_weight: against scikit-learn, float64
NumPy formulas, a float64 hand computation of Keras's AUC rule, and numbers Keras printed;
updates never read the device."""

import numpy as np
import pytest
import scipy.special
from sklearn.metrics import confusion_matrix, precision_score, recall_score, roc_auc_score

import gpudl
from gpudl.frontend import losses, metrics

EPS = 1e-7
RNG = np.random.default_rng(4242)


def two_batches(metric, y_true, y_pred, weights=None, split=7):
    """Update in two uneven batches, then read the result."""
    for part in (slice(0, split), slice(split, None)):
        metric.update_state(y_true[part], y_pred[part], sample_weight=None if weights is None else weights[part])
    return metric.result()


def weighted_mean(values, weights):
    return np.sum(values * weights) / np.sum(weights)


@pytest.mark.parametrize("weighted", [False, True])
def test_auc_roc_equals_sklearn_when_scores_sit_inside_the_buckets(weighted):
    """Scores (k + 1/2) / 199 fill distinct buckets of the 200 thresholds, so Keras's
    interpolated sum is the exact trapezoidal ROC area that scikit-learn computes."""
    labels = RNG.integers(0, 2, 300)
    scores = (np.clip(RNG.integers(0, 150, 300) + 45 * labels, 0, 198) + 0.5) / 199
    weights = RNG.random(300) * 3 if weighted else None
    auc = two_batches(metrics.AUC(), labels, scores, weights, split=123)
    assert auc == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)


def keras_auc_by_hand(y, p, w, thresholds, curve="ROC", summation="interpolation"):
    """Keras's AUC rule written out in float64 loops: counts with p > t at each threshold,
    then the Riemann sum (or Davis & Goadrich's PR interpolation)."""
    tp, fp, fn, tn = (np.array([np.sum(w * ((p > t) == above) * ((y != 0) == positive)) for t in thresholds])
                      for above, positive in [(1, 1), (1, 0), (0, 1), (0, 0)])
    area = 0.0
    for i in range(len(thresholds) - 1):
        if curve == "PR" and summation == "interpolation":
            d_tp, d_p = tp[i] - tp[i + 1], (tp[i] + fp[i]) - (tp[i + 1] + fp[i + 1])
            slope = d_tp / d_p if d_p > 0 else 0.0
            intercept = tp[i + 1] - slope * (tp[i + 1] + fp[i + 1])
            both = tp[i] + fp[i] > 0 and tp[i + 1] + fp[i + 1] > 0
            ratio = (tp[i] + fp[i]) / (tp[i + 1] + fp[i + 1]) if both else 1.0
            if tp[i + 1] + fn[i + 1] > 0:
                area += slope * (d_tp + intercept * np.log(ratio)) / (tp[i + 1] + fn[i + 1])
            continue

        def point(j):
            recall = tp[j] / (tp[j] + fn[j]) if tp[j] + fn[j] else 0.0
            if curve == "ROC":
                return (fp[j] / (fp[j] + tn[j]) if fp[j] + tn[j] else 0.0), recall
            return recall, (tp[j] / (tp[j] + fp[j]) if tp[j] + fp[j] else 0.0)

        (x0, y0), (x1, y1) = point(i), point(i + 1)
        height = {"interpolation": (y0 + y1) / 2, "minoring": min(y0, y1), "majoring": max(y0, y1)}[summation]
        area += (x0 - x1) * height
    return area


def keras_thresholds(count):
    return [-EPS] + [(i + 1) / (count - 1) for i in range(count - 2)] + [1 + EPS]


@pytest.mark.parametrize("arguments, thresholds, curve, summation", [
    ({}, keras_thresholds(200), "ROC", "interpolation"),
    ({"curve": "PR"}, keras_thresholds(200), "PR", "interpolation"),
    ({"curve": "pr", "summation_method": "minoring", "num_thresholds": 7}, keras_thresholds(7), "PR", "minoring"),
    ({"summation_method": "majoring", "num_thresholds": 50}, keras_thresholds(50), "ROC", "majoring"),
    ({"thresholds": [0.9, 0.1, 0.35, 0.5]}, [-EPS, 0.1, 0.35, 0.5, 0.9, 1 + EPS], "ROC", "interpolation"),
    ({"thresholds": [0.1, 0.35, 0.5, 0.9], "curve": "PR"}, [-EPS, 0.1, 0.35, 0.5, 0.9, 1 + EPS], "PR",
     "interpolation"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_matches_a_float64_hand_computation_of_keras_rule(arguments, thresholds, curve, summation, weighted):
    labels = RNG.integers(0, 2, 80)
    scores = np.clip(RNG.random(80) * 0.7 + 0.25 * labels, 0, 1)
    weights = RNG.random(80) * 2 if weighted else np.ones(80)
    auc = two_batches(metrics.AUC(**arguments), labels, scores, weights if weighted else None, split=33)
    assert auc == pytest.approx(keras_auc_by_hand(labels, scores, weights, thresholds, curve, summation), abs=1e-12)


# Keras 3.15.1 (JAX backend, JAX_ENABLE_X64=1, keras.config.set_floatx("float64")) printed
# metric.result() after update_state on rows [:25] and [25:] of _keras_inputs(), with
# sample_weight=w where the name says "weighted". The multi-label average and the
# MeanMetricWrapper metrics go through Keras's float32 ops.mean; the rest agree to 1e-12.
def _keras_inputs():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 40).astype(float)
    p = np.clip(rng.random(40) * 0.7 + y * 0.25, 0, 1)
    w = rng.random(40) * 2
    y_multi, p_multi = rng.integers(0, 2, (40, 3)).astype(float), rng.random((40, 3))
    labels, scores = rng.integers(0, 5, 40), rng.random((40, 5))
    return dict(y=y, p=p, w=w, Y=y_multi, P=p_multi, labels=labels, scores=scores)


@pytest.mark.parametrize("make, y_key, p_key, weighted, keras_result, rtol", [
    (lambda: metrics.AUC(), "y", "p", True, 0.7360132744023291, 1e-12),
    (lambda: metrics.AUC(curve="PR"), "y", "p", False, 0.720029995663189, 1e-12),
    (lambda: metrics.AUC(curve="PR"), "y", "p", True, 0.7504715760338333, 1e-12),
    (lambda: metrics.AUC(curve="PRGAIN", num_thresholds=30), "y", "p", True, 0.4637520597763935, 1e-12),
    (lambda: metrics.AUC(curve="PR", thresholds=[0.1, 0.35, 0.5, 0.9]), "y", "p", True, 0.6277850322674667, 1e-12),
    (lambda: metrics.AUC(label_weights=[1.0, 2.0, 0.5]), "Y", "P", False, 0.5994434232026145, 1e-12),
    (lambda: metrics.AUC(multi_label=True, label_weights=[1.0, 2.0, 0.5], curve="PR"), "Y", "P", True,
     0.5838570692580463, 1e-7),
    (lambda: metrics.Precision(thresholds=[0.0, 0.25, 0.5, 0.75, 1.0]), "y", "p", True,
     [0.5454675218284102, 0.7078174750024927, 0.5594267272658938, 1.0, 0.0], 1e-12),
    (lambda: metrics.Recall(thresholds=[0.7, 0.3, 0.5]), "y", "p", True,
     [0.18310295217933648, 0.9212791609511619, 0.37775662810481153], 1e-12),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=3), "labels", "scores", True, 0.5599878189985302, 1e-7),
])
def test_metrics_match_numbers_keras_printed(make, y_key, p_key, weighted, keras_result, rtol):
    data = _keras_inputs()
    result = two_batches(make(), data[y_key], data[p_key], data["w"] if weighted else None, split=25)
    np.testing.assert_allclose(result, keras_result, rtol=rtol)


@pytest.mark.parametrize("thresholds", [None, 0.3, [0.7, 0.2, 0.5]])
def test_precision_recall_and_confusion_counts_equal_sklearn(thresholds):
    labels = RNG.integers(0, 2, 60)
    scores = RNG.random(60)
    weights = RNG.random(60)
    listed = [0.5] if thresholds is None else np.atleast_1d(thresholds)
    made = {name: two_batches(getattr(metrics, name)(thresholds=thresholds), labels, scores, weights)
            for name in ("Precision", "Recall", "TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives")}
    for i, t in enumerate(listed):
        def at(name):
            return np.atleast_1d(made[name])[i]
        predicted = scores > t
        assert at("Precision") == pytest.approx(precision_score(labels, predicted, sample_weight=weights), abs=1e-12)
        assert at("Recall") == pytest.approx(recall_score(labels, predicted, sample_weight=weights), abs=1e-12)
        tn, fp, fn, tp = confusion_matrix(labels, predicted, sample_weight=weights).ravel()
        np.testing.assert_allclose([at("TrueNegatives"), at("FalsePositives"), at("FalseNegatives"),
                                    at("TruePositives")], [tn, fp, fn, tp], rtol=1e-12)
    assert isinstance(made["Precision"], float) == (len(listed) == 1)


def test_precision_class_id_reads_one_column():
    y, p = RNG.integers(0, 2, (30, 3)), RNG.random((30, 3))
    assert two_batches(metrics.Precision(class_id=2), y, p) == pytest.approx(precision_score(y[:, 2], p[:, 2] > 0.5))


Y_REG, P_REG = RNG.random((20, 3)) * 2, RNG.random((20, 3)) * 2
BITS, PROBS = RNG.integers(0, 2, (20, 3)).astype(float), RNG.random((20, 3)) * 0.9 + 0.05
LABELS, SCORES = RNG.integers(0, 4, 20), RNG.normal(size=(20, 4))
WEIGHTS = RNG.random(20) * 2
SOFT = scipy.special.softmax(SCORES, -1)


@pytest.mark.parametrize("name, y_true, y_pred, per_sample", [
    ("mae", Y_REG, P_REG, np.abs(P_REG - Y_REG).mean(-1)),
    ("mse", Y_REG, P_REG, ((P_REG - Y_REG) ** 2).mean(-1)),
    ("mape", Y_REG, P_REG, 100 * (np.abs(P_REG - Y_REG) / Y_REG).mean(-1)),
    ("msle", Y_REG, P_REG, ((np.log1p(P_REG) - np.log1p(Y_REG)) ** 2).mean(-1)),
    ("logcosh", Y_REG, P_REG, np.log(np.cosh(P_REG - Y_REG)).mean(-1)),
    ("cosine_similarity", Y_REG, P_REG, (Y_REG * P_REG).sum(-1) / np.linalg.norm(Y_REG, axis=-1)
     / np.linalg.norm(P_REG, axis=-1)),
    ("poisson", Y_REG, P_REG, (P_REG - Y_REG * np.log(P_REG + EPS)).mean(-1)),
    ("hinge", BITS, P_REG, np.maximum(1 - (2 * BITS - 1) * P_REG, 0).mean(-1)),
    ("kl_divergence", SOFT[:, :3], PROBS, (SOFT[:, :3] * np.log(SOFT[:, :3] / PROBS)).sum(-1)),
    ("binary_crossentropy", BITS, PROBS, -(BITS * np.log(PROBS) + (1 - BITS) * np.log(1 - PROBS)).mean(-1)),
    ("sparse_categorical_crossentropy", LABELS, SOFT, -np.log(SOFT[np.arange(20), LABELS])),
    ("binary_accuracy", BITS, PROBS, ((PROBS > 0.5) == BITS).mean(-1)),
    ("sparse_categorical_accuracy", LABELS, SCORES, (SCORES.argmax(-1) == LABELS).astype(float)),
    ("categorical_accuracy", np.eye(4)[LABELS], SCORES, (SCORES.argmax(-1) == LABELS).astype(float)),
    ("top_k_categorical_accuracy", np.eye(4)[LABELS], SCORES,
     (np.argsort(-SCORES, -1)[:, :5] == LABELS[:, None]).any(-1).astype(float)),
])
def test_mean_metrics_are_weighted_means_of_float64_formulas(name, y_true, y_pred, per_sample):
    metric = metrics.get(name, losses.get("mse"), y_pred.shape[-1])
    assert metric.name == name
    assert two_batches(metric, y_true, y_pred) == pytest.approx(per_sample.mean(), rel=1e-12)
    metric.reset()
    assert two_batches(metric, y_true, y_pred, WEIGHTS) == pytest.approx(weighted_mean(per_sample, WEIGHTS),
                                                                         rel=1e-12)


def test_top_k_and_rmse_and_reduction_metrics():
    in_top_2 = (np.argsort(-SCORES, -1)[:, :2] == LABELS[:, None]).any(-1)
    assert two_batches(metrics.SparseTopKCategoricalAccuracy(k=2), LABELS, SCORES, WEIGHTS) == \
        pytest.approx(weighted_mean(in_top_2, WEIGHTS), rel=1e-12)
    assert two_batches(metrics.TopKCategoricalAccuracy(k=2), np.eye(4)[LABELS], SCORES) == \
        pytest.approx(in_top_2.mean(), rel=1e-12)
    squared = ((P_REG - Y_REG) ** 2).mean(-1)
    assert two_batches(metrics.RootMeanSquaredError(), Y_REG, P_REG, WEIGHTS) == \
        pytest.approx(np.sqrt(weighted_mean(squared, WEIGHTS)), rel=1e-12)
    mean, total = metrics.Mean(), metrics.Sum()
    for metric in (mean, total):
        metric.update_state(P_REG[:5], sample_weight=WEIGHTS[:5])
        metric.update_state(P_REG[5:, 0], sample_weight=WEIGHTS[5:])
    rows = np.concatenate([P_REG[:5].mean(-1), P_REG[5:, 0]])
    assert mean.result() == pytest.approx(weighted_mean(rows, WEIGHTS), rel=1e-12)
    sums = np.concatenate([P_REG[:5].sum(-1), P_REG[5:, 0]])
    assert total.result() == pytest.approx(np.sum(sums * WEIGHTS), rel=1e-12)
    wrapped = metrics.MeanMetricWrapper(lambda y, p: np.abs(p - y).max(-1), name="max_error")
    assert two_batches(wrapped, Y_REG, P_REG) == pytest.approx(np.abs(P_REG - Y_REG).max(-1).mean(), rel=1e-12)


@pytest.mark.parametrize("name, loss, y_true, expected", [
    ("accuracy", "sparse_categorical_crossentropy", LABELS, (SCORES.argmax(-1) == LABELS).mean()),
    ("auc", "categorical_crossentropy", np.eye(4)[LABELS], None),
    ("mse", "categorical_crossentropy", np.eye(4)[LABELS], ((SOFT - np.eye(4)[LABELS]) ** 2).mean()),
    ("categorical_crossentropy", "categorical_crossentropy", np.eye(4)[LABELS],
     -np.log(SOFT[np.arange(20), LABELS]).mean()),
])
def test_metrics_given_softmax_logits_by_the_model_equal_metrics_of_the_softmax(name, loss, y_true, expected):
    metric = metrics.get(name, losses.get(loss), 4)
    assert metric.output_activation == "softmax"
    metric.update(y_true, SCORES, logits=True)
    if expected is None:  # against the same metric given the probabilities
        expected = two_batches(metrics.get(name, losses.get(loss), 4), y_true, SOFT)
    assert metric.result() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_binary_accuracy_and_auc_on_sigmoid_logits(threshold):
    logits = RNG.normal(size=(20, 3)) * 2
    bce = losses.get("binary_crossentropy")
    accuracy = metrics.get(metrics.BinaryAccuracy(threshold=threshold), bce, 3)
    accuracy.update(BITS, logits, logits=True, sample_weight=WEIGHTS)
    hits = ((scipy.special.expit(logits) > threshold) == BITS).mean(-1)
    assert accuracy.result() == pytest.approx(weighted_mean(hits, WEIGHTS), rel=1e-12)
    auc = metrics.get("auc", bce, 3)
    auc.update(BITS, logits, logits=True)
    assert auc.result() == pytest.approx(two_batches(metrics.AUC(), BITS, scipy.special.expit(logits)), abs=1e-12)


def test_accuracy_string_follows_the_loss_and_width():
    assert type(metrics.get("acc", losses.get("sparse_categorical_crossentropy"), 5)) is \
        metrics.SparseCategoricalAccuracy
    assert type(metrics.get("accuracy", losses.get("mse"), 1)) is metrics.BinaryAccuracy
    assert type(metrics.get("accuracy", losses.get("categorical_crossentropy"), 5)) is metrics.CategoricalAccuracy


class NoHostRead(np.ndarray):
    """An array that fails on every way of reading a value back to the host."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("a metric update read an array back to the host")

    __float__ = __int__ = __index__ = __bool__ = item = tolist = _refuse


def test_the_instrumented_array_catches_host_reads():
    with pytest.raises(AssertionError, match="host"):
        float(np.arange(3.0).view(NoHostRead).sum())


@pytest.mark.parametrize("name", ["accuracy", "binary_accuracy", "mae", "mse", "rmse", "mape", "msle",
                                  "cosine_similarity", "logcosh", "auc", "precision", "recall", "true_positives",
                                  "false_negatives", "top_k_categorical_accuracy", "binary_crossentropy", "hinge"])
@pytest.mark.parametrize("logits", [False, True])
def test_update_never_reads_the_device(name, logits):
    metric = metrics.get(name, losses.get("binary_crossentropy"), 3)
    for part in (slice(0, 8), slice(8, None)):
        metric.update(BITS[part].view(NoHostRead), PROBS[part].view(NoHostRead), logits=logits,
                      sample_weight=WEIGHTS[part].view(NoHostRead))
    assert metric.variables and all(type(v.value) is np.ndarray for v in metric.variables)
    assert isinstance(metric.result(), float)


class MeanAbsoluteErrorByHand(metrics.Metric):
    """A user metric keeping its state in plain attributes, as Keras users write them."""

    def __init__(self, name="mae_by_hand"):
        super().__init__(name=name)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total = self.total + abs(y_pred - y_true).sum()
        self.count += y_true.size

    def result(self):
        return float(self.total / self.count)

    def reset_state(self):
        self.total, self.count = 0.0, 0


class PositivesAbove(metrics.Metric):
    """A user metric with Keras's add_variable state (reset by the base class)."""

    def __init__(self, name="positives_above"):
        super().__init__(name=name)
        self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.hits.assign_add((y_pred > 0.5).sum())

    def result(self):
        return float(self.hits.numpy())


def test_user_metrics_run_in_evaluate():
    x, y = RNG.normal(size=(25, 3)), RNG.normal(size=(25, 2))
    model = gpudl.Sequential([gpudl.layers.Input((3,)), gpudl.layers.Dense(2)], dtype="float64")
    model.compile("sgd", "mse", metrics=[MeanAbsoluteErrorByHand(), PositivesAbove()])
    _, mae, above = model.evaluate(x, y, batch_size=10, verbose=0)
    predicted = model.predict(x, verbose=0)
    assert mae == pytest.approx(np.abs(predicted - y).mean(), rel=1e-12)
    assert above == np.sum(predicted > 0.5)
    metric = PositivesAbove()
    metric.update_state(None, np.array([0.9, 0.1, 0.7]))
    assert metric.result() == 2.0
    metric.reset_state()
    assert metric.result() == 0.0


@pytest.mark.parametrize("metric", [
    metrics.AUC(curve="PR", num_thresholds=50, name="pr"), metrics.AUC(thresholds=[0.2, 0.4]),
    metrics.Precision(thresholds=[0.3, 0.6], class_id=1), metrics.BinaryAccuracy(threshold=0.7),
    metrics.SparseTopKCategoricalAccuracy(k=3), metrics.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    metrics.MeanMetricWrapper(metrics.binary_accuracy, name="ba", threshold=0.2), metrics.Mean(name="m")])
def test_serialize_round_trip_keeps_every_argument(metric):
    rebuilt = metrics.deserialize(metrics.serialize(metric))
    assert type(rebuilt) is type(metric) and rebuilt.get_config() == metric.get_config()


def test_default_names_are_keras_names():
    made = [metrics.AUC(), metrics.Precision(), metrics.TruePositives(), metrics.LogCoshError(),
            metrics.RootMeanSquaredError(), metrics.Mean(), metrics.TopKCategoricalAccuracy()]
    assert [m.name for m in made] == ["auc", "precision", "true_positives", "logcosh", "root_mean_squared_error",
                                      "mean", "top_k_categorical_accuracy"]


@pytest.mark.parametrize("make, message", [
    (lambda: metrics.AUC(curve="ROCC"), "Invalid value received for argument `curve`"),
    (lambda: metrics.AUC(num_thresholds=1), "`num_thresholds`. Expected an integer > 1"),
    (lambda: metrics.AUC(summation_method="trapezoid"), "`summation_method`"),
    (lambda: metrics.Precision(thresholds=[0.5, 1.5]), "`thresholds`. Expected a float or a list of floats in"),
    (lambda: metrics.Recall(top_k=2), "`top_k`. Expected None"),
    (lambda: metrics.get("aucc", losses.get("mse"), 1), "Unknown metric: 'aucc'. Known metrics: .*auc"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
