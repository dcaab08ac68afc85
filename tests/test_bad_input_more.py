"""More bad input (issue 19): cases that trained on silently (float32 overflow, string and complex
targets) or failed with an unclear error (inf epochs, a string validation_split, a ragged list,
steps_per_epoch=0), and set_weights with a bad last array. Each is refused by a message naming the
argument or the weight, before any weight or the optimizer's step changes."""

import numpy as np
import pytest

import gpudl
from gpudl.layers import BatchNormalization, Dense

X = np.random.default_rng(0).normal(size=(10, 4))
Y_LABELS = np.arange(10) % 3
Y_VALUES = np.random.default_rng(1).normal(size=(10, 3))


def trained_model(loss="sparse_categorical_crossentropy"):
    """A built, compiled float32 model that has taken some steps (so the step count is not 0)."""
    gpudl.utils.set_random_seed(0)
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(5, name="hidden"), BatchNormalization(),
                              Dense(3, activation="softmax" if "crossentropy" in loss else None)])
    model.compile("adam", loss)
    model.fit(X, Y_LABELS if "sparse" in loss else Y_VALUES, batch_size=5, verbose=0)
    return model


def assert_unchanged(model, action, match, error=ValueError):
    before, step = model.get_weights(), int(model.optimizer.iterations)
    with pytest.raises(error, match=match):
        action()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == step


def overflowing_x():
    x = X.copy()  # float64
    x[3, 2] = 1e39  # finite in float64, inf in the model's float32
    return x


OVERFLOW = r"argument `x`\. Expected values that fit the model's dtype float32, at most 3\.40282e\+38 .*index \(3, 2\)"


@pytest.mark.parametrize("run", [
    lambda m: m.fit(overflowing_x(), Y_LABELS, verbose=0),
    lambda m: m.evaluate(overflowing_x(), Y_LABELS, verbose=0),
    lambda m: m.predict(overflowing_x(), verbose=0),
], ids=["fit", "evaluate", "predict"])
def test_x_overflowing_float32_is_refused_naming_the_index_and_the_max(run):
    model = trained_model()
    assert_unchanged(model, lambda: run(model), OVERFLOW + r".*Received: x=1e\+39")


def test_validation_data_overflowing_float32_is_refused_naming_it():
    model = trained_model()
    assert_unchanged(model, lambda: model.fit(X, Y_LABELS, validation_data=(overflowing_x(), Y_LABELS), verbose=0),
                     r"argument `validation_data\[0\]`.*float32.*index \(3, 2\)")


def test_sample_weight_overflowing_float32_is_refused():
    model = trained_model()
    weights = np.ones(10)
    weights[4] = 1e40
    assert_unchanged(model, lambda: model.fit(X, Y_LABELS, sample_weight=weights, verbose=0),
                     r"argument `sample_weight`.*float32.*index \(4,\)")


def test_targets_overflowing_float32_are_refused_naming_y():
    model = trained_model("mse")
    y = Y_VALUES.copy()
    y[6, 1] = -1e39
    assert_unchanged(model, lambda: model.fit(X, y, verbose=0),
                     r"argument `y`.*float32, at most 3\.40282e\+38.*index \(6, 1\).*Received: y=-1e\+39")
    assert_unchanged(model, lambda: model.evaluate(X, y, verbose=0), r"argument `y`.*index \(6, 1\)")


def test_a_float64_model_takes_what_float32_cannot_hold():
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(3)], dtype="float64")
    output = model.predict(overflowing_x(), verbose=0)  # 1e39 fits float64
    assert output.dtype == np.float64 and np.isfinite(output).all() and np.abs(output[3]).max() > 1e37


@pytest.mark.parametrize("targets, kind", [
    (Y_VALUES.astype(str), r"<U\d+"),
    (Y_VALUES + 1j, "complex128"),
    (np.array([object()] * 30, dtype=object).reshape(10, 3), "object"),
], ids=["strings", "complex", "objects"])
def test_mse_refuses_targets_that_are_not_real_numbers(targets, kind):
    model = trained_model("mse")
    assert_unchanged(model, lambda: model.fit(X, targets, verbose=0),
                     r"argument `y`\. Expected numeric real targets .*Received: y='an array of dtype " + kind)
    assert_unchanged(model, lambda: model.evaluate(X, targets, verbose=0), r"argument `y`\. Expected numeric real")


@pytest.mark.parametrize("epochs", [float("inf"), float("nan"), -1, 2.5, "3"])
def test_epochs_must_be_a_whole_finite_number(epochs):
    model = trained_model()
    assert_unchanged(model, lambda: model.fit(X, Y_LABELS, epochs=epochs, verbose=0),
                     r"fit: Invalid value received for argument `epochs`\. Expected a non-negative integer")


@pytest.mark.parametrize("split", ["0.2", None, True, 1.0, -0.1, float("nan")])
def test_validation_split_must_be_a_number_in_0_1(split):
    model = trained_model()
    assert_unchanged(model, lambda: model.fit(X, Y_LABELS, validation_split=split, verbose=0),
                     r"argument `validation_split`\. Expected a float in \[0, 1\)\. Received: validation_split=")


def test_validation_split_as_a_number_still_splits():
    model = trained_model()
    history = model.fit(X, Y_LABELS, validation_split=0.2, verbose=0)
    assert "val_loss" in history.history


@pytest.mark.parametrize("run", [
    lambda m, x: m.fit(x, Y_LABELS[:3], verbose=0),
    lambda m, x: m.evaluate(x, Y_LABELS[:3], verbose=0),
    lambda m, x: m.predict(x, verbose=0),
], ids=["fit", "evaluate", "predict"])
def test_a_ragged_list_as_x_is_named(run):
    model = trained_model()
    ragged = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6], [0.7, 0.8, 0.9, 1.0]]
    assert_unchanged(model, lambda: run(model, ragged), r"argument `x`\. Expected an array-like of one shape")


def test_a_ragged_list_as_y_is_named():
    model = trained_model("mse")
    ragged = [[0.0, 1.0, 2.0]] * 9 + [[0.0]]
    assert_unchanged(model, lambda: model.fit(X, ragged, verbose=0), r"argument `y`\. Expected an array-like")


@pytest.mark.parametrize("run, argument", [
    (lambda m: m.fit(X, Y_LABELS, steps_per_epoch=0, verbose=0), "steps_per_epoch"),
    (lambda m: m.fit(X, Y_LABELS, validation_data=(X, Y_LABELS), validation_steps=0, verbose=0), "validation_steps"),
    (lambda m: m.evaluate(X, Y_LABELS, steps=0, verbose=0), "steps"),
    (lambda m: m.predict(X, steps=0, verbose=0), "steps"),
], ids=["fit", "fit-validation", "evaluate", "predict"])
def test_zero_steps_are_refused_by_name(run, argument):
    model = trained_model()
    assert_unchanged(model, lambda: run(model), rf"argument `{argument}`\. Expected a positive integer\. "
                                                rf"Received: {argument}=0")


# -- set_weights: all or nothing ------------------------------------------------------------------

@pytest.mark.parametrize("last, match", [
    (lambda w: np.full(w.shape, np.nan), r"non-finite value at index \(0,\): nan"),
    (lambda w: np.full(w.shape, np.inf), r"non-finite value at index \(0,\): inf"),
    (lambda w: np.full(w.shape, 1e39), r"index \(0,\): 1e\+39 overflows float32 \(max 3\.40282e\+38\)"),
    (lambda w: w.astype(str), r"array of dtype <U\d+; expected real numbers"),
    (lambda w: w + 1j, r"array of dtype complex\d+; expected real numbers"),
    (lambda w: w > 0, r"array of dtype bool; expected real numbers"),
    (lambda w: np.array([None] * w.size), r"array of dtype object; expected real numbers"),
    (lambda w: [[1.0], [1.0, 2.0], [3.0]], r"not an array"),
], ids=["nan", "inf", "overflow", "strings", "complex", "bool", "objects", "ragged"])
def test_set_weights_with_a_bad_last_array_changes_no_weight(last, match):
    model = trained_model()
    weights = [w + 1.0 for w in model.get_weights()]
    weights[-1] = last(weights[-1])
    name = model.weights[-1].path
    assert_unchanged(model, lambda: model.set_weights(weights), rf"weight '{name}'.*{match}")


def test_set_weights_on_a_layer_is_all_or_nothing_too():
    model = trained_model()
    layer = model.get_layer("hidden")
    kernel, bias = layer.get_weights()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"Layer 'hidden' weight 'hidden/bias'.*dtype <U"):
        layer.set_weights([kernel + 1.0, bias.astype(str)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_still_takes_lists_and_integer_arrays():
    model = trained_model()
    weights = model.get_weights()
    weights[0] = weights[0].tolist()
    weights[1] = np.zeros(weights[1].shape, np.int64)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[1], np.zeros(5, np.float32))
