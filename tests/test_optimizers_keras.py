"""Optimizers with Keras 3's surface: the new update rules (against PyTorch in float64, a
float64 recomputation of Keras's formulas, and numbers from real Keras), clipping and weight
decay in Keras's order, the float-like learning_rate, iterations, the custom-training-loop
API on a model's weights (one arena step) and on a student's own arrays, and bad input."""

import json
import math
import pickle
import re
from types import SimpleNamespace

import numpy as np
import pytest

import gpudl
from gpudl import optimizers
from test_step_state import INTERPRETED_TRITON
from test_torch_agreement import BATCH, STEPS, gpudl_mlp, torch_mlp

torch = pytest.importorskip("torch")


# --- against PyTorch, through fit's arena step ------------------------------------------

def clip_torch_grads(parameters, clipnorm=None, global_clipnorm=None):
    """Keras's clipping (base_optimizer.py) applied by hand to PyTorch's gradients."""
    grads = [p.grad for p in parameters]
    if clipnorm:
        for grad in grads:
            grad *= clipnorm / max(grad.norm().item(), clipnorm)
    if global_clipnorm:
        norm = math.sqrt(sum((grad**2).sum().item() for grad in grads))
        for grad in grads:
            grad *= global_clipnorm / max(norm, global_clipnorm)


def excluding(optimizer, **exclusion):
    optimizer.exclude_from_weight_decay(**exclusion)
    return optimizer


def vectors_without_decay(parameters):
    """PyTorch parameter groups: the 1-D tensors (biases, batch-norm scale and shift) without decay."""
    parameters = list(parameters)
    return [{"params": [p for p in parameters if p.ndim > 1]},
            {"params": [p for p in parameters if p.ndim == 1], "weight_decay": 0.0}]


# PyTorch puts Adagrad's and Adamax's epsilon elsewhere than Keras (sqrt(acc) + eps; max(b2 u,
# |g| + eps)): at 1e-30 both places give the same numbers, so the rest of the rule is compared.
TORCH_CASES = {
    "adagrad": (lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.2, epsilon=1e-30),
                lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.2, eps=1e-30)),
    "adadelta": (lambda: optimizers.Adadelta(1.0, rho=0.9, epsilon=1e-6),
                 lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6)),
    "adamax": (lambda: optimizers.Adamax(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-30),
               lambda p: torch.optim.Adamax(p, lr=0.02, betas=(0.8, 0.99), eps=1e-30)),
    "adam_amsgrad": (lambda: optimizers.Adam(0.01, amsgrad=True),
                     lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True)),
    "adamw_amsgrad": (lambda: optimizers.AdamW(0.01, weight_decay=0.1, amsgrad=True),
                      lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True)),
    "adam_weight_decay": (lambda: optimizers.Adam(0.01, weight_decay=0.1),
                          lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    "rmsprop_centered": (lambda: optimizers.RMSprop(0.01, centered=True),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8, centered=True)),
    # at a constant rate PyTorch's buffer (without lr) times lr is Keras's (with lr)
    "rmsprop_momentum": (lambda: optimizers.RMSprop(0.01, momentum=0.8),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8, momentum=0.8)),
    "rmsprop_centered_momentum": (
        lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=1e-8, momentum=0.5, centered=True)),
    # the vectors (batch-norm gamma, beta and the bias) are excluded from the decay by name
    "adamw_excluding_vectors": (
        lambda: excluding(optimizers.AdamW(0.01, weight_decay=0.1), var_names=["gamma", "beta", "bias"]),
        lambda p: torch.optim.AdamW(vectors_without_decay(p), lr=0.01, weight_decay=0.1)),
    "sgd_clipnorm": (lambda: optimizers.SGD(0.5, momentum=0.9, clipnorm=0.05),
                     lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9)),
    "adam_global_clipnorm": (lambda: optimizers.Adam(0.01, global_clipnorm=0.05),
                             lambda p: torch.optim.Adam(p, lr=0.01)),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_optimizer_steps_through_the_arena_match_pytorch_float64(name):
    make_gpudl, make_torch = TORCH_CASES[name]
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(STEPS * BATCH, 7)), rng.integers(0, 5, size=STEPS * BATCH)
    model = gpudl_mlp(make_gpudl(), 0.0)
    net, (linear1, norm, linear2) = torch_mlp(model.get_weights())
    optimizer = make_torch(net.parameters())
    clipping = {key: getattr(model.optimizer, key) for key in ("clipnorm", "global_clipnorm")}
    for step in range(STEPS):
        xb, yb = x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH]
        ours = model.train_on_batch(xb, yb)
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(xb)), torch.tensor(yb))
        loss.backward()
        clip_torch_grads([linear1.weight, norm.weight, norm.bias, linear2.weight, linear2.bias], **clipping)
        optimizer.step()
        np.testing.assert_allclose(ours, loss.item(), rtol=1e-6)
    kernel1, gamma, beta, _, _, kernel2, bias2 = model.get_weights()
    expected = [linear1.weight.T, norm.weight, norm.bias, linear2.weight.T, linear2.bias]
    for ours, theirs in zip([kernel1, gamma, beta, kernel2, bias2], expected):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-6, atol=1e-12)


# --- against float64 recomputations of Keras's formulas ----------------------------------

def keras_reference(name, config, w, grads):
    """Keras's update rules (keras/src/optimizers/*.py), float64, one variable, written out
    independently of gpudl: clipping, then weight decay, then the rule (base_optimizer.py)."""
    w, lr = w.copy(), config["learning_rate"]
    state = {"m": np.zeros_like(w), "v": np.zeros_like(w), "u_product": 1.0,
             "acc": np.full_like(w, config.get("initial_accumulator_value", 0.1)), "delta": np.zeros_like(w)}
    b1, b2, eps = config.get("beta_1", 0.9), config.get("beta_2", 0.999), config.get("epsilon", 1e-7)
    for t, g in enumerate(grads, start=1):
        g = g.copy()
        if config.get("clipvalue"):
            g = np.clip(g, -config["clipvalue"], config["clipvalue"])
        if config.get("weight_decay"):
            w = w - w * config["weight_decay"] * lr
        if name == "Adagrad":
            state["acc"] += g**2
            w = w - lr * g / np.sqrt(state["acc"] + eps)
        elif name == "Adamax":
            state["m"] += (g - state["m"]) * (1 - b1)
            state["v"] = np.maximum(b2 * state["v"], np.abs(g))
            w = w - lr * state["m"] / ((1 - b1**t) * (state["v"] + eps))
        elif name == "Nadam":
            u_t, u_next = b1 * (1 - 0.5 * 0.96**t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
            state["u_product"] *= u_t
            state["m"] += (g - state["m"]) * (1 - b1)
            state["v"] += (g**2 - state["v"]) * (1 - b2)
            m_hat = u_next * state["m"] / (1 - state["u_product"] * u_next) + (1 - u_t) * g / (1 - state["u_product"])
            w = w - m_hat * lr / (np.sqrt(state["v"] / (1 - b2**t)) + eps)
        elif name == "Lion":
            b2 = config.get("beta_2", 0.99)
            w = w - lr * np.sign(state["m"] * b1 + g * (1 - b1))
            state["m"] = state["m"] * b2 + g * (1 - b2)
        elif name == "SGD":
            w = w - lr * g
    return w


HAND_CASES = [
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.0, "epsilon": 1e-3}),
    ("Adamax", {"learning_rate": 0.1}),
    ("Adamax", {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 0.01, "weight_decay": 0.3}),
    ("Nadam", {"learning_rate": 0.1}),
    ("Nadam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3}),
    ("Lion", {"learning_rate": 0.1}),
    ("Lion", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.5}),
    ("SGD", {"learning_rate": 0.1, "clipvalue": 0.3}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.2}),
]


@pytest.mark.parametrize("name, config", HAND_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(HAND_CASES)])
def test_update_rules_equal_a_float64_recomputation_of_keras_formulas(name, config):
    rng = np.random.default_rng(len(name) + len(config))
    w0, grads = rng.normal(size=(3, 5)), rng.normal(size=(12, 3, 5))
    grads[3, 0, 0] = 0.0  # a zero gradient: sign(0), max with |0|
    w = w0.copy()
    optimizer = getattr(optimizers, name)(**config)
    for g in grads:
        optimizer.apply([g], [w])
    np.testing.assert_allclose(w, keras_reference(name, config, w0, grads), rtol=1e-13, atol=1e-15)


# Real Keras: /work/kerasvenv (Keras 3.15.1, JAX backend, jax_enable_x64, floatx float64), the script
#   w0 = [0.5, -1.5, 2.0, 0.0]; G = [[0.3, -0.2, 1.5, 0.0], [-0.1, 0.4, 0.7, 2.0], [0.25, -0.6, -0.3, 0.5]]
#   v = keras.Variable(w0); for g in G: opt.apply_gradients([(g, v)]); print(v.numpy())
W0 = np.array([0.5, -1.5, 2.0, 0.0])
G = np.array([[0.3, -0.2, 1.5, 0.0], [-0.1, 0.4, 0.7, 2.0], [0.25, -0.6, -0.3, 0.5]])
KERAS_RESULTS = {
    "Adagrad(learning_rate=0.1)": [0.40474097778227996, -1.445722543877474, 1.8781396206544163, -0.12274612325912629],
    "Adadelta(learning_rate=1.0)": [0.4979057241489743, -1.4982192954428821, 1.9981241997251458,
                                    -0.0019111170190145338],
    "Adamax(learning_rate=0.1)": [0.320476860471482, -1.4042241680722556, 1.7899146786194786, -0.09510947644626863],
    "Nadam(learning_rate=0.1)": [0.3492775758870306, -1.3987155386521992, 1.85257984466599, -0.13641717106743773],
    "Lion(learning_rate=0.1)": [0.4, -1.4, 1.9, -0.2],
    "Lion(learning_rate=0.1, weight_decay=0.5)": [0.33343750000000005, -1.1908125, 1.6294999999999997, -0.195],
    "SGD(learning_rate=0.1, clipnorm=1.0)": [0.4601862988395558, -1.4455655677134398, 1.90034256764433,
                                             -0.1426482109224159],
    "SGD(learning_rate=0.1, global_clipnorm=1.0)": [0.4601862988395558, -1.4455655677134398, 1.90034256764433,
                                                    -0.1426482109224159],
    "SGD(learning_rate=0.1, clipvalue=0.35)": [0.45499999999999996, -1.48, 1.9600000000000002, -0.06999999999999999],
    "SGD(learning_rate=0.1, weight_decay=0.2)": [0.42658399999999996, -1.37178, 1.699724, -0.246],
}


@pytest.mark.parametrize("call", sorted(KERAS_RESULTS))
def test_three_steps_equal_real_keras_float64(call):
    optimizer = eval(call, {**vars(optimizers)})  # the same call Keras ran
    w = W0.copy()
    for g in G:
        optimizer.apply_gradients([(g, w)])
    np.testing.assert_allclose(w, KERAS_RESULTS[call], rtol=1e-12, atol=1e-15)


def test_clipnorm_clips_each_variable_and_global_clipnorm_all_together():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=7) * 0.1
    ga, gb = rng.normal(size=(4, 3)) * 2.0, rng.normal(size=7) * 0.01  # norms ~7 and ~0.03
    clip = 0.5
    for kind in ("clipnorm", "global_clipnorm"):
        wa, wb = a.copy(), b.copy()
        optimizers.SGD(1.0, **{kind: clip}).apply([ga, gb], [wa, wb])
        if kind == "clipnorm":
            scales = [clip / max(np.linalg.norm(ga), clip), clip / max(np.linalg.norm(gb), clip)]
            assert scales[1] == 1.0  # the small gradient is left alone
        else:
            total = math.sqrt(np.sum(ga**2) + np.sum(gb**2))
            scales = [clip / total] * 2
        np.testing.assert_allclose(wa, a - scales[0] * ga, rtol=1e-14)
        np.testing.assert_allclose(wb, b - scales[1] * gb, rtol=1e-14)


def test_clipping_leaves_the_callers_gradients_unchanged():
    w, g = np.ones(4), np.array([3.0, -4.0, 0.0, 0.0])
    optimizers.SGD(0.1, clipvalue=1.0).apply([g], [w])
    np.testing.assert_array_equal(g, [3.0, -4.0, 0.0, 0.0])
    np.testing.assert_allclose(w, [0.9, 1.1, 1.0, 1.0])


def test_global_clipnorm_is_one_reduction_over_the_arena(monkeypatch):
    model = gpudl_mlp(optimizers.SGD(0.1, global_clipnorm=1.0), 0.0)
    rng = np.random.default_rng(2)
    model.train_on_batch(rng.normal(size=(8, 7)), rng.integers(0, 5, size=8))
    calls = []
    vdot = np.vdot
    monkeypatch.setattr(np, "vdot", lambda a, b: (calls.append(a.size), vdot(a, b))[1])
    model.train_on_batch(rng.normal(size=(8, 7)), rng.integers(0, 5, size=8))
    assert calls == [model.arena.size]


# --- the course's formulas on a student's own parameter dictionary ------------------------

def test_adam_on_a_parameter_dict_equals_the_course_formulas_and_moments_are_readable():
    rng = np.random.default_rng(0)
    parameters = {"W1": rng.normal(size=(3, 4)), "b1": np.zeros((3, 1)), "W2": rng.normal(size=(1, 3))}
    grads = [{key: rng.normal(size=value.shape) for key, value in parameters.items()} for _ in range(3)]
    lr, beta1, beta2, epsilon, t0 = 0.01, 0.9, 0.999, 1e-8, 2
    expected = {key: value.copy() for key, value in parameters.items()}
    v = {key: np.zeros_like(value) for key, value in parameters.items()}
    s = {key: np.zeros_like(value) for key, value in parameters.items()}
    optimizer = optimizers.Adam(lr, beta_1=beta1, beta_2=beta2, epsilon=epsilon)
    optimizer.iterations = t0  # the course's t counts on from here
    for step, dW in enumerate(grads):
        t = t0 + step + 1
        for key in parameters:  # the course's update_parameters_with_adam
            v[key] = beta1 * v[key] + (1 - beta1) * dW[key]
            s[key] = beta2 * s[key] + (1 - beta2) * dW[key] ** 2
            v_corrected, s_corrected = v[key] / (1 - beta1**t), s[key] / (1 - beta2**t)
            expected[key] = expected[key] - lr * v_corrected / (np.sqrt(s_corrected) + epsilon)
        optimizer.apply_gradients(zip([dW[key] for key in parameters], parameters.values()))
    assert optimizer.iterations == t0 + 3
    for key in parameters:
        np.testing.assert_allclose(parameters[key], expected[key], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(optimizer.get_slot(parameters[key], "m"), v[key], rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(optimizer.get_slot(parameters[key], "v"), s[key], rtol=1e-13, atol=1e-18)
    state = optimizer.variables
    assert int(state[0]) == t0 + 3 and state[0].shape == () and len(state) == 1 + 2 * len(parameters)
    np.testing.assert_array_equal(state[1], optimizer.get_slot(parameters["W1"], "m"))


@pytest.mark.parametrize("kind", ["momentum", "rmsprop"])
def test_one_momentum_or_rmsprop_step_on_a_parameter_dict_equals_the_course_formulas(kind):
    rng = np.random.default_rng(4)
    W, dW, lr, beta = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), 0.1, 0.8
    velocity = rng.normal(size=(2, 3)) ** 2  # a moment carried over from earlier steps
    if kind == "momentum":
        optimizer, slot = optimizers.Momentum(lr, beta=beta), "velocity"
        v = beta * velocity + (1 - beta) * dW
        expected = W - lr * v
    else:
        optimizer, slot = optimizers.RMSprop(lr, rho=beta, epsilon=1e-8), "mean_square"
        v = beta * velocity + (1 - beta) * dW**2
        expected = W - lr * dW / (np.sqrt(v) + 1e-8)
    optimizer.build([W])
    optimizer.get_slot(W, slot)[...] = velocity  # a view: writing it sets the state
    optimizer.apply([dW], [W])
    np.testing.assert_allclose(W, expected, rtol=1e-14)
    np.testing.assert_allclose(optimizer.get_slot(W, slot), v, rtol=1e-14)


def test_non_contiguous_arrays_are_updated_in_place():
    base = np.arange(12.0).reshape(3, 4)
    column_major = base.T  # a view that is not C-contiguous
    optimizers.SGD(0.5).apply([np.ones((4, 3))], [column_major])
    np.testing.assert_array_equal(base, np.arange(12.0).reshape(3, 4) - 0.5)


# --- a model's weights: one arena step ----------------------------------------------------

def test_apply_on_a_models_weights_is_one_launch_and_equals_the_same_step_on_plain_arrays(monkeypatch):
    model = gpudl_mlp(optimizers.Adam(0.01), 0.0)
    model.build((7,))
    parameters = [p for p in model.arena.parameters]
    rng = np.random.default_rng(6)
    grads = [rng.normal(size=p.shape) for p in parameters]
    copies = [np.array(p.value) for p in parameters]
    twin = optimizers.Adam(0.01)
    launches, adam = [], gpudl.get_backend().ops.adam
    recording = SimpleNamespace(adam=lambda *args: (launches.append(args[0].size), adam(*args)))
    monkeypatch.setattr(optimizers.Adam, "ops", property(lambda self: recording))
    for _ in range(2):
        model.optimizer.apply(grads, parameters)
        twin.apply(grads, copies)
    assert launches == ([model.arena.size] + [c.size for c in copies]) * 2  # arena: one launch a step
    for parameter, copy, grad in zip(parameters, copies, grads):
        np.testing.assert_array_equal(parameter.value, copy)
        np.testing.assert_array_equal(model.optimizer.get_slot(parameter, "v"), twin.get_slot(copy, "v"))
        np.testing.assert_array_equal(parameter.grad, grad)  # copied into the model's gradient buffer
    # Keras's order: the counter, then each variable's slots (m, v)
    state = model.optimizer.variables
    assert [tuple(s.shape) for s in state[1:]] == [p.shape for p in parameters for _ in ("m", "v")]
    np.testing.assert_array_equal(state[4], model.optimizer.get_slot(parameters[1], "v"))


def test_apply_on_some_of_a_models_weights_leaves_the_others_and_applies_constraints():
    model = gpudl_mlp(optimizers.SGD(0.1), 0.0)
    model.build((7,))
    kernel, gamma = model.arena.parameters[0], model.arena.parameters[1]
    before = [np.array(p.value) for p in model.arena.parameters]
    kernel.constraint = lambda w: np.clip(w, -0.05, 0.05)
    optimizer = optimizers.SGD(0.1)  # a fresh optimizer, not the compiled one
    optimizer.apply([np.ones(gamma.shape)], [gamma])
    np.testing.assert_allclose(gamma.value, before[1] - 0.1)
    for parameter, value in zip(model.arena.parameters[2:], before[2:]):
        np.testing.assert_array_equal(parameter.value, value)
    np.testing.assert_array_equal(kernel.value, before[0])  # not passed: not updated, not constrained
    optimizer.apply([np.zeros(kernel.shape)], [kernel])
    np.testing.assert_array_equal(kernel.value, np.clip(before[0], -0.05, 0.05))


# --- learning_rate and iterations ----------------------------------------------------------

def test_learning_rate_reads_as_a_float_even_with_a_schedule_and_is_settable():
    schedule = gpudl.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    optimizer = optimizers.SGD(schedule)
    w = np.zeros(2)
    for _ in range(3):
        optimizer.apply([np.ones(2)], [w])
    np.testing.assert_allclose(w, -(0.1 + 0.05 + 0.025))
    rate = optimizer.learning_rate
    assert rate == 0.0125 and float(rate) == 0.0125 and str(rate) == "0.0125" and rate < 0.1
    assert rate.numpy() == np.float64(0.0125)
    optimizer.learning_rate = 0.5
    assert optimizer.learning_rate == 0.5
    optimizer.learning_rate.assign(0.25)
    optimizer.apply([np.ones(2)], [w])
    np.testing.assert_allclose(w, -(0.175 + 0.25))
    assert optimizer.get_config()["learning_rate"] == 0.25


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "fast", None])
def test_a_bad_learning_rate_is_refused_and_changes_nothing(bad):
    optimizer = optimizers.Adam(0.01)
    with pytest.raises(ValueError, match=r"Adam: Invalid value received for argument `learning_rate`. Expected a "
                                         r"positive number. Received: learning_rate="):
        optimizer.learning_rate = bad
    with pytest.raises(ValueError, match="`learning_rate`"):
        optimizer.learning_rate.assign(bad)
    assert optimizer.learning_rate == 0.01


def test_iterations_is_settable_and_checked():
    optimizer = optimizers.Adamax(0.1)
    optimizer.iterations = np.int64(7)
    assert optimizer.iterations == 7 and optimizer.iterations.numpy() == np.int64(7)
    optimizer.iterations.assign(3)  # Keras's spelling
    w = np.zeros(2)
    optimizer.apply([np.ones(2)], [w])
    np.testing.assert_allclose(w, -0.1 * (1 - 0.9) / ((1 - 0.9**4) * (1 + 1e-7)), rtol=1e-15)  # Adamax at t = 4
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="argument `iterations`. Expected a non-negative integer"):
            optimizer.iterations = bad
    assert optimizer.iterations == 4
    assert pickle.loads(pickle.dumps([optimizer.iterations, optimizer.learning_rate])) == [4, 0.1]


# --- configuration, names and bad input ------------------------------------------------------

ALL_OPTIMIZERS = [
    optimizers.SGD(0.05, momentum=0.5, nesterov=True, clipnorm=1.0),
    optimizers.Momentum(0.05, beta=0.8, weight_decay=0.01),
    optimizers.RMSprop(gpudl.schedules.CosineDecay(0.01, 100, warmup_target=0.1, warmup_steps=5), momentum=0.9,
                       centered=True, name="rms"),
    optimizers.Adam(0.002, amsgrad=True, global_clipnorm=2.0),
    optimizers.AdamW(weight_decay=0.1),
    optimizers.Adagrad(0.1, initial_accumulator_value=0.5, clipvalue=0.5),
    optimizers.Adadelta(1.0, rho=0.9),
    optimizers.Adamax(beta_2=0.99),
    optimizers.Nadam(epsilon=1e-6),
    optimizers.Lion(beta_1=1.0),
    optimizers.Lamb(0.01, beta_1=0.8, weight_decay=0.01, clipnorm=0.5),
]


@pytest.mark.parametrize("optimizer", ALL_OPTIMIZERS, ids=lambda o: type(o).__name__)
def test_config_round_trips_through_json_and_takes_the_same_steps(optimizer):
    config = json.loads(json.dumps(optimizers.serialize(optimizer)))
    assert set(config) == {"module", "class_name", "config", "registered_name"}
    again = optimizers.deserialize(config)
    assert type(again) is type(optimizer) and again.get_config() == optimizer.get_config()
    rng = np.random.default_rng(8)
    grads = rng.normal(size=(4, 6))
    w1, w2 = np.ones(6), np.ones(6)
    first, second = type(optimizer).from_config(optimizer.get_config()), again
    for g in grads:
        first.apply([g], [w1])
        second.apply([g], [w2])
    np.testing.assert_array_equal(w1, w2)


def test_defaults_and_names_are_keras_except_the_course_epsilon():
    # Keras 3.15.1 defaults; Adam/AdamW/RMSprop's epsilon is the course's 1e-8 (Keras: 1e-7)
    expected = {
        "Adagrad": {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
        "Adadelta": {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7},
        "Adamax": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
        "Nadam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
        "Lion": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.99},
        "Lamb": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
        "Adam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "amsgrad": False},
        "RMSprop": {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-8, "centered": False},
        "AdamW": {"learning_rate": 0.001, "weight_decay": 0.004, "epsilon": 1e-8},
        "SGD": {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    }
    # Keras 3.15.1: [O.RMSprop().name, O.AdamW().name, ...] (its snake case of the class name)
    keras_names = {"RMSprop": "rm_sprop", "AdamW": "adam_w", "SGD": "sgd", "Adagrad": "adagrad", "Lion": "lion"}
    for name, values in expected.items():
        config = optimizers.get(name.lower()).get_config()
        assert {key: config[key] for key in values} == values
        assert re.fullmatch(keras_names.get(name, name.lower()) + r"(_\d+)?", config["name"])
        assert config["clipnorm"] is config["global_clipnorm"] is config["clipvalue"] is None
    assert gpudl.optimizers.schedules is gpudl.schedules


@pytest.mark.parametrize("make, argument", [
    (lambda: optimizers.Adam(beta_1=1.0), "beta_1"),
    (lambda: optimizers.Nadam(beta_2=-0.1), "beta_2"),
    (lambda: optimizers.Adamax(epsilon=0.0), "epsilon"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: optimizers.Adadelta(rho=1.5), "rho"),
    (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
    (lambda: optimizers.Lamb(beta_2=1.0), "beta_2"),
    (lambda: optimizers.RMSprop(momentum=1.0), "momentum"),
    (lambda: optimizers.SGD(weight_decay=-0.1), "weight_decay"),
    (lambda: optimizers.Adam(clipnorm=0.0), "clipnorm"),
    (lambda: optimizers.Lion(0.0), "learning_rate"),
    (lambda: optimizers.Adam(use_ema=True), "use_ema"),
    (lambda: optimizers.SGD(gradient_accumulation_steps=4), "gradient_accumulation_steps"),
    (lambda: optimizers.Adam(loss_scale_factor=128.0), "loss_scale_factor"),
    (lambda: optimizers.AdamW(weight_decay=None), "weight_decay"),
])
def test_bad_arguments_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`. Expected .* Received: {argument}="):
        make()


def test_unknown_arguments_names_and_two_clipping_arguments_are_refused():
    with pytest.raises(ValueError, match=r"Argument\(s\) not recognized: \{'lr': 0.1\}"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="Unknown optimizer: 'adamm'. Known optimizers: adadelta, adagrad, adam, "
                                         "adamax, adamw, ftrl, lamb, lion, momentum, nadam, rmsprop, sgd"):
        optimizers.get("adamm")


def test_bad_gradients_and_variables_are_refused_before_any_state_changes():
    optimizer = optimizers.Adam(0.1)
    w, v = np.ones(3), np.ones(2)
    with pytest.raises(ValueError, match="gradient 1 has shape \\(3,\\); its variable has shape \\(2,\\)"):
        optimizer.apply([np.ones(3), np.ones(3)], [w, v])
    with pytest.raises(ValueError, match="received 1 gradients for 2 variables"):
        optimizer.apply([np.ones(3)], [w, v])
    with pytest.raises(TypeError, match="variable 0 must be a floating-point numpy.ndarray"):
        optimizer.apply([np.ones(3)], [[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match="variable 0 must be a floating-point"):
        optimizer.apply([np.ones(3)], [np.ones(3, dtype=int)])
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        optimizer.apply([None], [w])
    with pytest.raises(ValueError, match="must already be built"):
        optimizer.apply([np.ones(3)])
    assert optimizer.iterations == 0 and optimizer.variables == [optimizer.step_counter]
    np.testing.assert_array_equal(w, 1.0)
    with pytest.raises(ValueError, match="get_slot: Invalid value received for argument `name`"):
        optimizer.get_slot(w, "velocity")


# --- every backend, float32 --------------------------------------------------------------

@pytest.mark.parametrize("backend_name", ["numpy", pytest.param("triton", marks=INTERPRETED_TRITON)])
@pytest.mark.parametrize("make", [lambda: optimizers.Adam(0.01, weight_decay=0.1, clipnorm=0.5),
                                  lambda: optimizers.Nadam(0.01, global_clipnorm=0.5),
                                  lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
                                  lambda: optimizers.Lion(0.01, weight_decay=0.2),
                                  lambda: optimizers.Lamb(0.01, weight_decay=0.2)],
                         ids=["adam", "nadam", "rms", "lion", "lamb"])
def test_float32_steps_on_plain_arrays_follow_the_float64_ones_on_every_backend(make, backend_name):
    rng = np.random.default_rng(9)
    w0, grads = rng.normal(size=(5, 3)), rng.normal(size=(6, 5, 3))
    gpudl.set_backend(backend_name)
    try:
        w32, optimizer = gpudl.get_backend().asarray(w0, dtype=np.float32), make()
        for g in grads:
            optimizer.apply([g.astype(np.float32)], [w32])
        assert w32.dtype == np.float32 and optimizer.get_slot(w32, optimizer.slot_names[0]).dtype == np.float32
    finally:
        gpudl.set_backend("numpy")
    w64, optimizer = w0.copy(), make()
    for g in grads:
        optimizer.apply([g], [w64])
    np.testing.assert_allclose(gpudl.get_backend().to_numpy(w32), w64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: optimizers.RMSprop(gpudl.schedules.PolynomialDecay(0.05, 20), momentum=0.5, centered=True, clipnorm=1.0),
    lambda: optimizers.Adagrad(0.05, initial_accumulator_value=0.3, weight_decay=0.01),
    lambda: optimizers.Nadam(0.01, global_clipnorm=0.5),
    lambda: optimizers.Lamb(0.01, clipnorm=0.5)], ids=["rmsprop", "adagrad", "nadam", "lamb"])
def test_a_saved_model_resumes_with_the_new_optimizers_exactly(make, tmp_path):
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(48, 7)), rng.integers(0, 5, size=48)
    model = gpudl_mlp(make(), 0.0)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.npz")
    resumed = gpudl.load_model(tmp_path / "m.npz")
    assert resumed.optimizer.get_config() == model.optimizer.get_config()
    for each in (model, resumed):
        each.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed.optimizer.iterations == 6


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(0.01), lambda: optimizers.Nadam(0.01, clipnorm=0.5),
                                  lambda: optimizers.Lamb(0.01, weight_decay=0.1)], ids=["adam", "nadam", "lamb"])
def test_a_training_loop_from_scratch_reaches_the_weights_of_fit(make):
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(48, 7)), rng.integers(0, 5, size=48)
    fitted, looped = gpudl_mlp(make(), 0.0), gpudl_mlp(make(), 0.0)
    looped.set_weights(fitted.get_weights())
    fitted.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    optimizer = looped.optimizer
    for epoch in range(2):
        for start in range(0, 48, 16):
            _, grads = looped.compute_gradients(x[start:start + 16], y[start:start + 16])
            optimizer.apply_gradients(zip(grads, looped.trainable_weights))
    for ours, theirs in zip(looped.get_weights(), fitted.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert optimizer.iterations == fitted.optimizer.iterations == 6


def test_a_keras_style_callable_without_arguments_gives_the_rate():
    rates = iter([0.5, 0.25])
    optimizer = optimizers.SGD(lambda: 0.1)  # Keras: "a callable that takes no arguments"
    w = np.zeros(1)
    optimizer.apply([np.ones(1)], [w])
    assert optimizer.learning_rate == 0.1 and w[0] == pytest.approx(-0.1, rel=1e-15)
    optimizer.learning_rate = lambda step: 0.2 * (step + 1)  # gpudl's: the 0-based step
    optimizer.apply([np.ones(1)], [w])
    assert w[0] == pytest.approx(-0.1 - 0.4, rel=1e-15)
    optimizer.learning_rate = lambda: next(rates)
    assert optimizer.learning_rate == 0.5


def test_exclude_from_weight_decay_by_identity_on_plain_arrays():
    rng = np.random.default_rng(12)
    kept, excluded, grads = rng.normal(size=3), rng.normal(size=3), rng.normal(size=(2, 3))
    optimizer = optimizers.SGD(0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[excluded])
    expected_kept, expected_excluded = kept.copy(), excluded.copy()
    for g in grads:
        optimizer.apply([g, g], [kept, excluded])
        expected_kept = expected_kept * (1 - 0.1 * 0.5) - 0.1 * g
        expected_excluded = expected_excluded - 0.1 * g
    np.testing.assert_allclose(kept, expected_kept, rtol=1e-14)
    np.testing.assert_allclose(excluded, expected_excluded, rtol=1e-14)
    with pytest.raises(ValueError, match="argument `var_names`. Expected a list of strings"):
        optimizer.exclude_from_weight_decay(var_names=[3])
