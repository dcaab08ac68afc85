"""A softmax or sigmoid output with a cross-entropy loss gives Keras's value and gradient:
the output's probabilities clipped to [1e-7, 1 - 1e-7], no gradient where clipped, against
Keras 3 itself (KERAS_BACKEND=jax, set by conftest) run in the same test: its backend
functions differentiated by JAX, its evaluate(), one training step and a whole trajectory
at a too-high learning rate. `from_logits=True` keeps the exact log-sum-exp form."""

import numpy as np
import pytest

import gpudl
from gpudl.frontend import losses
from gpudl.kernels import softmax_cross_entropy

jax = pytest.importorskip("jax")
keras = pytest.importorskip("keras")
jnp = jax.numpy
keras_nn = pytest.importorskip("keras.src.backend.jax.nn")

FEATURES, CLASSES = 8, 3


def keras_loss_of_softmax(labels, logits, soft):
    """Keras's (sparse) categorical cross-entropy of softmax(logits), mean over rows, and its
    gradient in the logits, both by JAX."""
    function = keras_nn.categorical_crossentropy if soft else keras_nn.sparse_categorical_crossentropy
    value, gradient = jax.value_and_grad(lambda z: function(labels, jax.nn.softmax(z)).mean())(jnp.asarray(logits))
    return float(value), np.asarray(gradient)


@pytest.mark.parametrize("soft", [False, True], ids=["index labels", "soft labels"])
def test_clipped_reference_gives_keras_value_and_gradient_of_the_softmax_output(soft):
    rng = np.random.default_rng(5)
    logits = (30 * rng.standard_normal((16, 7))).astype(np.float32)  # most rows saturate
    index = rng.integers(0, 7, 16)
    index[:4] = logits[:4].argmin(axis=1)  # confidently wrong: the label's probability is ~e^-60
    index[4:8] = logits[4:8].argmax(axis=1)  # confidently right
    labels = np.eye(7, dtype=np.float32)[index] * 0.9 + 0.1 / 7 if soft else index
    loss, dz = softmax_cross_entropy.softmax_cross_entropy(logits, labels, epsilon=1e-7)
    keras_value, keras_gradient = keras_loss_of_softmax(labels, logits, soft)
    assert float(loss) == pytest.approx(keras_value, rel=1e-6)
    np.testing.assert_allclose(dz, keras_gradient, atol=1e-7)
    if not soft:
        assert not dz[:4].any()  # clipped at 1e-7: no gradient, as in Keras
    exact, exact_dz = softmax_cross_entropy.softmax_cross_entropy(logits, labels)
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = labels if soft else np.eye(7)[index]
    assert float(exact) == pytest.approx(-(target * log_softmax).sum(axis=1).mean(), rel=1e-5)
    assert float(exact) > 3 * float(loss)  # a logit gap of ~100 is its own loss without the clip


def gpudl_model(activation, units):
    return gpudl.Sequential([gpudl.Input((FEATURES,)), gpudl.layers.Dense(16, activation="relu"),
                             gpudl.layers.Dense(units, activation=activation)])


def keras_model(activation, units):
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(units, activation=activation)])


def twin_models(activation, units, loss, weights, optimizers=("sgd", "sgd")):
    """(gpudl model, Keras model) of the same layers and weights, compiled alike."""
    ours, theirs = gpudl_model(activation, units), keras_model(activation, units)
    ours.compile(optimizers[0], loss)
    theirs.compile(optimizers[1], loss)
    ours.build((None, FEATURES))
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def confident_weights(units, rng):
    """Weights whose outputs are far apart: most rows' probabilities are clipped."""
    return [rng.normal(size=(FEATURES, 16)).astype(np.float32) * 3, np.zeros(16, np.float32),
            rng.normal(size=(16, units)).astype(np.float32) * 10, np.zeros(units, np.float32)]


LOSS_CASES = [  # (activation, units, loss name, targets)
    ("softmax", CLASSES, "sparse_categorical_crossentropy", "index"),
    ("softmax", CLASSES, "categorical_crossentropy", "one_hot"),
    ("sigmoid", 1, "binary_crossentropy", "bits"),
    ("sigmoid", 4, "binary_crossentropy", "multi bits"),
]


def targets_for(kind, x, rng):
    n = len(x)
    return {"index": rng.integers(0, CLASSES, n), "one_hot": np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)],
            "bits": rng.integers(0, 2, (n, 1)).astype(np.float32),
            "multi bits": rng.integers(0, 2, (n, 4)).astype(np.float32)}[kind]


@pytest.mark.parametrize("activation,units,loss,kind", LOSS_CASES, ids=[c[2] + " " + c[3] for c in LOSS_CASES])
def test_evaluate_on_a_confidently_wrong_batch_equals_keras(activation, units, loss, kind):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, FEATURES)).astype(np.float32)
    y = targets_for(kind, x, rng)
    ours, theirs = twin_models(activation, units, loss, confident_weights(units, rng))
    expected = theirs.evaluate(x, y, batch_size=64, verbose=0)
    assert ours.evaluate(x, y, batch_size=64, verbose=0) == pytest.approx(expected, rel=1e-5)
    # the same as gpudl's own loss of the predicted probabilities (they disagreed before)
    assert losses.get(loss)(y, ours.predict(x, verbose=0)).mean() == pytest.approx(expected, rel=1e-5)
    # with sample weights the fused path goes through the activation: the same clipped loss
    weights_per_sample = rng.random(64).astype(np.float32)
    expected = theirs.evaluate(x, y, sample_weight=weights_per_sample, batch_size=64, verbose=0)
    assert ours.evaluate(x, y, sample_weight=weights_per_sample, batch_size=64, verbose=0) == pytest.approx(
        expected, rel=1e-5)


def test_the_issue_s_confidently_wrong_sample_costs_16_118_not_its_logit_gap():
    model = gpudl.Sequential([gpudl.Input((2,)), gpudl.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build((None, 2))
    model.set_weights([np.array([[100, 0, 0], [0, 0, 0]], np.float32), np.zeros(3, np.float32)])
    x, y = np.array([[1.0, 0.0]], np.float32), np.array([1])
    assert model.evaluate(x, y, verbose=0) == pytest.approx(-np.log(np.float32(1e-7)), rel=1e-6)  # 16.118
    # from_logits=True is the exact log-sum-exp: a linear output gives the true 100
    logits = gpudl.Sequential([gpudl.Input((2,)), gpudl.layers.Dense(3)])
    logits.compile("sgd", gpudl.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits.build((None, 2))
    logits.set_weights(model.get_weights())
    assert logits.evaluate(x, y, verbose=0) == pytest.approx(100 + np.log1p(2 * np.exp(-100)), rel=1e-6)


@pytest.mark.parametrize("activation,units,loss,kind", LOSS_CASES, ids=[c[2] + " " + c[3] for c in LOSS_CASES])
def test_one_sgd_step_on_a_saturated_batch_equals_keras(activation, units, loss, kind):
    """The gradient itself: rows clipped at either bound contribute nothing."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, FEATURES)).astype(np.float32)
    y = targets_for(kind, x, rng)
    weights = confident_weights(units, rng)
    ours, theirs = twin_models(activation, units, loss, weights, (gpudl.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)))
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for mine, keras_weight, before in zip(ours.get_weights(), theirs.get_weights(), weights):
        assert not np.array_equal(np.asarray(keras_weight), before) or np.array_equal(mine, before)
        np.testing.assert_allclose(mine, np.asarray(keras_weight), rtol=1e-5, atol=1e-5)


def blobs(n=256, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(CLASSES, FEATURES)) * 2
    y = rng.integers(0, CLASSES, n)
    return (centers[y] + rng.normal(size=(n, FEATURES))).astype(np.float32), y


@pytest.mark.parametrize("optimizer", ["rmsprop", "sgd"])
def test_training_trajectory_at_a_too_high_learning_rate_equals_keras(optimizer):
    """RMSprop at 1.0 (and SGD at 5.0) from the same initial weights: the probabilities
    saturate after a few steps, their gradients vanish and the loss freezes where Keras's
    does. Keras's RMSprop adds epsilon inside the square root, gpudl's outside (README,
    Differences from Keras): 1e-14 inside is 1e-7 outside."""
    keras.utils.set_random_seed(0)  # one fixed initial point: the trajectory is chaotic, so reruns compare alike
    x, y = blobs()
    theirs = keras_model("softmax", CLASSES)
    initial = [np.asarray(w) for w in theirs.get_weights()]
    keras_optimizer, our_optimizer = {
        "rmsprop": (keras.optimizers.RMSprop(1.0, epsilon=1e-14), gpudl.optimizers.RMSprop(1.0, epsilon=1e-7)),
        "sgd": (keras.optimizers.SGD(5.0), gpudl.optimizers.SGD(5.0))}[optimizer]
    theirs.compile(keras_optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    ours = gpudl_model("softmax", CLASSES)
    ours.compile(our_optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    ours.build((None, FEATURES))
    ours.set_weights(initial)
    expected = theirs.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0).history
    history = ours.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-3)
    np.testing.assert_allclose(history["accuracy"][1:], expected["accuracy"][1:], atol=1e-6)
    assert abs(history["accuracy"][0] - expected["accuracy"][0]) <= 2 / len(x)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-4)
