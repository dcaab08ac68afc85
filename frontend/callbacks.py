"""Callbacks with Keras's hooks. `fit` always adds History and, when verbose, the
progress bar; set `self.model.stop_training = True` from any hook to stop."""

import csv
import math
import os
import sys
import time


class Callback:
    """Override any of the hooks; `self.model` is set by fit."""

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls a hook on each callback in order."""

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)

    def call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)


class History(Callback):
    """Records the epoch logs: `history.history["loss"]` is a list, one value per epoch."""

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgbarLogger(Callback):
    """Keras's progress bar: `12/23 ━━━━━━━━━━──────────── 0s 3ms/step - accuracy: 0.91 - loss: 0.32`.
    verbose=1 redraws the bar on one line; verbose=2 prints one line per epoch."""

    WIDTH = 20

    def __init__(self, verbose=1, stream=None):
        self.verbose = verbose
        self.stream = stream or sys.stdout

    def on_train_begin(self, logs=None):
        self.epochs = self.model._fit_epochs
        self.steps = self.model._fit_steps

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.stream.write(f"Epoch {epoch + 1}/{self.epochs}\n")
        self.stream.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose == 1:
            self._draw(batch + 1, logs, end="\r")

    def on_epoch_end(self, epoch, logs=None):
        self._draw(self.steps, logs, end="\n")

    def _draw(self, step, logs, end):
        elapsed = time.perf_counter() - self.start
        done = self.WIDTH * step // self.steps
        bar = "━" * done + "─" * (self.WIDTH - done)
        per_step = elapsed / max(step, 1)
        unit = f"{per_step * 1e3:.0f}ms/step" if per_step >= 1e-3 else f"{per_step * 1e6:.0f}us/step"
        metrics = "".join(f" - {key}: {value:.4f}" for key, value in sorted((logs or {}).items()))
        self.stream.write(f"{step}/{self.steps} {bar} {elapsed:.0f}s {unit}{metrics}{end}")
        self.stream.flush()


def monitor_value(logs, monitor, callback):
    """logs[monitor], or an error listing the keys that exist."""
    if monitor not in (logs or {}):
        raise ValueError(f"{callback}: monitor={monitor!r} is not in the epoch logs; available: "
                         f"{', '.join(sorted(logs or {})) or 'none'}. (val_* needs validation data.)")
    return float(logs[monitor])


def auto_mode(monitor):
    """"max" for accuracy-like names (accuracy, val_acc, auc), else "min" (losses, errors)."""
    return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"


def improvement_test(mode, monitor, min_delta, callback):
    """is_better(current, best) for mode "min", "max" or "auto" (max for accuracy-like names)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{callback}: Invalid value received for argument `mode`. Expected one of "
                         f"'auto', 'min', 'max'. Received: mode={mode!r}")
    if mode == "auto":
        mode = auto_mode(monitor)
    if mode == "min":
        return (lambda current, best: current < best - abs(min_delta)), float("inf")
    return (lambda current, best: current > best + abs(min_delta)), float("-inf")


def check_patience(patience, callback):
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"{callback}: Invalid value received for argument `patience`. Expected a "
                         f"non-negative integer. Received: patience={patience!r}")
    return patience


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs
    (Keras's rule); with restore_best_weights, end with the best epoch's weights."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, mode="auto", restore_best_weights=False,
                 start_from_epoch=0, baseline=None):
        self.monitor, self.patience = monitor, check_patience(patience, "EarlyStopping")
        self.is_better, self.initial_best = improvement_test(mode, monitor, min_delta, "EarlyStopping")
        self.restore_best_weights, self.start_from_epoch, self.baseline = restore_best_weights, start_from_epoch, baseline

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = self.initial_best, None

    def on_epoch_end(self, epoch, logs=None):
        current = monitor_value(logs, self.monitor, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self.is_better(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.is_better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch's start to schedule(epoch, lr) (or schedule(epoch))."""

    def __init__(self, schedule, verbose=0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, optimizer.current_learning_rate())
        except TypeError:
            lr = self.schedule(epoch)
        optimizer.learning_rate = float(lr)  # checked: a positive number
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = self.model.optimizer.current_learning_rate()


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience`
    epochs; then wait `cooldown` epochs; never below `min_lr` (Keras's rule)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4, cooldown=0,
                 min_lr=0.0, verbose=0):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: Invalid value received for argument `factor`. Expected a "
                             f"float in (0, 1). Received: factor={factor!r}")
        self.monitor, self.factor, self.patience = monitor, factor, check_patience(patience, "ReduceLROnPlateau")
        self.is_better, self.initial_best = improvement_test(mode, monitor, min_delta, "ReduceLROnPlateau")
        self.cooldown, self.min_lr, self.verbose = cooldown, min_lr, verbose

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter, self.best = 0, 0, self.initial_best

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        logs["learning_rate"] = optimizer.current_learning_rate()
        current = monitor_value(logs, self.monitor, "ReduceLROnPlateau")
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_better(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and logs["learning_rate"] > self.min_lr:
                new_lr = max(logs["learning_rate"] * self.factor, self.min_lr)
                optimizer.learning_rate = new_lr
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


class ModelCheckpoint(Callback):
    """Save the model (gpudl.saving format) after each epoch, or only when `monitor`
    improves; `filepath` may hold "{epoch:02d}" and log keys such as "{val_loss:.3f}"."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto", verbose=0):
        self.filepath, self.monitor, self.save_best_only, self.verbose = str(filepath), monitor, save_best_only, verbose
        self.is_better, self.best = improvement_test(mode, monitor, 0, "ModelCheckpoint")

    def on_epoch_end(self, epoch, logs=None):
        path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        if self.save_best_only:
            current = monitor_value(logs, self.monitor, "ModelCheckpoint")
            if not self.is_better(current, self.best):
                return
            self.best = current
        self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved model to {path}")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or inf."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Append one CSV row per epoch: epoch, then the log keys in sorted order."""

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = str(filename), separator, append

    def on_train_begin(self, logs=None):
        self.keys = None
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.write_header = not (self.append and self.file.tell() > 0)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.write_header:
                self.file.write(self.separator.join(["epoch"] + self.keys) + "\n")
        self.file.write(self.separator.join([str(epoch)] + [repr(float(logs.get(k, math.nan))) for k in self.keys]) + "\n")
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class LearningCurves(Callback):
    """Redraw a PNG of train and dev loss and metrics after every epoch, for someone
    babysitting a run ("panda"). With `csv_log` (a CSVLogger file), the curves of earlier
    runs that the file holds are drawn too, so a resumed run shows its whole history.
    Needs matplotlib (pip install gpudl[plot])."""

    def __init__(self, path, csv_log=None):
        self.path, self.csv_log = str(path), csv_log
        try:
            import matplotlib
        except ImportError as error:
            raise ImportError("LearningCurves needs matplotlib: pip install 'gpudl[plot]'") from error
        matplotlib.use("Agg", force=False)

    def on_train_begin(self, logs=None):
        self.epochs, self.history = [], {}
        if self.csv_log is not None and os.path.exists(self.csv_log):
            with open(self.csv_log, newline="") as f:
                for row in csv.DictReader(f):
                    self._append(int(row.pop("epoch")), {k: float(v) for k, v in row.items()})

    def _append(self, epoch, logs):
        while self.epochs and self.epochs[-1] > epoch:  # rows of epochs that are being redone
            self.epochs.pop()
            for values in self.history.values():
                values.pop()
        self.epochs.append(epoch + 1)
        for key in self.history.keys() | logs.keys():  # every curve has a value (maybe NaN) per epoch
            self.history.setdefault(key, [math.nan] * (len(self.epochs) - 1)).append(logs.get(key, math.nan))

    def on_epoch_end(self, epoch, logs=None):
        import matplotlib.pyplot as plt

        self._append(epoch, logs or {})
        names = [k for k in self.history if not k.startswith("val_") and k != "learning_rate"]
        figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
        for axis, name in zip(axes[0], names):
            for key, label in ((name, "train"), ("val_" + name, "dev")):
                if key in self.history:
                    axis.plot(self.epochs, self.history[key], marker="o", label=label)
            axis.set_xlabel("epoch")
            axis.set_title(name)
            axis.legend()
        figure.tight_layout()
        figure.savefig(self.path)
        plt.close(figure)
