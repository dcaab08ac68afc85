"""Lamb as Keras 3, and the per-variable hook it needs: real Keras's Lamb (JAX backend) and
gpudl's from the same weights on the same gradients, float64 and float32, on plain arrays and
on a model's arena (variables of different shapes and scales, so a trust ratio over the whole
arena would differ: one test runs that wrong rule and sees it fail); fit on a small Sequential
against a float64 NumPy recomputation of keras/src/optimizers/lamb.py, clipping and weight decay
in Keras's order, the config and the name, saving and resuming, and that elementwise rules
still update a whole arena run at once."""

import json
import re

import numpy as np
import pytest

import gpudl
from gpudl import optimizers
from gpudl.frontend.layers import Dense

jax = pytest.importorskip("jax")  # the test extra has Keras on JAX (conftest sets KERAS_BACKEND=jax)
keras = pytest.importorskip("keras")

# float32: Keras computes 1 - beta_2^t in float32 (1 - 0.999f is 1.3e-5 off), gpudl in float64
# rounded once; the trust ratio cancels that scale except where it is 1 (a zero bias), which
# leaves differences up to ~7e-6 relative (1e-6 with Keras's float32 corrections).
TOLERANCE = {"float64": {"rtol": 1e-12, "atol": 1e-15}, "float32": {"rtol": 2e-5, "atol": 1e-6}}


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    return request.param


def keras_lamb(config, weights, grads, dtype):
    """Real Keras 3: keras.optimizers.Lamb(**config).apply_gradients on keras.Variables, one call
    per step; returns the variables after the steps. Keras computes float64 only in JAX's 64-bit
    mode and keeps its learning rate in floatx: both are set to `dtype` for the run, then put back."""
    if keras.backend.backend() != "jax":
        pytest.skip("the Keras reference runs on JAX (KERAS_BACKEND=jax)")
    before = jax.config.jax_enable_x64, keras.config.floatx()
    jax.config.update("jax_enable_x64", dtype == "float64")
    keras.config.set_floatx(dtype)
    try:
        variables = [keras.Variable(w, dtype=dtype) for w in weights]
        optimizer = keras.optimizers.Lamb(**config)
        for step in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g, dtype=dtype), v)
                                       for g, v in zip(step, variables)])
        return [np.array(v.value, dtype=np.float64) for v in variables]
    finally:
        jax.config.update("jax_enable_x64", before[0])
        keras.config.set_floatx(before[1])


def lamb_step(weights, grads, moments, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
              weight_decay=None, clipnorm=None, global_clipnorm=None, clipvalue=None, global_trust=False):
    """One step of Keras's Lamb.update_step (keras/src/optimizers/lamb.py) after Keras's clipping
    and weight decay (base_optimizer.py), float64 NumPy, written out independently of gpudl.
    `moments` [(m, v)] is updated in place; returns the new weights. global_trust=True takes one
    trust ratio over all the variables: the wrong rule, a run-wide update."""
    grads = [np.array(g, dtype=np.float64) for g in grads]
    if clipnorm:
        grads = [g * clipnorm / max(np.sqrt(np.sum(g**2)), clipnorm) for g in grads]
    elif global_clipnorm:
        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        grads = [g * (global_clipnorm * min(1.0 / norm, 1.0 / global_clipnorm)) for g in grads]
    elif clipvalue:
        grads = [np.clip(g, -clipvalue, clipvalue) for g in grads]
    if weight_decay:
        weights = [w - w * weight_decay * learning_rate for w in weights]
    steps = []
    for (m, v), g in zip(moments, grads):
        m += (g - m) * (1 - beta_1)
        v += (g**2 - v) * (1 - beta_2)
        steps.append((m / (1 - beta_1**t)) / (np.sqrt(v / (1 - beta_2**t)) + epsilon))

    def trust_ratio(ws, rs):
        w_norm, r_norm = np.sqrt(sum(np.sum(w**2) for w in ws)), np.sqrt(sum(np.sum(r**2) for r in rs))
        return w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
    ratios = [trust_ratio(weights, steps)] * len(weights) if global_trust else \
        [trust_ratio([w], [r]) for w, r in zip(weights, steps)]
    return [w - ratio * learning_rate * r for w, ratio, r in zip(weights, ratios, steps)]


def lamb_reference(config, weights, grads, global_trust=False):
    weights = [np.array(w, dtype=np.float64) for w in weights]
    moments = [(np.zeros(w.shape), np.zeros(w.shape)) for w in weights]
    for t, step in enumerate(grads, start=1):
        weights = lamb_step(weights, step, moments, t, **config, global_trust=global_trust)
    return weights


def mixed_variables(rng):
    """Variables of different shapes and scales (a large kernel, a small vector, a zero bias:
    Keras's trust ratio 1) and gradients of different scales, five steps."""
    weights = [3.0 * rng.normal(size=(6, 4)), 0.01 * rng.normal(size=7), np.zeros(4), rng.normal(size=(2, 3, 2))]
    scales = [0.1, 5.0, 1.0, 0.01]
    grads = [[scale * rng.normal(size=w.shape) for w, scale in zip(weights, scales)] for _ in range(5)]
    return weights, grads


def max_difference(ours, theirs):
    """(max absolute, max relative) difference over all the variables."""
    ours, theirs = np.concatenate([np.ravel(w) for w in ours]), np.concatenate([np.ravel(w) for w in theirs])
    absolute = np.abs(ours - theirs)
    return absolute.max(), (absolute / np.maximum(np.abs(theirs), 1e-30)).max()


def assert_close(ours, theirs, dtype):
    for mine, keras_value in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(mine, dtype=np.float64), keras_value, **TOLERANCE[dtype])


# --- against real Keras -------------------------------------------------------------------------

CONFIGS = [
    {"learning_rate": 0.05},
    {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3},
    {"learning_rate": 0.05, "weight_decay": 0.2},  # ||w|| after the decay, as Keras applies it first
    {"learning_rate": 0.05, "clipnorm": 0.5},
    {"learning_rate": 0.05, "global_clipnorm": 0.5},
    {"learning_rate": 0.05, "clipvalue": 0.1},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_steps_on_plain_arrays_equal_real_keras(config, dtype):
    weights, grads = mixed_variables(np.random.default_rng(40))
    theirs = keras_lamb(config, weights, grads, dtype)
    ours = [w.astype(dtype) for w in weights]
    optimizer = optimizers.Lamb(**config)
    for step in grads:
        optimizer.apply([g.astype(dtype) for g in step], ours)
    assert all(w.dtype == dtype for w in ours) and optimizer.get_slot(ours[0], "v").dtype == dtype
    assert_close(ours, theirs, dtype)
    # and the float64 NumPy recomputation of Keras's formula agrees with Keras itself
    assert_close(lamb_reference(config, weights, grads), theirs, dtype)


def arena_model(dtype, seed, optimizer=None):
    """Dense(4) then Dense(3): four variables in one arena run (kernel, bias, kernel, bias); the
    kernels uniform in (-0.8, 0.8) drawn from `seed`, the biases zero."""
    model = gpudl.Sequential([gpudl.Input((5,)), Dense(4, activation="tanh"), Dense(3)], dtype=dtype)
    model.compile(optimizer=optimizer or optimizers.Lamb(0.05), loss="mse")
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.uniform(-0.8, 0.8, size=w.shape) if w.ndim == 2 else np.zeros(w.shape)).astype(dtype)
                       for w in model.get_weights()])
    return model


def arena_case(dtype):
    """The model's weights rescaled apart (kernel x10, a small bias) and gradients of different
    scales, five steps."""
    rng = np.random.default_rng(41)
    model = arena_model(dtype, seed=41)
    kernel1, _, kernel2, _ = model.get_weights()
    weights = [10.0 * kernel1, 0.01 * rng.normal(size=4), kernel2, np.zeros(3)]
    model.set_weights([w.astype(dtype) for w in weights])
    grads = [[scale * rng.normal(size=w.shape) for w, scale in zip(weights, [0.1, 3.0, 1.0, 0.5])] for _ in range(5)]
    return model, weights, grads


def test_steps_on_a_models_arena_equal_real_keras(dtype):
    model, weights, grads = arena_case(dtype)
    assert model.optimizer.per_variable and len(model.arena.runs(lambda p: p.trainable)) == 1  # 4 variables
    for step in grads:
        model.optimizer.apply([g.astype(dtype) for g in step], model.trainable_weights)
    assert_close(model.get_weights(), keras_lamb({"learning_rate": 0.05}, weights, grads, dtype), dtype)


def test_a_trust_ratio_over_the_whole_arena_would_fail_the_keras_comparison():
    # the same steps with the per-variable hook switched off: one update over the arena run,
    # hence one global trust ratio (it is what the global recomputation gives, and not Keras)
    model, weights, grads = arena_case("float64")
    model.optimizer.per_variable = False
    for step in grads:
        model.optimizer.apply(step, model.trainable_weights)
    global_rule = lamb_reference({"learning_rate": 0.05}, weights, grads, global_trust=True)
    assert_close(model.get_weights(), global_rule, "float64")
    absolute, relative = max_difference(model.get_weights(), keras_lamb({"learning_rate": 0.05}, weights, grads,
                                                                        "float64"))
    assert relative > 0.1 and absolute > 0.01


# --- through fit ---------------------------------------------------------------------------------

def dense_tanh_dense_gradients(weights, x, y):
    """d/dW of mean((tanh(x K1 + b1) K2 + b2 - y)^2) over the batch and the outputs, float64."""
    kernel1, bias1, kernel2, bias2 = weights
    hidden = np.tanh(x @ kernel1 + bias1)
    d_output = 2.0 * (hidden @ kernel2 + bias2 - y) / y.size
    d_hidden = (d_output @ kernel2.T) * (1.0 - hidden**2)
    return [x.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_output, d_output.sum(axis=0)]


@pytest.mark.parametrize("config", [
    {"learning_rate": 0.01},
    {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4, "weight_decay": 0.1},
    {"learning_rate": 0.02, "clipnorm": 0.05},
], ids=["plain", "decay", "clipnorm"])
def test_fit_on_a_sequential_equals_a_float64_recomputation_per_variable(config):
    rng = np.random.default_rng(42)
    x, y = rng.normal(size=(32, 5)), rng.normal(size=(32, 3))
    model = arena_model("float64", seed=42, optimizer=optimizers.Lamb(**config))
    initial = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    references = {}
    for global_trust in (False, True):
        weights, moments = initial, [(np.zeros(w.shape), np.zeros(w.shape)) for w in initial]
        for t, start in enumerate(range(0, 32, 8), start=1):
            grads = dense_tanh_dense_gradients(weights, x[start:start + 8], y[start:start + 8])
            weights = lamb_step(weights, grads, moments, t, **config, global_trust=global_trust)
        references[global_trust] = weights, moments
    assert model.optimizer.iterations == 4
    weights, moments = references[False]
    assert_close(model.get_weights(), weights, "float64")
    for parameter, (m, v) in zip(model.trainable_weights, moments):  # the slots are Keras's m and v
        np.testing.assert_allclose(model.optimizer.get_slot(parameter, "m"), m, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.optimizer.get_slot(parameter, "v"), v, rtol=1e-12, atol=1e-18)
    assert max_difference(references[True][0], weights)[1] > 1e-2  # the test tells the two rules apart


# --- the hook ------------------------------------------------------------------------------------

def recording_update(optimizer):
    """Wrap optimizer.update; returns the list of the shapes it is called on."""
    shapes, update = [], optimizer.update

    def recorded(param, grad, slots):
        shapes.append(tuple(param.shape))
        assert grad.shape == param.shape and all(slot.shape == param.shape for slot in slots.values())
        return update(param, grad, slots)
    optimizer.update = recorded
    return shapes


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(0.01), lambda: optimizers.Lion(0.01),
                                  lambda: optimizers.Adam(0.01, clipnorm=0.1)], ids=["adam", "lion", "adam_clipnorm"])
def test_elementwise_rules_update_each_arena_run_at_once_and_lamb_each_variable(make):
    rng = np.random.default_rng(43)
    x, y = rng.normal(size=(8, 5)), rng.normal(size=(8, 3))
    elementwise, lamb = arena_model("float32", seed=43, optimizer=make()), arena_model("float32", seed=43)
    elementwise_shapes, lamb_shapes = recording_update(elementwise.optimizer), recording_update(lamb.optimizer)
    elementwise.train_on_batch(x, y)
    lamb.train_on_batch(x, y)
    assert elementwise_shapes == [(elementwise.arena.size,)]
    assert lamb_shapes == [tuple(p.shape) for p in lamb.trainable_weights] == [(5, 4), (4,), (4, 3), (3,)]
    lamb.layers[0].trainable = False  # a frozen layer: Lamb updates only the variables of the run
    lamb.compile(optimizer=lamb.optimizer, loss="mse")
    lamb_shapes.clear()
    lamb.train_on_batch(x, y)
    assert lamb_shapes == [(4, 3), (3,)]


@pytest.mark.parametrize("name", ["Adamax", "Nadam", "Lion", "Adam"])
def test_the_per_variable_path_gives_an_elementwise_rule_the_same_bits(name):
    rng = np.random.default_rng(44)
    x, y = rng.normal(size=(24, 5)), rng.normal(size=(24, 3))
    runs, variables = (arena_model("float32", seed=44, optimizer=getattr(optimizers, name)(0.01, weight_decay=0.1))
                       for _ in range(2))
    variables.optimizer.per_variable = True
    for model in (runs, variables):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(variables.get_weights() + variables.optimizer.variables,
                            runs.get_weights() + runs.optimizer.variables):
        np.testing.assert_array_equal(ours, theirs)


# --- configuration, names, bad input, saving --------------------------------------------------------

@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # in Keras
def test_defaults_name_and_config_are_keras_and_the_config_rebuilds_the_same_steps():
    ours, theirs = optimizers.get("lamb").get_config(), keras.optimizers.Lamb().get_config()
    assert set(ours) == set(theirs)
    assert {key: ours[key] for key in ("beta_1", "beta_2", "epsilon")} == {"beta_1": 0.9, "beta_2": 0.999,
                                                                             "epsilon": 1e-7}
    for key in set(theirs) - {"name"}:  # Keras keeps the rate in float32
        assert ours[key] == (pytest.approx(theirs[key], rel=1e-7) if isinstance(theirs[key], float) else
                             theirs[key]), key
    assert re.fullmatch(r"lamb(_\d+)?", ours["name"]) and re.fullmatch(r"lamb(_\d+)?", theirs["name"])
    assert optimizers.get("Lamb").__class__ is gpudl.optimizers.Lamb
    optimizer = optimizers.Lamb(0.02, beta_1=0.8, epsilon=1e-5, weight_decay=0.1, clipvalue=0.5)
    serialized = json.loads(json.dumps(optimizers.serialize(optimizer)))
    assert serialized["class_name"] == "Lamb" and serialized["module"] == "keras.optimizers"
    again = optimizers.deserialize(serialized)
    assert type(again) is optimizers.Lamb and again.get_config() == optimizer.get_config()
    weights, grads = mixed_variables(np.random.default_rng(45))
    first, second = [w.copy() for w in weights], [w.copy() for w in weights]
    for step in grads:
        optimizer.apply(step, first)
        again.apply(step, second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("argument, value, expected", [
    ("beta_1", 1.0, "a float in [0, 1)"),
    ("beta_2", -0.1, "a float in [0, 1)"),
    ("epsilon", 0.0, "a positive number"),
    ("learning_rate", -1.0, "a positive number"),
    ("weight_decay", -0.1, "a non-negative float or None"),
])
def test_bad_arguments_are_refused_naming_the_argument(argument, value, expected):
    with pytest.raises(ValueError, match=re.escape(f"Invalid value received for argument `{argument}`. Expected "
                                                   f"{expected}.")):
        optimizers.Lamb(**{argument: value})


def test_a_saved_model_resumes_exactly(tmp_path):
    rng = np.random.default_rng(46)
    x, y = rng.normal(size=(48, 5)), rng.normal(size=(48, 3))
    model = arena_model("float64", seed=46, optimizer=optimizers.Lamb(0.01, weight_decay=0.05))
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.npz")
    resumed = gpudl.load_model(tmp_path / "m.npz")
    assert type(resumed.optimizer) is optimizers.Lamb
    assert resumed.optimizer.get_config() == model.optimizer.get_config()
    for each in (model, resumed):
        each.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(resumed.get_weights() + resumed.optimizer.variables,
                            model.get_weights() + model.optimizer.variables):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed.optimizer.iterations == 6
