"""Bad input gets a clear error naming what was wrong, raised before any state changes."""

import numpy as np
import pytest

import gpudl
from gpudl.layers import BatchNormalization, Dense, Dropout


def compiled_model():
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(5, name="hidden"), BatchNormalization(),
                              Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


X = np.random.default_rng(0).normal(size=(10, 4))
Y = np.arange(10) % 3


@pytest.mark.parametrize("x, y, match", [
    (X, Y[:9], "same number of samples"),
    (X[:, :3], Y, r"Layer 'hidden' .* expected `x` of shape \(None, 4\); received shape \(10, 3\)"),
    (np.where(np.eye(10, 4) > 0, np.nan, X), Y, r"`x` contains NaN or inf \(first at index \(0, 0\)\)"),
    (np.where(np.eye(10, 4) > 0, np.inf, X), Y, "`x` contains NaN or inf"),
    (X, np.where(Y == 1, 3, Y), r"labels in \[0, 3\] but the model has 3 classes"),
    (X, np.where(Y == 1, -1, Y), r"labels in \[-1, 2\]"),
    (X, Y + 0.5, "integer class labels"),
    (X[:0], Y[:0], "non-empty"),
    (X, np.array([np.nan] * 10), "`y` contains NaN or inf"),
])
def test_fit_rejects_bad_data_and_leaves_the_weights_unchanged(x, y, match):
    model = compiled_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_nan_in_validation_data_is_caught_before_training():
    model = compiled_model()
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` contains NaN"):
        model.fit(X, Y, validation_data=(np.full((2, 4), np.nan), Y[:2]), verbose=0)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, r"`batch_size`. Expected a positive integer. Received: batch_size=0"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"validation_split": 1.0}, r"`validation_split`. Expected a float in \[0, 1\)"),
    ({"validation_split": -0.1}, "validation_split"),
    ({"epochs": -1}, "epochs"),
])
def test_fit_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compiled_model().fit(X, Y, verbose=0, **kwargs)


def test_fit_before_compile_says_to_compile():
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(3)])
    with pytest.raises(ValueError, match=r"You must call `compile\(\)` before using the model"):
        model.fit(X, Y)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "half"])
def test_dropout_rate_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"Dropout .*`rate`. Expected a float in \[0, 1\). Received: rate="):
        Dropout(rate)


@pytest.mark.parametrize("make", [lambda: gpudl.optimizers.Adam(0.0), lambda: gpudl.optimizers.SGD(-0.1),
                                  lambda: gpudl.optimizers.RMSprop(float("nan"))])
def test_non_positive_learning_rate(make):
    with pytest.raises(ValueError, match="`learning_rate`. Expected a positive number"):
        make()


def test_learning_rate_set_later_is_checked_and_kept():
    optimizer = gpudl.optimizers.Adam(0.01)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizer.learning_rate = 0
    assert optimizer.learning_rate == 0.01


def test_schedule_giving_a_negative_rate_stops_before_the_update():
    model = compiled_model()
    model.optimizer.learning_rate = lambda step: 0.01 - step * 0.02
    with pytest.raises(ValueError, match="gave -0.01 at step 1; expected a non-negative number"):
        model.fit(X, Y, batch_size=5, verbose=0)
    assert model.optimizer.iterations == 1


@pytest.mark.parametrize("make, match", [
    (lambda: Dense(3, activation="relux"), "Unknown activation: 'relux'. Known activations: .*leaky_relu.*relu"),
    (lambda: Dense(3, kernel_initializer="he"), "Unknown initializer: 'he'. Known initializers: .*he_normal"),
    (lambda: compiled_model().compile("adam", "crossentropy"), "Unknown loss: 'crossentropy'. Known losses: "),
    (lambda: compiled_model().compile("adamm", "mse"), "Unknown optimizer: 'adamm'"),
])
def test_unknown_names_list_the_known_ones(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_metric_is_named():
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracyy"])
    with pytest.raises(ValueError, match="Unknown metric: 'accuracyy'"):
        model.fit(X, Y, verbose=0)


def test_one_hot_targets_of_the_wrong_width():
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"`y` has shape \(10, 4\) but the model outputs \(None, 3\)"):
        model.fit(X, np.eye(4)[Y], verbose=0)


def test_set_weights_checks_every_shape_before_writing():
    model = compiled_model()
    before = model.get_weights()
    bad = [np.ones_like(w) for w in before]
    bad[-1] = np.ones(4)
    with pytest.raises(ValueError, match=r"has shape \(3,\); set_weights received an array of shape \(4,\)"):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])
