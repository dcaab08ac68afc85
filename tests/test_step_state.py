"""The step state in device memory (issue 6): the optimizer's step counter and step table
and the dropout layers' seed counters are what the kernels read, so a captured CUDA
graph can replay a training step with no host work. Checked on the numpy backend and on
the Triton kernels in the interpreter, bit for bit against the host-scalar formulas
that every step computed before."""

import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

import gpudl
from gpudl import backend as backend_module
from gpudl.kernels import dropout as dropout_kernels
from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

INTERPRETED_TRITON = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1" or not backend_module.triton_available(),
    reason="bit-identity with NumPy holds in the Triton interpreter (compiled Triton may contract to FMA)")


@pytest.fixture(params=["numpy", pytest.param("triton", marks=INTERPRETED_TRITON)])
def backend_name(request):
    gpudl.set_backend(request.param)
    yield request.param
    gpudl.set_backend("numpy")


# --- the optimizer: step counter and step table ---------------------------------------

SCHEDULE = gpudl.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.8)
OPTIMIZERS = {
    "sgd": lambda: gpudl.optimizers.SGD(SCHEDULE),
    "sgd_momentum": lambda: gpudl.optimizers.SGD(SCHEDULE, momentum=0.9),
    "sgd_nesterov": lambda: gpudl.optimizers.SGD(SCHEDULE, momentum=0.9, nesterov=True),
    "momentum": lambda: gpudl.optimizers.Momentum(SCHEDULE, beta=0.8),
    "rmsprop": lambda: gpudl.optimizers.RMSprop(SCHEDULE, rho=0.9, epsilon=1e-7),
    "adam": lambda: gpudl.optimizers.Adam(SCHEDULE),
    "adamw": lambda: gpudl.optimizers.AdamW(SCHEDULE, weight_decay=0.1),
}


def host_scalar_step(optimizer, param, grad, slots, lr, t):
    """One step of the formulas as they ran before the step state moved to the device:
    the learning rate and Adam's bias corrections computed on the host for this step
    (t counts from 1) and applied as Python floats."""
    if isinstance(optimizer, gpudl.optimizers.Adam):
        m, v = slots["m"], slots["v"]
        if optimizer.weight_decay:
            param *= 1.0 - lr * optimizer.weight_decay
        m *= optimizer.beta_1
        m += grad * (1.0 - optimizer.beta_1)
        v *= optimizer.beta_2
        v += np.square(grad) * (1.0 - optimizer.beta_2)
        step_size = lr / (1.0 - optimizer.beta_1**t)
        denom = np.sqrt(v) / math.sqrt(1.0 - optimizer.beta_2**t) + optimizer.epsilon
        param -= (m / denom) * step_size
    elif isinstance(optimizer, gpudl.optimizers.RMSprop):
        s = slots["mean_square"]
        s *= optimizer.rho
        s += (1.0 - optimizer.rho) * np.square(grad)
        param -= lr * grad / (np.sqrt(s) + optimizer.epsilon)
    elif isinstance(optimizer, gpudl.optimizers.Momentum):
        v = slots["velocity"]
        v *= optimizer.beta
        v += (1.0 - optimizer.beta) * grad
        param -= lr * v
    elif optimizer.momentum:
        v = slots["velocity"]
        v *= optimizer.momentum
        v += grad
        param -= lr * (grad + optimizer.momentum * v if optimizer.nesterov else v)
    else:
        param -= lr * grad


def flat_arena(n, rng):
    """What an optimizer needs of a ParameterArena: params, grads and twins for its slots."""
    params = gpudl.backend.get_backend().asarray(rng.standard_normal(n).astype(np.float32))
    return SimpleNamespace(params=params, grads=np.zeros_like(params), new_twin=lambda: np.zeros_like(params))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_steps_from_the_device_table_are_bit_identical_to_host_scalar_formulas(name, backend_name):
    rng = np.random.default_rng(len(name))
    optimizer, arena = OPTIMIZERS[name](), flat_arena(1100, rng)
    optimizer.build(arena)
    param = arena.params.copy()
    slots = {key: np.zeros_like(param) for key in optimizer.slot_names}
    for step in range(70):  # over two uploads of 64 steps
        arena.grads[...] = rng.standard_normal(arena.grads.size).astype(np.float32)
        optimizer.apply_to_arena(arena, [(0, 300), (300, 1100)])  # two runs, one step
        host_scalar_step(optimizer, param, arena.grads, slots, SCHEDULE(step), step + 1)
        np.testing.assert_array_equal(arena.params, param)
        for key in optimizer.slot_names:
            np.testing.assert_array_equal(optimizer.slots[key], slots[key])
    assert optimizer.iterations == 70


def test_replaying_the_recorded_launches_advances_through_the_table_like_eager_steps(monkeypatch):
    """What a CUDA graph does: the same launches with the same arguments, the counter
    advanced on the device between them, and no host code of the optimizer in between."""
    rng = np.random.default_rng(4)
    eager, replayed = OPTIMIZERS["adamw"](), OPTIMIZERS["adamw"]()
    eager_arena, replayed_arena = flat_arena(300, rng), flat_arena(300, rng)
    replayed_arena.params[...] = eager_arena.params
    for optimizer, arena in ((eager, eager_arena), (replayed, replayed_arena)):
        optimizer.build(arena)
        assert optimizer.prepare_steps(20) == 20
    gradients = [rng.standard_normal(300).astype(np.float32) for _ in range(20)]
    for gradient in gradients:
        eager_arena.grads[...] = gradient
        eager.apply_to_arena(eager_arena, [(0, 300)])
    ops = gpudl.backend.get_backend().ops
    launches = []
    recording = SimpleNamespace(adam=lambda *args: (launches.append(args), ops.adam(*args)))
    monkeypatch.setattr(type(replayed), "ops", property(lambda self: recording))
    replayed_arena.grads[...] = gradients[0]
    replayed.apply_to_arena(replayed_arena, [(0, 300)])  # records the launch
    for gradient in gradients[1:]:
        replayed_arena.grads[...] = gradient
        ops.adam(*launches[0])
        replayed.step_counter += 1
    assert len(launches) == 1
    np.testing.assert_array_equal(replayed_arena.params, eager_arena.params)
    np.testing.assert_array_equal(replayed.slots["v"], eager.slots["v"])
    assert replayed.iterations == eager.iterations == 20


def model_with_everything(seed=3):
    gpudl.utils.set_random_seed(seed)
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(8, use_bias=False), BatchNormalization(), ReLU(),
                              Dropout(0.3), Dense(3, activation="softmax")])
    model.compile(gpudl.optimizers.Adam(gpudl.schedules.ExponentialDecay(0.01, 5, 0.9)),
                  "sparse_categorical_crossentropy")
    return model


RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 6)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)


def count_uploads(monkeypatch):
    """Counts host-to-device conversions through the backend (Backend.asarray)."""
    calls = []
    asarray = backend_module.Backend.asarray
    monkeypatch.setattr(backend_module.Backend, "asarray",
                        lambda self, *args, **kwargs: (calls.append(1), asarray(self, *args, **kwargs))[1])
    return calls


def test_fit_uploads_the_step_table_once_per_epoch_and_nothing_per_step(monkeypatch, backend_name):
    model = model_with_everything()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)  # allocates the step table
    optimizer, layer = model.optimizer, model.layers[3]
    step_counter, step_table, seed_counter = optimizer.step_counter, optimizer.step_table, layer.seed_counter
    uploads = count_uploads(monkeypatch)
    model.fit(X, Y, batch_size=8, epochs=3, initial_epoch=1, verbose=0)
    assert len(uploads) == 2 + 2  # x and y once, then one step table per epoch of 8 steps
    assert optimizer.iterations == layer.calls == 3 * 8
    # the same device buffers all along: a captured graph's pointers stay valid
    assert optimizer.step_counter is step_counter and optimizer.step_table is step_table
    assert layer.seed_counter is seed_counter


def test_train_on_batch_uploads_the_step_table_once_per_steps_per_upload(monkeypatch, backend_name):
    model = model_with_everything()
    model.optimizer.steps_per_upload = 4
    uploads = count_uploads(monkeypatch)
    for step in range(10):
        model.train_on_batch(X[step * 6:][:6], Y[step * 6:][:6])
    assert len(uploads) - 2 * 10 == 3  # x and y each call; tables at steps 0, 4 and 8
    assert model.optimizer.iterations == 10


# --- dropout: the seed counter -----------------------------------------------------------


def test_dropout_masks_over_many_steps_are_those_of_the_host_derived_seeds(backend_name):
    model = model_with_everything(seed=11)
    layer = model.layers[3]
    rng = np.random.default_rng(2)
    for call in range(40):
        x, dy = (rng.standard_normal((7, 8)).astype(np.float32) for _ in range(2))
        step_seed = dropout_kernels.derived_key(model.seed, (3, call))  # checked against Philox in test_kernel_references
        np.testing.assert_array_equal(layer.forward(x, training=True), dropout_kernels.dropout(x, 0.3, step_seed))
        np.testing.assert_array_equal(layer.backward(dy), dropout_kernels.dropout(dy, 0.3, step_seed))
        assert layer.calls == call + 1
    np.testing.assert_array_equal(layer.forward(x), x)  # inference: no mask, no call
    assert layer.calls == 40 and layer.index == 3


# --- saving and resuming mid-epoch --------------------------------------------------------


class SaveAt(gpudl.callbacks.Callback):
    def __init__(self, epoch, batch, path):
        self.epoch, self.batch, self.path, self.current = epoch, batch, path, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            self.model.save(self.path)


def test_saving_mid_epoch_and_resuming_is_bit_identical(tmp_path, backend_name):
    path = tmp_path / "mid_epoch.gpudl.npz"
    whole = model_with_everything()
    whole.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[SaveAt(1, 2, path)])
    resumed = gpudl.load_model(path)
    assert resumed.optimizer.iterations == 8 + 3 and resumed.layers[3].calls == 8 + 3
    order = resumed.epoch_order(len(X), 1)
    for batch in range(3, 8):  # the rest of epoch 1, as fit would have run it
        index = order[batch * 8:(batch + 1) * 8]
        resumed.train_on_batch(X[index], Y[index])
    resumed.fit(X, Y, batch_size=8, epochs=3, initial_epoch=2, verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    for name in whole.optimizer.slot_names:
        np.testing.assert_array_equal(whole.optimizer.slots[name], resumed.optimizer.slots[name])
    assert resumed.optimizer.iterations == whole.optimizer.iterations == 24
    assert resumed.layers[3].calls == whole.layers[3].calls == 24


# --- a bad rate from a schedule ------------------------------------------------------------


def test_prepare_steps_stops_the_table_before_a_bad_rate_and_raises_when_it_is_next():
    optimizer = gpudl.optimizers.SGD(lambda step: 0.1 if step < 5 else -1.0)
    assert optimizer.prepare_steps(8) == 5
    optimizer.iterations = 5
    with pytest.raises(ValueError, match="gave -1.0 at step 5; expected a non-negative number"):
        optimizer.prepare_steps(8)
    assert optimizer.iterations == 5


def test_schedule_giving_nan_mid_epoch_raises_before_that_step_changes_the_optimizer_state():
    model = model_with_everything()
    model.optimizer.learning_rate = lambda step: 0.01 if step < 3 else float("nan")
    snapshot = {}

    class Snapshot(gpudl.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            snapshot.update(params=model.arena.params.copy(),
                            **{name: model.optimizer.slots[name].copy() for name in model.optimizer.slot_names})

    with pytest.raises(ValueError, match="gave nan at step 3; expected a non-negative number"):
        model.fit(X, Y, batch_size=8, verbose=0, callbacks=[Snapshot()])
    assert model.optimizer.iterations == 3
    np.testing.assert_array_equal(model.arena.params, snapshot["params"])
    for name in model.optimizer.slot_names:
        np.testing.assert_array_equal(model.optimizer.slots[name], snapshot[name])


def test_schedule_giving_a_negative_first_rate_raises_before_any_step():
    model = model_with_everything()
    before = model.get_weights()
    model.optimizer.learning_rate = lambda step: -0.01
    with pytest.raises(ValueError, match="gave -0.01 at step 0"):
        model.fit(X, Y, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 0 and model.layers[3].calls == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
