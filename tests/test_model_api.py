"""The Keras-style model API on the numpy backend, against independent numbers."""

import io
import re

import numpy as np
import pytest

import gpudl
from gpudl.layers import BatchNormalization, Dense, Dropout, Normalization, ReLU


def small_model(dropout=0.0, dtype=None, seed=None, l2=None):
    regularizer = gpudl.regularizers.L2(l2) if l2 else None
    layers = [gpudl.Input((6,)), Dense(8, kernel_initializer="he_normal", kernel_regularizer=regularizer),
              BatchNormalization(), ReLU()]
    layers += [Dropout(dropout)] if dropout else []
    layers += [Dense(3, activation="softmax")]
    return gpudl.Sequential(layers, dtype=dtype, seed=seed)


def data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)


def test_same_seed_gives_bit_identical_training_runs():
    runs = []
    for _ in range(2):
        gpudl.utils.set_random_seed(5)
        model = small_model(dropout=0.3)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(*data(), batch_size=8, epochs=3, verbose=0)
        runs.append((history.history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_epoch_loss_is_batch_size_weighted_mean_with_penalty_and_partial_batch():
    """50 samples in batches of 16: 16, 16, 16, 2. The epoch loss must weight the last batch by 2."""
    x, y = data()
    gpudl.utils.set_random_seed(1)
    model = small_model(dtype="float64", l2=0.01)
    model.compile(gpudl.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    twin = model.clone()
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    batch_losses = [twin.train_on_batch(x[i:i + 16], y[i:i + 16]) for i in range(0, 50, 16)]
    expected = np.average(batch_losses, weights=[16, 16, 16, 2])
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-12)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_matches_a_float64_recomputation_from_weights():
    x, y = data()
    model = small_model(dtype="float64", l2=0.02)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    kernel1, bias1, gamma, beta, moving_mean, moving_var, kernel2, bias2 = model.get_weights()
    h = np.maximum(gamma * (x @ kernel1 + bias1 - moving_mean) / np.sqrt(moving_var + 1e-3) + beta, 0)
    z = h @ kernel2 + bias2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(50), y]).mean() + 0.02 * (kernel1 ** 2).sum()
    accuracy = (p.argmax(1) == y).mean()
    ours_loss, ours_accuracy = model.evaluate(x, y, batch_size=7)
    assert ours_loss == pytest.approx(loss, rel=1e-10)
    assert ours_accuracy == pytest.approx(accuracy)
    np.testing.assert_allclose(model.predict(x, batch_size=9), p, rtol=1e-10)


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = data(40)
    model = small_model(dtype="float64")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    val_loss, val_accuracy = model.evaluate(x[30:], y[30:])
    assert history.history["val_loss"][0] == pytest.approx(val_loss, rel=1e-12)
    assert history.history["val_accuracy"][0] == val_accuracy
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_fit_learns_a_separable_problem():
    gpudl.utils.set_random_seed(0)
    x, y = data(300)
    model = small_model()
    model.compile(gpudl.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=30, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert model.evaluate(x, y)[1] > 0.9


def test_monte_carlo_dropout_only_with_training_true():
    model = small_model(dropout=0.5, dtype="float64")
    x, _ = data()
    inference = [np.array(model(x)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    np.testing.assert_array_equal(inference[0], model.predict(x))
    sampled = [np.array(model(x, training=True)) for _ in range(2)]
    assert not np.array_equal(sampled[0], sampled[1])


def test_nothing_is_dropped_or_scaled_at_inference():
    model = gpudl.Sequential([gpudl.Input((1000,)), Dropout(0.4)])
    x = np.random.default_rng().normal(size=(3, 1000)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), x)
    y = np.array(model(x, training=True))
    assert abs((y == 0).mean() - 0.4) < 0.03
    np.testing.assert_allclose(y[y != 0], (x / np.float32(0.6))[y != 0], rtol=1e-6)


def test_get_set_weights_in_keras_order_and_shapes():
    model = small_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(6, 8), (8,), (8,), (8,), (8,), (8,), (8, 3), (3,)]
    new = [np.random.default_rng().normal(size=s) for s in shapes]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_allclose(a, b.astype(np.float32))
    # parameters are views into one flat arena buffer
    assert model.layers[0].kernel.value.base is model.arena.params
    assert model.arena.size == 6 * 8 + 8 + 8 + 8 + 8 * 3 + 3


def test_frozen_layer_is_not_updated():
    x, y = data()
    model = small_model()
    model.layers[0].trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert not np.array_equal(before[6], after[6])


def test_normalization_uses_training_statistics_on_other_data():
    train = np.random.default_rng().normal(loc=5, scale=3, size=(200, 4))
    layer = Normalization()
    layer.adapt(train)
    model = gpudl.Sequential([gpudl.Input((4,)), layer], dtype="float64")
    test = np.random.default_rng().normal(size=(10, 4))
    np.testing.assert_allclose(model.predict(test), (test - train.mean(0)) / train.std(0), rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()[1], train.var(0), rtol=1e-12)


def test_callbacks_see_hooks_in_order_and_can_stop_training():
    events = []

    class Recorder(gpudl.callbacks.Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin {epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append(f"batch_end {batch}")
        def on_epoch_end(self, epoch, logs=None):
            events.append(f"epoch_end {epoch} {sorted(logs)}")
            self.model.stop_training = epoch == 1
        def on_train_end(self, logs=None): events.append("train_end")

    model = small_model()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(*data(20), batch_size=10, epochs=5, verbose=0, callbacks=[Recorder()])
    assert events == ["train_begin", "epoch_begin 0", "batch_end 0", "batch_end 1",
                      "epoch_end 0 ['accuracy', 'loss']", "epoch_begin 1", "batch_end 0", "batch_end 1",
                      "epoch_end 1 ['accuracy', 'loss']", "train_end"]
    assert len(history.history["loss"]) == 2


def test_progress_bar_prints_keras_style_lines(capsys):
    model = small_model()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*data(20), batch_size=8, epochs=2, verbose=2, validation_split=0.2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    # Keras 3's verbose=2: one line per epoch, `2/2 - 0s - 3ms/step - accuracy: ... - val_loss: ...`
    assert re.search(r"^2/2 - \d+s - \d+(ms|us)/step - accuracy: .* - val_accuracy: .* - val_loss: \d", out, re.M)
    assert "━" not in out


def test_summary_counts_parameters():
    lines = []
    small_model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    # Dense 6*8 + 8, BatchNormalization 4*8 (moving statistics not trainable), Dense 8*3 + 3
    assert f"Total params: {6 * 8 + 8 + 4 * 8 + 8 * 3 + 3}" in text
    assert f"Trainable params: {6 * 8 + 8 + 2 * 8 + 8 * 3 + 3}" in text
    assert "Non-trainable params: 16" in text


@pytest.mark.parametrize("loss, y, metric, expected", [
    ("sparse_categorical_crossentropy", np.array([0, 2]), "accuracy", 0.5),
    ("categorical_crossentropy", np.eye(3)[[0, 1]], "accuracy", 1.0),
    ("binary_crossentropy", np.array([[1, 0, 1], [0, 0, 1]]), "accuracy", 3 / 6),
])
def test_accuracy_string_follows_the_loss(loss, y, metric, expected):
    """Outputs fixed through weights: softmax of [[2, 1, 0], [0, 3, 1]] -> argmax 0, 1."""
    activation = "sigmoid" if loss == "binary_crossentropy" else "softmax"
    model = gpudl.Sequential([gpudl.Input((2,)), Dense(3, activation=activation, use_bias=False)], dtype="float64")
    model.compile("sgd", loss, metrics=[metric])
    model.set_weights([np.array([[2.0, 1.0, -1.0], [0.0, 3.0, 1.0]])])
    # x = [1, 0] -> z = [2, 1, -1];  x = [0, 1] -> z = [0, 3, 1]
    # binary: sigmoid(z) > 0.5 -> [1, 1, 0] and [0, 1, 1] (sigmoid(0) = 0.5 is not above)
    # against [1, 0, 1] and [0, 0, 1]: 1 + 2 of 6 right
    assert model.evaluate(np.eye(2), y)[1] == pytest.approx(expected)


def test_float64_end_to_end():
    gpudl.set_floatx("float64")
    try:
        model = small_model()
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(*data(), epochs=1, verbose=0)
        assert all(w.dtype == np.float64 for w in model.get_weights())
        assert model.predict(data()[0]).dtype == np.float64
    finally:
        gpudl.set_floatx("float32")


def test_he_and_glorot_initializer_variances():
    rng_shape = (400, 300)
    he = gpudl.initializers.HeNormal(seed=1)(rng_shape)
    glorot = gpudl.initializers.GlorotUniform(seed=1)(rng_shape)
    lecun = gpudl.initializers.get("lecun_normal")(rng_shape)
    assert he.var() == pytest.approx(2 / 400, rel=0.03)
    assert glorot.var() == pytest.approx(2 / 700, rel=0.03)
    assert np.abs(glorot).max() <= np.sqrt(6 / 700)
    assert lecun.var() == pytest.approx(1 / 400, rel=0.03)
    assert np.abs(he).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-6


@pytest.mark.parametrize("scale", [1.5, 0.5])
def test_course_deep_linear_network_explodes_or_vanishes(scale):
    """W = scale * I in every layer: outputs grow (or shrink) as scale^L."""
    layers = 10
    model = gpudl.Sequential([gpudl.Input((3,))] + [Dense(3, use_bias=False) for _ in range(layers)], dtype="float64")
    model.set_weights([scale * np.eye(3)] * layers)
    x = np.array([[1.0, -2.0, 0.5]])
    np.testing.assert_allclose(model.predict(x), scale ** layers * x, rtol=1e-12)
