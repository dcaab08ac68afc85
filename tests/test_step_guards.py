"""A KeyboardInterrupt never tears a training step, and one model used from several threads
gives the results it gives alone (frontend/models/guards.py).

Interrupts are injected by a line tracer that raises SIGINT at the k-th line executed in a
train_on_batch, for k at every line of the optimizer update and spread over the whole step;
after each, the model's weights, moving statistics, optimizer slots and step counter must
be those before the step or after the whole step. Without the guard, some land inside the
update and leave a mix (the check can fail)."""

import gc
import os
import signal
import sys
import threading

import numpy as np
import pytest

import gpudl
import gpudl.frontend
import gpudl.kernels
from gpudl.frontend.models.trainer import Trainer

FEATURES = 6


@pytest.fixture(autouse=True)
def default_sigint_handler():
    """Python's own SIGINT handler (KeyboardInterrupt) around each test: a process started in the
    background by a shell inherits SIGINT ignored, which the guard leaves alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def make_model(initial=[]):
    """A compiled model with the same initial weights every time."""
    model = gpudl.Sequential([gpudl.Input((FEATURES,)), gpudl.layers.Dense(8), gpudl.layers.BatchNormalization(),
                              gpudl.layers.ReLU(), gpudl.layers.Dense(3, activation="softmax")], seed=3)
    model.compile(gpudl.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.build((None, FEATURES))
    if not initial:
        initial.extend(model.get_weights())
    model.set_weights(initial)
    return model


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, FEATURES)).astype(np.float32), rng.integers(0, 3, n)


def state(model):
    """Weights (moving statistics included), then the optimizer's step counter and slots: copies."""
    return [np.array(w) for w in model.get_weights()] + [np.array(v) for v in model.optimizer.variables]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# the package's own source folders (gpudl/, and kernels/ and frontend/ where they install as
# gpudl.kernels and gpudl.frontend): only lines there are counted, so the interrupt points do not
# move with what runs around them (the import machinery, a garbage collector's finalizers)
OWN_FOLDERS = tuple({os.path.dirname(module.__file__) + os.sep
                     for module in (gpudl, gpudl.kernels, gpudl.frontend)})


def traced_step(model, x, y, interrupt_at=None):
    """One train_on_batch under a line tracer: returns (the gpudl lines it ran, as file names,
    whether a KeyboardInterrupt came out). With interrupt_at=k, SIGINT is raised at line k."""
    lines = []

    def tracer(frame, event, arg):
        if event == "line" and frame.f_code.co_filename.startswith(OWN_FOLDERS):
            lines.append(frame.f_code.co_filename)
            if len(lines) == interrupt_at:
                signal.raise_signal(signal.SIGINT)
        return tracer

    interrupted = False
    # no garbage collection inside: it would run finalizers (a dead model's weakref callbacks) at
    # lines that depend on what earlier tests allocated, and shift every line after them
    gc.collect()
    gc.disable()
    sys.settrace(tracer)
    try:
        model.train_on_batch(x, y)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sys.settrace(None)
        gc.enable()
    return lines, interrupted


def interrupt_points():
    """Every line of the optimizer update, and 40 lines spread over the whole step."""
    model = make_model()
    x, y = data()
    model.train_on_batch(x, y)  # the optimizer's slots exist from here on
    lines, _ = traced_step(model, x, y)
    update = [k + 1 for k, name in enumerate(lines) if name.endswith(("optimizers.py", "optimizer_updates.py"))]
    assert update, "the tracer saw no optimizer line"
    return update, sorted(set(update) | set(np.linspace(1, len(lines), 40).astype(int)))


def outcomes(points):
    """For each k: (interrupted, state is before the step, state is after the whole step)."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGINT)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, []), "SIGINT is blocked in this thread"
    x, y = data()
    reference = make_model()
    reference.train_on_batch(x, y)
    before = state(reference)
    reference.train_on_batch(x, y)
    after = state(reference)
    results = []
    for k in points:
        model = make_model()
        model.train_on_batch(x, y)
        assert same(state(model), before)
        _, interrupted = traced_step(model, x, y, interrupt_at=k)
        now = state(model)
        results.append((k, interrupted, same(now, before), same(now, after)))
    return results


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT goes to the main thread")
def test_keyboard_interrupt_anywhere_in_a_step_leaves_the_state_before_or_after_the_whole_step():
    update, points = interrupt_points()
    results = outcomes(points)
    torn = [k for k, _, is_before, is_after in results if not (is_before or is_after)]
    assert not torn, f"torn states after interrupts at lines {torn}"
    assert all(interrupted for _, interrupted, _, _ in results), results  # never swallowed
    held = [k for k, _, _, is_after in results if is_after and k in update]
    assert held == update  # an interrupt inside the update waited for the step to end


def test_without_the_guard_an_interrupt_inside_the_update_tears_the_state(monkeypatch):
    monkeypatch.setattr(Trainer, "_train_step", Trainer._train_step.__wrapped__)
    update, _ = interrupt_points()
    results = outcomes(update)
    assert any(not (is_before or is_after) for _, _, is_before, is_after in results), results


def test_a_user_sigint_handler_is_called_after_the_step_and_restored():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        update, _ = interrupt_points()
        model = make_model()
        x, y = data()
        model.train_on_batch(x, y)
        _, interrupted = traced_step(model, x, y, interrupt_at=update[0])
        assert not interrupted and calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # the user's again
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGINT) is previous


def run_threads(target, count):
    errors = []

    def guarded(i):
        try:
            target(i)
        except Exception as error:  # noqa: BLE001 - any error is a failure, reported below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_evaluate_from_eight_threads_on_one_model_equals_evaluating_alone():
    model = make_model()
    x, y = data(512)
    model.fit(x, y, epochs=1, verbose=0)
    parts = [(x[i::8], y[i::8]) for i in range(8)]
    expected = [model.evaluate(a, b, batch_size=16, verbose=0) for a, b in parts]
    for _ in range(6):
        results = [None] * 8
        run_threads(lambda i: results.__setitem__(i, model.evaluate(*parts[i], batch_size=16, verbose=0)), 8)
        assert results == expected


def test_a_first_predict_from_eight_threads_on_an_unbuilt_model_equals_one_predict():
    x, _ = data(64)
    for _ in range(5):
        model = gpudl.Sequential([gpudl.layers.Dense(16, activation="relu"), gpudl.layers.Dense(3)], seed=4)
        results = [None] * 8
        run_threads(lambda i: results.__setitem__(i, model.predict(x, verbose=0)), 8)
        kernel1, bias1, kernel2, bias2 = [w.astype(np.float64) for w in model.get_weights()]
        expected = np.maximum(x @ kernel1 + bias1, 0) @ kernel2 + bias2  # from the weights it kept
        for result in results:
            np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_fit_from_four_threads_equals_four_fits_in_a_row():
    x, y = data(128)
    model, alone = make_model(), make_model()
    run_threads(lambda i: model.fit(x, y, batch_size=32, shuffle=False, verbose=0), 4)
    for _ in range(4):
        alone.fit(x, y, batch_size=32, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == 16
    assert same(state(model), state(alone))
