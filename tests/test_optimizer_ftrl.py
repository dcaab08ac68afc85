"""Ftrl as Keras 3: fit's arena steps on a small model against a float64 NumPy recomputation of
Keras's formula (keras/src/optimizers/ftrl.py) on hand-computed gradients, numbers from real
Keras, bad arguments, the config and the name, saving and resuming, and apply() on plain arrays."""

import json
import re

import numpy as np
import pytest

import gpudl
from gpudl import optimizers
from gpudl.frontend.layers import Dense


def keras_ftrl(w, grads, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
               l1_regularization_strength=0.0, l2_regularization_strength=0.0,
               l2_shrinkage_regularization_strength=0.0, beta=0.0):
    """Keras's Ftrl.update_step, float64, one variable, written out from the Keras source:
    returns (w, accumulator, linear) after the steps."""
    lr, power = learning_rate, -learning_rate_power
    w, accumulator, linear = w.copy(), np.full_like(w, initial_accumulator_value), np.zeros_like(w)
    l2 = l2_regularization_strength + beta / (2.0 * lr)
    for g in grads:
        grad_to_use = g + 2 * l2_shrinkage_regularization_strength * w
        new_accumulator = accumulator + g**2
        linear = linear + grad_to_use - (new_accumulator**power - accumulator**power) / lr * w
        quadratic = new_accumulator**power / lr + 2 * l2
        l1 = l1_regularization_strength
        w = (np.clip(linear, -l1, l1) - linear) / quadratic
        accumulator = new_accumulator
    return w, accumulator, linear


def linear_model(optimizer, seed):
    """y = x W + b, float64, mean squared error: its gradients are easy to write by hand."""
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(3)], dtype="float64", seed=seed)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def mse_gradients(kernel, bias, x, y):
    """d/dW and d/db of mean((x W + b - y)^2) over the batch and the outputs."""
    d_output = 2.0 * (x @ kernel + bias - y) / y.size
    return x.T @ d_output, d_output.sum(axis=0)


REGULARIZED = {"learning_rate": 0.2, "learning_rate_power": -0.3, "initial_accumulator_value": 0.05,
               "l1_regularization_strength": 0.1, "l2_regularization_strength": 0.1,
               "l2_shrinkage_regularization_strength": 0.05, "beta": 0.5}


@pytest.mark.parametrize("config", [REGULARIZED, {"learning_rate": 0.1}], ids=["regularized", "defaults"])
def test_five_fit_steps_on_a_model_equal_a_float64_recomputation_of_keras_formula(config):
    rng = np.random.default_rng(20)
    x, y = rng.normal(size=(5, 8, 4)), rng.normal(size=(5, 8, 3))
    model = linear_model(optimizers.Ftrl(**config), seed=20)
    initial, grads = model.get_weights(), []
    for xb, yb in zip(x, y):
        grads.append(mse_gradients(*model.get_weights(), xb, yb))  # at the weights this step starts from
        model.train_on_batch(xb, yb)
    reference = [keras_ftrl(w0, [step[i] for step in grads], **config) for i, w0 in enumerate(initial)]
    assert model.optimizer.iterations == 5
    for parameter, (w, accumulator, linear) in zip(model.trainable_weights, reference):
        np.testing.assert_allclose(parameter.numpy(), w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.optimizer.get_slot(parameter, "accumulator"), accumulator, rtol=1e-13)
        np.testing.assert_allclose(model.optimizer.get_slot(parameter, "linear"), linear, rtol=1e-12, atol=1e-15)
    if config is REGULARIZED:  # the L1 strength zeroed some weights exactly and kept others
        weights = np.concatenate([w.ravel() for w in model.get_weights()])
        assert 0 < np.sum(weights == 0.0) < weights.size


# Real Keras: /work/kerasvenv (Keras 3.15.1, JAX backend, jax_enable_x64, floatx float64), the script
#   W0 = [0.5, -1.5, 2.0, 0.0]; G = [[0.3, -0.2, 1.5, 0.0], [-0.1, 0.4, 0.7, 2.0], [0.25, -0.6, -0.3, 0.5]]
#   opt = eval("keras.optimizers." + call); v = keras.Variable(W0)
#   for g in G: opt.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
#   print(call, [float(x) for x in v.numpy()])
W0 = np.array([0.5, -1.5, 2.0, 0.0])
G = np.array([[0.3, -0.2, 1.5, 0.0], [-0.1, 0.4, 0.7, 2.0], [0.25, -0.6, -0.3, 0.5]])
KERAS_RESULTS = {
    "Ftrl(learning_rate=0.1)": [0.042002830911396866, -0.17799114927116283, 1.4655711196367909,
                                -0.12274612473922818],
    "Ftrl(learning_rate=0.1, learning_rate_power=-0.3, initial_accumulator_value=0.2, "
    "l1_regularization_strength=0.05, l2_regularization_strength=0.1, l2_shrinkage_regularization_strength=0.2, "
    "beta=0.5)": [-0.01859580017809811, 0.030366021453575316, 0.5813394127908098, -0.1169125062241477],
    "Ftrl(learning_rate=0.1, learning_rate_power=0.0, initial_accumulator_value=0.0, "
    "l1_regularization_strength=0.3)": [-0.014999999999999996, 0.009999999999999998, -0.16, -0.22000000000000003],
    "Ftrl(learning_rate=0.1, weight_decay=0.2)": [0.03900053108216801, -0.17063841786381137, 1.4307505934765299,
                                                  -0.12268851875187053],
}


@pytest.mark.parametrize("call", sorted(KERAS_RESULTS))
def test_three_steps_equal_real_keras_float64(call):
    optimizer = eval(call, {**vars(optimizers)})  # the same call Keras ran
    w = W0.copy()
    for g in G:
        optimizer.apply_gradients([(g, w)])
    np.testing.assert_allclose(w, KERAS_RESULTS[call], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("argument, value, expected", [
    ("learning_rate_power", 0.5, "a float <= 0"),
    ("learning_rate_power", float("nan"), "a float <= 0"),
    ("initial_accumulator_value", -0.1, "a non-negative float"),
    ("l1_regularization_strength", -1.0, "a non-negative float"),
    ("l2_regularization_strength", float("inf"), "a non-negative float"),
    ("l2_shrinkage_regularization_strength", "0.1", "a non-negative float"),
    ("beta", -0.5, "a non-negative float"),
    ("beta", True, "a non-negative float"),
    ("learning_rate", 0.0, "a positive number"),
])
def test_bad_arguments_are_refused_naming_the_argument(argument, value, expected):
    with pytest.raises(ValueError, match=re.escape(f"Invalid value received for argument `{argument}`. Expected "
                                                   f"{expected}. Received: {argument}={value!r}")):
        optimizers.Ftrl(**{argument: value})


def test_defaults_name_and_config_are_keras_and_the_config_rebuilds_the_same_steps():
    # Keras 3.15.1's defaults and name ("ftrl"); get("ftrl") builds it, as keras.optimizers.get does
    defaults = {"learning_rate": 0.001, "learning_rate_power": -0.5, "initial_accumulator_value": 0.1,
                "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0,
                "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0}
    config = optimizers.get("ftrl").get_config()
    assert {key: config[key] for key in defaults} == defaults
    assert re.fullmatch(r"ftrl(_\d+)?", config["name"])
    optimizer = optimizers.Ftrl(**REGULARIZED, clipvalue=0.5)
    serialized = json.loads(json.dumps(optimizers.serialize(optimizer)))
    again = optimizers.deserialize(serialized)
    assert type(again) is optimizers.Ftrl and again.get_config() == optimizer.get_config()
    grads = np.random.default_rng(21).normal(size=(4, 6))
    w1, w2 = np.ones(6), np.ones(6)
    for g in grads:
        optimizer.apply([g], [w1])
        again.apply([g], [w2])
    np.testing.assert_array_equal(w1, w2)


def test_a_saved_model_resumes_exactly(tmp_path):
    rng = np.random.default_rng(22)
    x, y = rng.normal(size=(48, 4)), rng.normal(size=(48, 3))
    model = linear_model(optimizers.Ftrl(**REGULARIZED), seed=22)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.npz")
    resumed = gpudl.load_model(tmp_path / "m.npz")
    assert type(resumed.optimizer) is optimizers.Ftrl
    assert resumed.optimizer.get_config() == model.optimizer.get_config()
    for ours, theirs in zip(resumed.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(ours, theirs)
    for each in (model, resumed):
        each.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(resumed.get_weights() + resumed.optimizer.variables,
                            model.get_weights() + model.optimizer.variables):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed.optimizer.iterations == 6


def test_apply_on_plain_arrays_updates_them_in_place_and_keeps_readable_slots():
    rng = np.random.default_rng(23)
    matrix, vector = rng.normal(size=(3, 2)), rng.normal(size=4)
    matrix_grads, vector_grads = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 4))
    expected = [keras_ftrl(matrix, matrix_grads, **REGULARIZED), keras_ftrl(vector, vector_grads, **REGULARIZED)]
    optimizer = optimizers.Ftrl(**REGULARIZED)
    for matrix_grad, vector_grad in zip(matrix_grads, vector_grads):
        optimizer.apply([matrix_grad, vector_grad], [matrix, vector])
    for array, (w, accumulator, linear) in zip((matrix, vector), expected):
        np.testing.assert_allclose(array, w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(optimizer.get_slot(array, "accumulator"), accumulator, rtol=1e-13)
        np.testing.assert_allclose(optimizer.get_slot(array, "linear"), linear, rtol=1e-12, atol=1e-15)
    # Keras's order: the step counter, then each variable's accumulator and linear
    state = optimizer.variables
    assert len(state) == 5 and state[0] == 4 and state[0].shape == ()
    np.testing.assert_array_equal(state[1], optimizer.get_slot(matrix, "accumulator"))
    np.testing.assert_array_equal(state[4], optimizer.get_slot(vector, "linear"))


def test_float32_steps_follow_the_float64_ones():
    rng = np.random.default_rng(24)
    w0, grads = rng.normal(size=(5, 3)), rng.normal(size=(6, 5, 3))
    w32, w64 = w0.astype(np.float32), w0.copy()
    first, second = optimizers.Ftrl(**REGULARIZED), optimizers.Ftrl(**REGULARIZED)
    for g in grads:
        first.apply([g.astype(np.float32)], [w32])
        second.apply([g], [w64])
    assert w32.dtype == first.get_slot(w32, "linear").dtype == np.float32
    np.testing.assert_allclose(w32, w64, rtol=1e-5, atol=1e-6)
