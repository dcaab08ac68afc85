"""Callbacks against Keras 3: traces, texts, warnings and files compared with what Keras
3.15.1 (JAX backend, CPU) gives for the same inputs, and the hook order of fit.

The Keras numbers and texts below were printed by scripts run with /work/kerasvenv/bin/python
(KERAS_BACKEND=jax, keras 3.15.1); each literal names its script. The unit tests drive the
callbacks with a small fake model, so they test the callbacks alone; the end-to-end tests at
the bottom run gpudl.Sequential.fit.
"""

import json
import re
import struct
import sys
import warnings

import numpy as np
import pytest

import gpudl
from gpudl.frontend import callbacks as callbacks_module
from gpudl.frontend.callbacks import progbar as progbar_module
from gpudl.frontend.callbacks import (BackupAndRestore, Callback, CallbackList, CSVLogger, EarlyStopping, History,
                                      LambdaCallback, LearningRateScheduler, ModelCheckpoint, ProgbarLogger,
                                      ReduceLROnPlateau, TensorBoard, TerminateOnNaN)


class FakeOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate, self.iterations = learning_rate, 0


class FakeModel:
    """What the callbacks touch: optimizer, stop_training, metrics, get/set_weights, save, save_weights."""

    def __init__(self, learning_rate=0.1):
        self.optimizer = FakeOptimizer(learning_rate)
        self.stop_training, self.metrics, self.weights = False, [], [np.zeros(3)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, filepath, overwrite=True):
        self.saved.append(("save", filepath))
        with open(filepath, "w") as f:
            f.write("model")

    def save_weights(self, filepath, overwrite=True):
        self.saved.append(("save_weights", filepath))
        with open(filepath, "w") as f:
            f.write("weights")


def attach(callback, model=None):
    model = model or FakeModel()
    callback.set_model(model)
    return callback, model


# Epoch values fed to EarlyStopping / ReduceLROnPlateau, as val_loss (and val_mae), in tests/k_traces.py below.
VALUES = [1.0, 0.9, 0.95, 0.8999, 0.7, 0.75, 0.71, 0.72, 0.69, 0.71, 0.73, 0.74, 0.70, 0.76]

# Keras 3.15.1, script k_traces.py: for e, v in enumerate(VALUES): cb.on_epoch_end(e, {"loss": v,
# "val_loss": v, "val_mae": v}); record (cb.wait, cb.best, model.stop_training) until it stops; then
# (cb.stopped_epoch, cb.best_epoch).
EARLY_STOPPING_KERAS = [
    (dict(patience=2), [(0, 1.0, False), (0, 0.9, False), (1, 0.9, False), (0, 0.8999, False), (0, 0.7, False),
                        (1, 0.7, False), (2, 0.7, True)], 6, 4),
    (dict(patience=2, min_delta=0.02), [(0, 1.0, False), (0, 0.9, False), (1, 0.9, False), (2, 0.9, True)], 3, 1),
    (dict(patience=3, baseline=0.75), [(1, 1.0, False), (2, 0.9, False), (3, 0.9, True)], 2, 1),
    (dict(patience=1, start_from_epoch=3, monitor="val_mae"),
     [(0, None, False), (0, None, False), (0, None, False), (0, 0.8999, False), (0, 0.7, False), (1, 0.7, True)], 5, 4),
    (dict(patience=2, mode="max"), [(0, 1.0, False), (1, 1.0, False), (2, 1.0, True)], 2, 0),
]


@pytest.mark.parametrize("arguments, trace, stopped_epoch, best_epoch", EARLY_STOPPING_KERAS)
def test_early_stopping_trace_matches_keras(arguments, trace, stopped_epoch, best_epoch):
    stopper, model = attach(EarlyStopping(**arguments))
    stopper.on_train_begin()
    seen = []
    for epoch, value in enumerate(VALUES):
        stopper.on_epoch_end(epoch, {"loss": value, "val_loss": value, "val_mae": value})
        seen.append((stopper.wait, stopper.best, model.stop_training))
        if model.stop_training:
            break
    assert seen == trace
    assert (stopper.stopped_epoch, stopper.best_epoch) == (stopped_epoch, best_epoch)


def test_early_stopping_restores_the_best_weights_and_says_so(capsys):
    stopper, model = attach(EarlyStopping(monitor="loss", patience=1, verbose=1, restore_best_weights=True))
    stopper.on_train_begin()
    for epoch, value in enumerate([0.5, 0.3, 0.4, 0.35]):
        model.weights = [np.full(3, float(epoch))]
        stopper.on_epoch_end(epoch, {"loss": value})
        if model.stop_training:
            break
    stopper.on_train_end()
    np.testing.assert_array_equal(model.weights[0], np.full(3, 1.0))  # the weights of epoch 1, the best
    # Keras's texts (keras/src/callbacks/early_stopping.py, on_train_end)
    assert capsys.readouterr().out == ("Epoch 3: early stopping\n"
                                       "Restoring model weights from the end of the best epoch: 2.\n")


# Keras 3.15.1, k_traces.py: model.optimizer.learning_rate = 0.1; for e, v in enumerate(VALUES):
# logs = {"loss": v, "val_loss": v}; cb.on_epoch_end(e, logs); record (cb.wait, cb.cooldown_counter,
# learning rate after the epoch, logs["learning_rate"]). Keras keeps rates in float32, gpudl in float64.
REDUCE_LR_KERAS = [
    (dict(patience=2),
     [(0, 0, 0.1, 0.1), (0, 0, 0.1, 0.1), (1, 0, 0.1, 0.1), (0, 0, 0.01, 0.1), (0, 0, 0.01, 0.01), (1, 0, 0.01, 0.01),
      (0, 0, 0.001, 0.01), (1, 0, 0.001, 0.001), (0, 0, 0.001, 0.001), (1, 0, 0.001, 0.001), (0, 0, 0.0001, 0.001),
      (1, 0, 0.0001, 0.0001), (0, 0, 1e-05, 0.0001), (1, 0, 1e-05, 1e-05)]),
    (dict(patience=1, cooldown=2, factor=0.5, min_lr=0.02),
     [(0, 0, 0.1, 0.1), (0, 0, 0.1, 0.1), (0, 2, 0.05, 0.1), (0, 1, 0.05, 0.05), (0, 0, 0.05, 0.05),
      (0, 2, 0.025, 0.05), (0, 1, 0.025, 0.025), (0, 2, 0.02, 0.025), (0, 1, 0.02, 0.02), (1, 0, 0.02, 0.02),
      (2, 0, 0.02, 0.02), (3, 0, 0.02, 0.02), (4, 0, 0.02, 0.02), (5, 0, 0.02, 0.02)]),
    (dict(patience=2, min_delta=0.05),
     [(0, 0, 0.1, 0.1), (0, 0, 0.1, 0.1), (1, 0, 0.1, 0.1), (0, 0, 0.01, 0.1), (0, 0, 0.01, 0.01), (1, 0, 0.01, 0.01),
      (0, 0, 0.001, 0.01), (1, 0, 0.001, 0.001), (0, 0, 0.0001, 0.001), (1, 0, 0.0001, 0.0001), (0, 0, 1e-05, 0.0001),
      (1, 0, 1e-05, 1e-05), (0, 0, 1e-06, 1e-05), (1, 0, 1e-06, 1e-06)]),
]


@pytest.mark.parametrize("arguments, trace", REDUCE_LR_KERAS)
def test_reduce_lr_on_plateau_trace_matches_keras(arguments, trace):
    reducer, model = attach(ReduceLROnPlateau(**arguments))
    reducer.on_train_begin()
    for epoch, (value, (wait, cooldown, rate, logged)) in enumerate(zip(VALUES, trace)):
        logs = {"loss": value, "val_loss": value}
        reducer.on_epoch_end(epoch, logs)
        assert (reducer.wait, reducer.cooldown_counter) == (wait, cooldown), epoch
        assert model.optimizer.learning_rate == pytest.approx(rate, rel=1e-6)
        assert logs["learning_rate"] == pytest.approx(logged, rel=1e-6)


def test_reduce_lr_on_plateau_prints_keras_message(capsys):
    reducer, model = attach(ReduceLROnPlateau(patience=2, min_delta=0.05, verbose=1))
    reducer.on_train_begin()
    for epoch, value in enumerate(VALUES[:8]):
        reducer.on_epoch_end(epoch, {"val_loss": value})
    # Keras 3.15.1 (k_traces.py, RL3) printed reductions after epochs 4 and 7 in this form:
    # "\nEpoch 4: ReduceLROnPlateau reducing learning rate to 0.010000000149011612.\n"
    assert capsys.readouterr().out == (f"\nEpoch 4: ReduceLROnPlateau reducing learning rate to {0.1 * 0.1}.\n"
                                       f"\nEpoch 7: ReduceLROnPlateau reducing learning rate to {0.1 * 0.1 * 0.1}.\n")


def test_missing_monitor_warns_once_with_keras_text_and_training_goes_on(tmp_path):
    # Keras 3.15.1 (k_traces.py) warned, for logs {"loss": 1.0, "mae": 2.0} and the default monitor:
    texts = ["Early stopping conditioned on metric `val_loss` which is not available. Available metrics are: loss,mae",
             "Learning rate reduction is conditioned on metric `val_loss` which is not available. Available "
             "metrics are: loss,mae,learning_rate.",
             "Can save best model only with val_loss available."]
    model = FakeModel()
    callbacks = [EarlyStopping(), ReduceLROnPlateau(), ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)]
    callback_list = CallbackList(callbacks, model=model, verbose=0, epochs=3, steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback_list.on_train_begin()
        for epoch in range(3):
            callback_list.on_epoch_end(epoch, {"loss": 1.0, "mae": 2.0})
    assert [str(w.message) for w in caught] == texts  # once each, not once per epoch
    assert not model.stop_training and model.optimizer.learning_rate == 0.1
    assert model.saved == [("save", str(tmp_path / "best.npz"))] * 3  # Keras saves when it cannot compare


def test_unknown_mode_and_direction_are_refused():
    with pytest.raises(ValueError, match="Invalid value received for argument `mode`"):
        EarlyStopping(mode="maximum")
    stopper, _ = attach(EarlyStopping(monitor="val_f2"))
    stopper.on_train_begin()
    with pytest.raises(ValueError, match="received monitor=val_f2, but gpudl isn't able"):
        stopper.on_epoch_end(0, {"val_f2": 1.0})


def test_auto_mode_reads_the_direction_of_the_model_metric():
    class Score:  # a user metric that Keras would mark with _direction = "up"
        name, _direction = "score", "up"

    stopper, model = attach(EarlyStopping(monitor="val_score", patience=1))
    model.metrics = [Score()]
    stopper.on_train_begin()
    for epoch, value in enumerate([0.5, 0.6, 0.55]):
        stopper.on_epoch_end(epoch, {"val_score": value})
    assert stopper.best == 0.6 and model.stop_training


def test_model_checkpoint_names_and_messages_match_keras(tmp_path, capsys):
    checkpoint, model = attach(ModelCheckpoint(str(tmp_path / "m{epoch:02d}-{val_loss:.2f}.npz"),
                                               save_best_only=True, verbose=1))
    checkpoint.on_train_begin()
    for epoch, value in enumerate([0.5, 0.6, 0.4]):
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"loss": value, "val_loss": value})
    # Keras 3.15.1 (k_traces.py) saved m01-0.50 and m03-0.40 and printed these lines (path aside)
    assert model.saved == [("save", str(tmp_path / "m01-0.50.npz")), ("save", str(tmp_path / "m03-0.40.npz"))]
    assert capsys.readouterr().out.replace(str(tmp_path) + "/", "") == (
        "\nEpoch 1: val_loss improved from None to 0.50000, saving model to m01-0.50.npz\n"
        "\nEpoch 1: finished saving model to m01-0.50.npz\n"
        "\nEpoch 2: val_loss did not improve from 0.50000\n"
        "\nEpoch 3: val_loss improved from 0.50000 to 0.40000, saving model to m03-0.40.npz\n"
        "\nEpoch 3: finished saving model to m03-0.40.npz\n")


def test_model_checkpoint_initial_value_threshold(tmp_path, capsys):
    checkpoint, model = attach(ModelCheckpoint(str(tmp_path / "x.npz"), verbose=1, initial_value_threshold=0.45,
                                               save_best_only=True))
    checkpoint.on_train_begin()
    for epoch, value in enumerate([0.5, 0.44]):
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"val_loss": value})
    assert len(model.saved) == 1
    assert capsys.readouterr().out.splitlines()[1] == "Epoch 1: val_loss did not improve from 0.45000"  # Keras's


def test_model_checkpoint_every_n_batches_counts_across_epochs_like_keras(tmp_path):
    checkpoint, model = attach(ModelCheckpoint(str(tmp_path / "b{epoch}_{batch}.npz"), save_freq=3))
    checkpoint.on_train_begin()
    for epoch in range(2):
        checkpoint.on_epoch_begin(epoch)
        for batch in range(4):
            checkpoint.on_train_batch_end(batch, {"loss": 0.1})
        checkpoint.on_epoch_end(epoch, {"loss": 0.1})
    # Keras 3.15.1 (k_traces.py) wrote b1_3 and b2_2 for 2 epochs of 4 batches
    assert [path for _, path in model.saved] == [str(tmp_path / "b1_3.npz"), str(tmp_path / "b2_2.npz")]


def test_model_checkpoint_save_weights_only_calls_save_weights_and_checks_the_suffix(tmp_path):
    checkpoint, model = attach(ModelCheckpoint(str(tmp_path / "w{epoch}.weights.h5"), save_weights_only=True))
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    assert model.saved == [("save_weights", str(tmp_path / "w1.weights.h5"))]
    with pytest.raises(ValueError, match="must end in `.weights.h5` \\(Keras weights format\\). Received: "
                                         "filepath=w.npz"):
        ModelCheckpoint("w.npz", save_weights_only=True)
    with pytest.raises(ValueError, match="`save_freq`"):
        ModelCheckpoint("m.npz", save_freq="batch")


def test_csv_logger_keeps_keras_header_without_validation(tmp_path):
    path = tmp_path / "log.csv"
    logger, _ = attach(CSVLogger(path))
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 0.5, "mae": 0.25})
    logger.on_epoch_end(1, {"loss": 0.25, "mae": 0.125})
    logger.on_train_end()
    # Keras 3.15.1 (k_traces.py) wrote exactly this
    assert path.read_text() == "epoch,loss,mae,val_loss,val_mae\n0,0.5,0.25,NA,NA\n1,0.25,0.125,NA,NA\n"
    logger, _ = attach(CSVLogger(path, append=True))
    logger.on_train_begin()
    logger.on_epoch_end(2, {"loss": 0.5, "mae": 0.25, "val_loss": 1.5})
    logger.on_train_end()
    assert path.read_text().endswith("1,0.25,0.125,NA,NA\n2,0.5,0.25,1.5\n")  # Keras: header kept, row appended


def test_terminate_on_nan_stops_or_raises_with_keras_text(capsys):
    stopper, model = attach(TerminateOnNaN())
    stopper.on_train_batch_end(2, {"loss": 0.5})
    assert not model.stop_training
    stopper.on_train_batch_end(3, {"loss": float("nan")})
    assert model.stop_training and capsys.readouterr().out == "Batch 3: Invalid loss, terminating training\n"
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 4. Loss value: inf."):
        attach(TerminateOnNaN(raise_error=True))[0].on_train_batch_end(4, {"loss": float("inf")})


def test_learning_rate_scheduler_both_signatures_logs_and_checks_the_result(capsys):
    scheduler, model = attach(LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1))
    scheduler.on_epoch_begin(0)
    scheduler.on_epoch_begin(1)
    assert model.optimizer.learning_rate == 0.025
    # Keras 3.15.1 (k_traces.py) printed "\nEpoch 1: LearningRateScheduler setting learning rate to 0.0500000007..."
    assert capsys.readouterr().out == ("\nEpoch 1: LearningRateScheduler setting learning rate to 0.05.\n"
                                       "\nEpoch 2: LearningRateScheduler setting learning rate to 0.025.\n")
    logs = {"loss": 1.0}
    scheduler.on_epoch_end(1, logs)
    assert logs == {"loss": 1.0, "learning_rate": 0.025}
    empty = {}
    scheduler.on_epoch_end(1, empty)
    assert empty == {}  # Keras: `logs = logs or {}` leaves an empty dict alone
    old_api, model = attach(LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)))
    old_api.on_epoch_begin(3)
    assert model.optimizer.learning_rate == 0.025
    with pytest.raises(ValueError, match="The output of the `schedule` function should be a float. Got: 1"):
        attach(LearningRateScheduler(lambda epoch, lr: 1))[0].on_epoch_begin(0)


def test_base_callback_batch_hooks_are_keras_aliases():
    calls = []

    class Legacy(Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, logs["loss"]))

    callback_list = CallbackList([Legacy()], model=FakeModel())
    callback_list.on_train_batch_begin(0)
    callback_list.on_train_batch_end(0, {"loss": np.float32(0.5)})
    assert calls == [("begin", 0), ("end", 0, 0.5)]
    assert callback_list.needs_train_batch_logs


def test_callback_list_adds_history_and_progbar_once_and_passes_params():
    model = FakeModel()
    history = History()
    callback_list = CallbackList([history], add_history=True, add_progbar=True, model=model,
                                 verbose=1, epochs=2, steps=5)
    assert callback_list.callbacks[0] is history and isinstance(callback_list.callbacks[1], ProgbarLogger)
    assert len(callback_list.callbacks) == 2 and model.history is history
    assert history.params == {"verbose": 1, "epochs": 2, "steps": 5} and history.model is model
    callback_list.on_train_begin()
    for epoch, logs in enumerate([{"val_loss": 2.0, "loss": 1.0}, {"val_loss": 1.5, "loss": 0.5}]):
        callback_list.on_epoch_begin(epoch)
        callback_list.on_epoch_end(epoch, logs)
    assert history.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5]} and history.epoch == [0, 1]
    assert list(history.history) == ["loss", "val_loss"]  # Keras sorts the log keys
    with pytest.raises(TypeError, match="must be a gpudl.callbacks.Callback"):
        CallbackList([print])


class CountingLogs(dict):
    """Batch logs that count how often their values are read (as fit's device logs would sync)."""

    reads = 0

    def items(self):
        CountingLogs.reads += 1
        return super().items()

    def __getitem__(self, key):
        CountingLogs.reads += 1
        return super().__getitem__(key)

    def get(self, key, default=None):
        CountingLogs.reads += 1
        return super().get(key, default)


class Clock:
    """A fake time.time: each call moves `tick` seconds on."""

    def __init__(self, tick, start=1000.0):  # 1000.0: as in k_progbar_clock2.py
        self.now, self.tick = start, tick

    def time(self):
        self.now += self.tick
        return self.now


def test_only_callbacks_reading_every_batch_make_the_batch_logs_read(monkeypatch, capsys):
    monkeypatch.setattr(progbar_module, "time", Clock(1 / 64, start=1024.0))  # exact sums
    quiet = [ProgbarLogger(), ModelCheckpoint("unused.npz", save_freq=1000), History(), EarlyStopping()]
    readers = [TerminateOnNaN(), LambdaCallback(on_train_batch_end=lambda batch, logs: None)]
    for callback in readers:
        assert CallbackList(quiet + [callback]).needs_train_batch_logs
    assert not CallbackList(quiet).needs_train_batch_logs
    assert CallbackList([LambdaCallback(on_test_batch_end=lambda b, logs: None)]).needs_test_batch_logs
    callback_list = CallbackList(quiet, model=FakeModel(), verbose=1, epochs=1, steps=100)
    CountingLogs.reads = 0
    callback_list.on_train_begin()
    callback_list.on_epoch_begin(0)
    for batch in range(100):
        callback_list.on_train_batch_begin(batch)
        callback_list.on_train_batch_end(batch, CountingLogs(loss=1.0 / (batch + 1)))
    redraws = capsys.readouterr().out.count("\r")
    # steps of 1/64 s: the bar redraws at step 1, then when 0.05 s have passed, i.e. every 4 steps
    # (3/64 < 0.05 <= 4/64): steps 1, 5, ..., 97; it reads the logs only then
    assert CountingLogs.reads == redraws == 25


def test_logs_are_read_every_batch_when_a_callback_needs_them():
    seen = []
    callback_list = CallbackList([LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs))],
                                 model=FakeModel())
    CountingLogs.reads = 0
    for batch in range(3):
        callback_list.on_train_batch_end(batch, CountingLogs(loss=np.float32(0.25), accuracy=np.float64(0.5)))
    assert CountingLogs.reads == 3 and all(type(logs) is dict for logs in seen)
    assert seen[0] == {"accuracy": 0.5, "loss": 0.25} and list(seen[0]) == ["accuracy", "loss"]


def test_lambda_callback_sets_the_given_hooks():
    events = []
    callback = LambdaCallback(on_epoch_begin=lambda epoch, logs: events.append(("begin", epoch)),
                              on_train_end=lambda logs: events.append(("end", logs["loss"])),
                              on_test_end=lambda logs: events.append(("test", logs["loss"])))
    callback_list = CallbackList([callback], model=FakeModel())
    callback_list.on_epoch_begin(4)
    callback_list.on_test_end({"loss": 2.0})
    callback_list.on_train_end({"loss": 1.0})
    assert events == [("begin", 4), ("test", 2.0), ("end", 1.0)]
    with pytest.raises(TypeError, match="unknown hooks \\['on_epoch_ends'\\]"):
        LambdaCallback(on_epoch_ends=print)


def _fit_hooks(logger, steps, epochs):
    logger.on_train_begin()
    for epoch in range(epochs):
        logger.on_epoch_begin(epoch)
        for batch in range(steps):
            logger.on_train_batch_begin(batch)
            logger.on_train_batch_end(batch, {"accuracy": 0.5 + 0.01 * batch, "loss": 0.7 - 0.05 * batch})
        logger.on_test_begin()
        logger.on_test_batch_end(0, {"accuracy": 0.25, "loss": 0.9})
        logger.on_test_end({"accuracy": 0.25, "loss": 0.9})
        logger.on_epoch_end(epoch, {"accuracy": 0.5, "loss": 0.0004, "val_accuracy": 0.25, "val_loss": -0.5})
    logger.on_train_end()


def _evaluate_hooks(logger, steps, epochs):
    logger.on_test_begin()
    for batch in range(steps):
        logger.on_test_batch_end(batch, {"accuracy": 0.5, "loss": 0.25 * batch})
    logger.on_test_end({"accuracy": 0.5, "loss": 0.125})


def _predict_hooks(logger, steps, epochs):
    logger.on_predict_begin()
    for batch in range(steps):
        logger.on_predict_batch_end(batch, {"outputs": None})
    logger.on_predict_end()


# Keras 3.15.1, script k_progbar_clock2.py: keras.callbacks.ProgbarLogger driven by the same hook
# sequences under the same fake clock (keras.src.utils.progbar.time replaced by Clock(tick)); runs
# of backspaces written as <BSn>.
PROGBAR_KERAS = [
    (_fit_hooks, 1, 2, 5, 0.02,
     'Epoch 1/2\n\r\x1b[1m1/5\x1b[0m \x1b[32m━━━━\x1b[0m\x1b[37m━━━━━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 20ms/step - accuracy: 0.5000 - loss: 0.7000<BS71>\r\x1b[1m4/5\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m━━━━\x1b[0m \x1b[1m0s\x1b[0m 20ms/step - accuracy: 0.5300 - loss: 0.5500<BS71>\r\x1b[1m5/5\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 25ms/step - accuracy: 0.5000 - loss: 4.0000e-04 - val_accuracy: 0.2500 - val_loss: -0.5000\nEpoch 2/2\n\r\x1b[1m1/5\x1b[0m \x1b[32m━━━━\x1b[0m\x1b[37m━━━━━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 20ms/step - accuracy: 0.5000 - loss: 0.7000<BS71>\r\x1b[1m4/5\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m━━━━\x1b[0m \x1b[1m0s\x1b[0m 20ms/step - accuracy: 0.5300 - loss: 0.5500<BS71>\r\x1b[1m5/5\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 25ms/step - accuracy: 0.5000 - loss: 4.0000e-04 - val_accuracy: 0.2500 - val_loss: -0.5000\n'),  # noqa: E501
    (_fit_hooks, 2, 2, 5, 0.02,
     'Epoch 1/2\n5/5 - 0s - 4ms/step - accuracy: 0.5000 - loss: 4.0000e-04 - val_accuracy: 0.2500 - val_loss: -5.0000e-01\nEpoch 2/2\n5/5 - 0s - 4ms/step - accuracy: 0.5000 - loss: 4.0000e-04 - val_accuracy: 0.2500 - val_loss: -5.0000e-01\n'),  # noqa: E501
    (_evaluate_hooks, 1, 1, 3, 0.03,
     '\r\x1b[1m1/3\x1b[0m \x1b[32m━━━━━━\x1b[0m\x1b[37m━━━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 30ms/step - accuracy: 0.5000 - loss: 0.0000e+00<BS75>\r\x1b[1m3/3\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 30ms/step - accuracy: 0.5000 - loss: 0.5000    <BS71>\r\x1b[1m3/3\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 45ms/step - accuracy: 0.5000 - loss: 0.1250\n'),  # noqa: E501
    (_evaluate_hooks, 2, 1, 3, 0.03, '3/3 - 0s - 10ms/step - accuracy: 0.5000 - loss: 0.1250\n'),
    (_predict_hooks, 1, 1, 3, 0.011,
     '\r\x1b[1m1/3\x1b[0m \x1b[32m━━━━━━\x1b[0m\x1b[37m━━━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 11ms/step<BS37>\r\x1b[1m3/3\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 16ms/step\n'),  # noqa: E501
    (_fit_hooks, 1, 1, 3, 70.0,
     '\r\x1b[1m1/3\x1b[0m \x1b[32m━━━━━━\x1b[0m\x1b[37m━━━━━━━━━━━━━━\x1b[0m \x1b[1m2:20\x1b[0m 70s/step - accuracy: 0.5000 - loss: 0.7000<BS72>\r\x1b[1m2/3\x1b[0m \x1b[32m━━━━━━━━━━━━━\x1b[0m\x1b[37m━━━━━━━\x1b[0m \x1b[1m1:10\x1b[0m 70s/step - accuracy: 0.5100 - loss: 0.6500<BS72>\r\x1b[1m3/3\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 70s/step - accuracy: 0.5200 - loss: 0.6000  <BS70>\r\x1b[1m3/3\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m280s\x1b[0m 105s/step - accuracy: 0.5000 - loss: 4.0000e-04 - val_accuracy: 0.2500 - val_loss: -0.5000\n'),  # noqa: E501
]


@pytest.mark.parametrize("hooks, verbose, epochs, steps, tick, keras_text", PROGBAR_KERAS)
def test_progress_output_is_keras_byte_for_byte(monkeypatch, capsys, hooks, verbose, epochs, steps, tick,
                                                 keras_text):
    monkeypatch.setattr(progbar_module, "time", Clock(tick))
    logger = ProgbarLogger()
    logger.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
    hooks(logger, steps, epochs)
    text = re.sub("\b+", lambda run: f"<BS{len(run.group())}>", capsys.readouterr().out)
    assert text == keras_text


def test_history_records_params_epochs_and_sets_model_history():
    history, model = attach(History())
    history.set_params({"verbose": 0, "epochs": 3, "steps": 2})
    history.on_train_begin()
    for epoch in range(2):
        history.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    assert history.history == {"loss": [1.0, 0.5]} and history.epoch == [0, 1]
    assert history.params["epochs"] == 3 and model.history is history


# -- TensorBoard: event files read back with a TFRecord reader written here --------

def read_summaries(directory):
    """[(tag, step, Summary.Value)] of the event files under `directory`, read from the TFRecord
    framing (length, masked CRC, Event proto, masked CRC) with tensorboardX's proto."""
    from tensorboardX.proto import event_pb2

    summaries = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            summaries += [(value.tag, event.step, value) for value in event.summary.value]
    return summaries


def read_scalars(directory):
    """{tag: [(step, value)]} of the scalar summaries under `directory`."""
    scalars = {}
    for tag, step, value in read_summaries(directory):
        if value.HasField("simple_value"):
            scalars.setdefault(tag, []).append((step, value.simple_value))
    return scalars


def test_tensorboard_writes_keras_tags_to_train_and_validation(tmp_path):
    pytest.importorskip("tensorboardX")
    board, model = attach(TensorBoard(log_dir=tmp_path, update_freq=2))
    board.on_train_begin()
    for epoch in range(2):
        board.on_epoch_begin(epoch)
        for batch in range(3):
            board.on_train_batch_begin(batch)
            board.on_train_batch_end(batch, {"loss": 1.0 + 10 * epoch + batch})
        model.optimizer.iterations = 3 * (epoch + 1)
        board.on_test_begin()
        board.on_test_batch_begin(0)
        board.on_test_end({"loss": 0.5 + epoch})
        board.on_epoch_end(epoch, {"loss": 2.0 + epoch, "val_loss": 0.5 + epoch})
    board.on_train_end()
    train, validation = read_scalars(tmp_path / "train"), read_scalars(tmp_path / "validation")
    # Keras (keras/src/callbacks/tensorboard.py): epoch_* at step=epoch, the learning rate with the train
    # logs, batch_* every update_freq batches at the 1-based batch count, val_* without the prefix
    assert train == {"batch_loss": [(2, 2.0), (4, 11.0), (6, 13.0)], "epoch_loss": [(0, 2.0), (1, 3.0)],
                     "epoch_learning_rate": [(0, pytest.approx(0.1)), (1, pytest.approx(0.1))]}
    assert validation == {"epoch_loss": [(0, 0.5), (1, 1.5)],
                          "evaluation_loss_vs_iterations": [(3, 0.5), (6, 1.5)]}


def test_tensorboard_without_tensorboardx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match='pip install "gpudl\\[tensorboard\\]"'):
        TensorBoard()


def test_tensorboard_refuses_bad_update_freq():
    pytest.importorskip("tensorboardX")
    with pytest.raises(ValueError, match="`update_freq`. Expected 'epoch', 'batch' or a positive integer"):
        TensorBoard(update_freq=0)


# -- end to end with gpudl.Sequential -------------------------------------------

def small_model(seed=7, dropout=True):
    gpudl.utils.set_random_seed(seed)  # the initial weights
    layers = [gpudl.Input((4,)), gpudl.layers.Dense(8, activation="relu")]
    layers += [gpudl.layers.Dropout(0.25)] if dropout else []
    model = gpudl.Sequential(layers + [gpudl.layers.Dense(1, activation="sigmoid")], seed=seed)
    model.compile(gpudl.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    return model


RNG = np.random.default_rng(5)
X = RNG.normal(size=(40, 4)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.float32)

HOOKS = [name for name in callbacks_module.HOOKS]


class Recorder(Callback):
    """Records (hook, index, sorted log keys) of every hook, as tests/k_order.py did in Keras."""

    def __init__(self):
        super().__init__()
        self.calls = []


def _recording(hook):
    def record(self, *args, logs=None):
        index = tuple(a for a in args if isinstance(a, int))
        self.calls.append((hook, *index, sorted(logs) if logs else []))
        getattr(Callback, hook)(self, *args, logs=logs)
    return record


for _hook in HOOKS:
    setattr(Recorder, _hook, _recording(_hook))


def keras_fit_order(epochs, steps, validation_steps, stop_at=None):
    """The order Keras 3.15.1 calls hooks in (tests/k_order.py printed it for 2 epochs, 3 steps, 2
    validation steps; with a callback that stops at batch 1, as in STOP there)."""
    calls = [("on_train_begin", [])]
    for epoch in range(epochs):
        calls.append(("on_epoch_begin", epoch, []))
        for step in range(steps):
            calls += [("on_train_batch_begin", step, []), ("on_batch_begin", step, []),
                      ("on_train_batch_end", step, ["loss"]), ("on_batch_end", step, ["loss"])]
            if step == stop_at:
                break
        calls.append(("on_test_begin", []))
        for step in range(validation_steps):
            calls += [("on_test_batch_begin", step, []), ("on_test_batch_end", step, ["loss"])]
        calls += [("on_test_end", ["loss"]), ("on_epoch_end", epoch, ["loss", "val_loss"])]
        if stop_at is not None:
            break
    return calls + [("on_train_end", ["loss", "val_loss"])]


def test_fit_evaluate_predict_call_hooks_in_keras_order():
    model = gpudl.Sequential([gpudl.Input((2,)), gpudl.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.arange(24, dtype=np.float32).reshape(12, 2) / 10, np.ones((12, 1), np.float32)
    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x[:6], y[:6]), callbacks=[recorder], verbose=0)
    assert recorder.calls == keras_fit_order(epochs=2, steps=3, validation_steps=2)
    # Keras 3.15.1, k_order.py (EVAL and PRED)
    recorder = Recorder()
    model.evaluate(x, y, batch_size=8, callbacks=[recorder], verbose=0)
    assert recorder.calls == [("on_test_begin", []), ("on_test_batch_begin", 0, []), ("on_test_batch_end", 0, ["loss"]),
                              ("on_test_batch_begin", 1, []), ("on_test_batch_end", 1, ["loss"]),
                              ("on_test_end", ["loss"])]
    recorder = Recorder()
    model.predict(x, batch_size=8, callbacks=[recorder], verbose=0)
    assert recorder.calls == [("on_predict_begin", []), ("on_predict_batch_begin", 0, []),
                              ("on_predict_batch_end", 0, ["outputs"]), ("on_predict_batch_begin", 1, []),
                              ("on_predict_batch_end", 1, ["outputs"]), ("on_predict_end", [])]

    class Stop(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=3, validation_data=(x[:6], y[:6]), callbacks=[Stop(), recorder], verbose=0)
    assert recorder.calls == keras_fit_order(epochs=3, steps=3, validation_steps=2, stop_at=1)


def test_fit_verbose_2_prints_one_keras_line_per_epoch(capsys):
    small_model().fit(X, Y, batch_size=8, epochs=2, validation_split=0.25, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    # Keras 3.15.1 (k_progbar.py fit2): "Epoch 1/2", "6/6 - 1s - 88ms/step - accuracy: 0.4375 - loss: 0.7585 -
    # val_accuracy: 0.4375 - val_loss: 0.6449"
    line = r"4/4 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - " \
           r"val_loss: \d\.\d{4}"
    assert [lines[0], lines[2]] == ["Epoch 1/2", "Epoch 2/2"] and len(lines) == 4
    assert re.fullmatch(line, lines[1]) and re.fullmatch(line, lines[3])


def test_fit_verbose_1_and_evaluate_default_draw_keras_bars(capsys):
    model = small_model()
    model.fit(X, Y, batch_size=8, epochs=2, validation_split=0.25, verbose=1)
    model.evaluate(X, Y)  # verbose="auto": a bar, as Keras
    out = capsys.readouterr().out
    bars = [segment.rstrip("\b") for segment in out.split("\r")[1:]]
    # Keras 3.15.1 (k_progbar.py fit1): the finished bar of an epoch, then of evaluate, each ending the line
    final = r"\x1b\[1m4/4\x1b\[0m \x1b\[32m━{20}\x1b\[0m\x1b\[37m\x1b\[0m \x1b\[1m\d+s\x1b\[0m \d+(us|ms|s)/step - " \
            r"accuracy: \d\.\d{4} - loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}\nEpoch 2/2\n"
    assert out.startswith("Epoch 1/2\n\r") and re.fullmatch(final, bars[out.count("\r", 0, out.index("Epoch 2/2")) - 1])
    assert re.fullmatch(r"\x1b\[1m2/2\x1b\[0m \x1b\[32m━{20}\x1b\[0m\x1b\[37m\x1b\[0m \x1b\[1m\d+s\x1b\[0m "
                        r"\d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} *\n", bars[-1])


def test_learning_curves_read_a_csv_log_with_keras_na_cells(tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "log.csv"
    callbacks = [CSVLogger(log), callbacks_module.LearningCurves(tmp_path / "curves.png", csv_log=log)]
    small_model().fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    curves = callbacks_module.LearningCurves(tmp_path / "again.png", csv_log=log)
    curves.set_model(None)
    curves.on_train_begin()  # a resumed run reads the earlier rows, "NA" as a missing value
    assert curves.epochs == [1, 2] and all(np.isnan(curves.history["val_loss"]))
    assert curves.history["loss"] == pytest.approx([float(r.split(",")[2]) for r in log.read_text().splitlines()[1:]])


def test_default_monitor_without_validation_warns_and_all_callbacks_carry_on(tmp_path):
    model = small_model()
    callbacks = [EarlyStopping(patience=0), ReduceLROnPlateau(patience=0), CSVLogger(tmp_path / "log.csv"),
                 ModelCheckpoint(tmp_path / "m{epoch}.npz", save_best_only=True)]
    with pytest.warns(UserWarning) as caught:
        history = model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
    assert len(history.history["loss"]) == 3
    assert sorted(str(w.message)[:20] for w in caught if "not available" in str(w.message)
                  or "only with" in str(w.message)) == ["Can save best model ", "Early stopping condi",
                                                         "Learning rate reduct"]
    assert sorted(p.name for p in tmp_path.glob("m*.npz")) == ["m1.npz", "m2.npz", "m3.npz"]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,learning_rate,loss,val_accuracy,val_learning_rate,val_loss"
    assert rows[1].endswith(",NA,NA,NA") and len(rows) == 4


class Crash(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt("simulated crash")


def test_backup_and_restore_resumes_a_crashed_run_bit_identically(tmp_path):
    backup = tmp_path / "backup"
    whole = small_model()
    whole.fit(X, Y, batch_size=8, epochs=4, verbose=0)
    crashed = small_model()
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(X, Y, batch_size=8, epochs=4, verbose=0, callbacks=[BackupAndRestore(backup), Crash()])
    assert (backup / "latest.npz").exists()
    rerun = small_model()  # a new process would build the model anew
    recorder = Recorder()
    history = rerun.fit(X, Y, batch_size=8, epochs=4, verbose=0, callbacks=[BackupAndRestore(backup), recorder])
    assert history.epoch == [2, 3]  # Keras: fit starts after the last backed-up epoch
    for a, b in zip(whole.get_weights(), rerun.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert rerun.optimizer.iterations == whole.optimizer.iterations == 20
    assert not backup.exists()  # deleted after the completed fit (delete_checkpoint=True)


def test_backup_every_n_batches_resumes_at_the_epoch_start_with_mid_epoch_weights(tmp_path):
    snapshots = {}
    model = small_model()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0,
              callbacks=[BackupAndRestore(tmp_path, save_freq=3, delete_checkpoint=False),
                         LambdaCallback(on_train_batch_end=lambda b, logs: snapshots.setdefault(b,
                                                                                               model.get_weights()))])
    # Keras: 5 batches, save_freq=3 -> one backup, after batch index 2, recording epoch 0
    assert json.loads((tmp_path / "training_metadata.json").read_text()) == {"epoch": 0, "batch": 2}
    rerun = small_model(seed=7)
    restored = {}
    history = rerun.fit(X, Y, batch_size=8, epochs=1, verbose=0,
                        callbacks=[BackupAndRestore(tmp_path, save_freq=3),
                                   LambdaCallback(on_train_begin=lambda logs: restored.update(w=rerun.get_weights()))])
    for a, b in zip(restored["w"], snapshots[2]):
        np.testing.assert_array_equal(a, b)
    assert history.epoch == [0]


def test_backup_falls_back_to_the_previous_backup_when_the_latest_is_unreadable(tmp_path):
    snapshots = {}
    model = small_model()
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0,
              callbacks=[BackupAndRestore(tmp_path, double_checkpoint=True, delete_checkpoint=False),
                         LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.setdefault(epoch,
                                                                                             model.get_weights()))])
    (tmp_path / "latest.npz").write_bytes(b"torn write")
    rerun, restored = small_model(), {}
    history = rerun.fit(X, Y, batch_size=8, epochs=2, verbose=0,
                        callbacks=[BackupAndRestore(tmp_path),
                                   LambdaCallback(on_train_begin=lambda logs: restored.update(w=rerun.get_weights()))])
    for a, b in zip(restored["w"], snapshots[0]):  # the .bkp copy: the backup of epoch 0
        np.testing.assert_array_equal(a, b)
    assert history.epoch == [1]


def test_backup_and_restore_warns_when_the_seed_differs(tmp_path):
    crashed = small_model(seed=1)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path), Crash()])
    with pytest.warns(UserWarning, match="seed=1, this model has seed=2"):
        small_model(seed=2).fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path)])


def test_model_checkpoint_and_tensorboard_in_a_real_fit(tmp_path):
    pytest.importorskip("tensorboardX")
    model = small_model(dropout=False)
    history = model.fit(X, Y, batch_size=8, epochs=2, validation_split=0.25, verbose=0,
                        callbacks=[ModelCheckpoint(tmp_path / "w{epoch:02d}-{val_loss:.2f}.weights.h5",
                                                   save_weights_only=True),
                                   TensorBoard(tmp_path / "logs", update_freq="batch")])
    names = sorted(p.name for p in tmp_path.glob("*.weights.h5"))
    assert names == [f"w{e + 1:02d}-{v:.2f}.weights.h5" for e, v in enumerate(history.history["val_loss"])]
    fresh = small_model(dropout=False)
    fresh.load_weights(tmp_path / names[-1])
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    train = read_scalars(tmp_path / "logs" / "train")
    assert [v for _, v in train["epoch_loss"]] == pytest.approx(history.history["loss"])
    assert [s for s, _ in train["batch_loss"]] == list(range(1, 9))  # 4 batches an epoch, counted across epochs
    validation = read_scalars(tmp_path / "logs" / "validation")
    assert [v for _, v in validation["epoch_accuracy"]] == pytest.approx(history.history["val_accuracy"])


def test_tensorboard_weight_histograms_and_steps_per_second(tmp_path):
    pytest.importorskip("tensorboardX")
    model = small_model(dropout=False)
    model.fit(X, Y, batch_size=8, epochs=3, verbose=0,
              callbacks=[TensorBoard(tmp_path, histogram_freq=2, write_steps_per_second=True)])
    histograms = [(tag, step, value.histo) for tag, step, value in read_summaries(tmp_path / "train")
                  if value.HasField("histo")]
    weights = {f"{layer.name}/{p.name}/histogram": np.asarray(p.value, np.float64)
               for layer in model.layers for p in layer.weights}
    # Keras: a histogram of every weight, named by its path, at the epochs where epoch % histogram_freq == 0
    assert sorted((tag, step) for tag, step, _ in histograms) == sorted((tag, s) for tag in weights for s in (0, 2))
    for tag, step, histo in histograms:
        if step == 2:  # after the last epoch: the model's weights now
            assert (histo.num, histo.min, histo.max) == (weights[tag].size, weights[tag].min(), weights[tag].max())
            assert histo.sum == pytest.approx(weights[tag].sum(), rel=1e-6, abs=1e-6)
    rates = read_scalars(tmp_path / "train")["epoch_steps_per_second"]
    assert [step for step, _ in rates] == [0, 1, 2] and all(rate > 0 for _, rate in rates)
