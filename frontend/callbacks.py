"""Callbacks with Keras's hooks. `fit` always adds History and, when verbose, the
progress bar; set `self.model.stop_training = True` from any hook to stop."""

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
