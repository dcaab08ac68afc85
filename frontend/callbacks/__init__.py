"""Callbacks with Keras 3's hooks, arguments, defaults, order, messages and warnings.

`fit` builds a `CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
model=model, verbose=..., epochs=..., steps=...)` and calls its hooks in Keras's order;
set `self.model.stop_training = True` from any hook to stop.

Batch logs and the device: fit hands the batch hooks logs whose values stay on the
device until something reads them. A callback that overrides a batch-end hook reads
them every batch (a host sync), as in Keras; the callbacks here that only sometimes
look (the progress bar redraws at most every 0.05 s, TensorBoard writes every
`update_freq` batches, ModelCheckpoint saves every `save_freq` batches) set
`_reads_batch_logs_lazily` and read the values only when they use them. So a plain
`fit(verbose=1)` reads the device about 20 times a second, not once per step.
"""

import csv
import json
import math
import os
import shutil
import sys
import time
import warnings

import numpy as np

from gpudl.errors import invalid_value

HOOKS = ("on_batch_begin", "on_batch_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
         "on_predict_batch_end", "on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
         "on_predict_begin", "on_predict_end")


def default(method):
    """Marks a hook of the base class, so that CallbackList can tell which hooks a callback overrides."""
    method._is_default = True
    return method


def overrides(callback, *hooks):
    """Whether `callback` has its own version of any of `hooks` (a subclass method or, as
    LambdaCallback sets them, an instance attribute)."""
    return any(not getattr(getattr(callback, hook), "_is_default", False) for hook in hooks)


class Callback:
    """Base class of callbacks: override the hooks you need.

    Attributes:
        params: dict of fit/evaluate/predict parameters (`verbose`, `epochs`, `steps`).
        model: the model being trained (set by `set_model`).
    """

    params = None
    _model = None
    _reads_batch_logs_lazily = False  # see the module docstring

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    @model.setter
    def model(self, model):
        self._model = model

    @default
    def on_batch_begin(self, batch, logs=None):
        """Alias of `on_train_batch_begin`, kept by Keras for backwards compatibility."""

    @default
    def on_batch_end(self, batch, logs=None):
        """Alias of `on_train_batch_end`, kept by Keras for backwards compatibility."""

    @default
    def on_epoch_begin(self, epoch, logs=None):
        """Start of epoch `epoch` (0-based) in fit."""

    @default
    def on_epoch_end(self, epoch, logs=None):
        """End of epoch `epoch`: `logs` holds the epoch's loss and metrics, and val_* ones."""

    @default
    def on_train_batch_begin(self, batch, logs=None):
        """Start of training batch `batch` (0-based within the epoch)."""
        self.on_batch_begin(batch, logs=logs)

    @default
    def on_train_batch_end(self, batch, logs=None):
        """End of training batch `batch`: `logs` holds the loss and metrics so far this epoch."""
        self.on_batch_end(batch, logs=logs)

    @default
    def on_test_batch_begin(self, batch, logs=None):
        """Start of a batch of evaluate, or of fit's validation."""

    @default
    def on_test_batch_end(self, batch, logs=None):
        """End of a batch of evaluate or of fit's validation: the loss and metrics so far."""

    @default
    def on_predict_batch_begin(self, batch, logs=None):
        """Start of a batch of predict."""

    @default
    def on_predict_batch_end(self, batch, logs=None):
        """End of a batch of predict: `logs["outputs"]` is the batch's output."""

    @default
    def on_train_begin(self, logs=None):
        """Start of fit."""

    @default
    def on_train_end(self, logs=None):
        """End of fit: `logs` are the last epoch's logs."""

    @default
    def on_test_begin(self, logs=None):
        """Start of evaluate, or of fit's validation."""

    @default
    def on_test_end(self, logs=None):
        """End of evaluate or of fit's validation: the final loss and metrics."""

    @default
    def on_predict_begin(self, logs=None):
        """Start of predict."""

    @default
    def on_predict_end(self, logs=None):
        """End of predict."""


def pythonify_logs(logs):
    """Keras's form of logs: a new dict, keys sorted, nested dicts flattened, scalars as
    Python floats (read from the device), arrays as NumPy arrays."""
    from gpudl.backend import get_backend

    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(pythonify_logs(value))
            continue
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            value = get_backend().to_numpy(value)
            if value.ndim == 0:
                value = float(value)
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        result[key] = value
    return result


class CallbackList(Callback):
    """Calls each hook on every callback, in list order (Keras's container).

    Args:
        callbacks: list of callbacks.
        add_history: append a History unless the list has one.
        add_progbar: append a ProgbarLogger unless the list has one.
        model: the model; each callback's `set_model` is called (and `model.history` set).
        **params: passed to each callback's `set_params` (fit: verbose, epochs, steps).

    `needs_train_batch_logs` (and the test/predict twins) say whether some callback reads
    the batch logs every batch; when none does, the batch logs are passed on unread.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks) if callbacks else []
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"CallbackList: every callback must be a gpudl.callbacks.Callback; "
                                f"received {callback!r}.")
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def _needs(self, *hooks):
        return any(overrides(c, *hooks) for c in self.callbacks if not c._reads_batch_logs_lazily)

    @property
    def needs_train_batch_logs(self):
        """Some callback reads the training batch logs every batch."""
        return self._needs("on_train_batch_end", "on_batch_end")

    @property
    def needs_test_batch_logs(self):
        return self._needs("on_test_batch_end")

    @property
    def needs_predict_batch_logs(self):
        return self._needs("on_predict_batch_end")

    def _call(self, hook, *args, logs=None):
        for callback in self.callbacks:
            getattr(callback, hook)(*args, logs=logs)

    def _call_batch_end(self, hook, needed, batch, logs):
        """Batch-end logs are read (pythonified) only when a callback reads every batch's."""
        self._call(hook, batch, logs=pythonify_logs(logs) if needed else (logs if logs is not None else {}))

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs=pythonify_logs(logs))

    def on_batch_end(self, batch, logs=None):
        self._call_batch_end("on_batch_end", self.needs_train_batch_logs, batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=pythonify_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=pythonify_logs(logs))

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=pythonify_logs(logs))

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch_end("on_train_batch_end", self.needs_train_batch_logs, batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=pythonify_logs(logs))

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch_end("on_test_batch_end", self.needs_test_batch_logs, batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=pythonify_logs(logs))

    def on_predict_batch_end(self, batch, logs=None):
        self._call_batch_end("on_predict_batch_end", self.needs_predict_batch_logs, batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=pythonify_logs(logs))

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=pythonify_logs(logs))

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=pythonify_logs(logs))

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=pythonify_logs(logs))

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=pythonify_logs(logs))

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=pythonify_logs(logs))


class History(Callback):
    """Records the epoch logs: `history.history["loss"]` is a list with one value per
    epoch, `history.epoch` the epoch numbers, `history.params` fit's parameters. fit
    returns it and sets `model.history`."""

    def __init__(self):
        super().__init__()
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


def _scalar(value):
    """A log value as a float: a device scalar is read here, an array is averaged."""
    if getattr(value, "ndim", 0) == 0:
        return float(value)
    from gpudl.backend import get_backend

    return float(np.mean(get_backend().to_numpy(value)))


class Progbar:
    """Keras's progress bar, drawn the same way (`8/8 ━━━━━━━━━━━━━━━━━━━━ 0s 23ms/step - loss: 0.1`).

    verbose=1 redraws in place, at most once every `interval` seconds (and at the end);
    verbose=2 prints one line at the end (`8/8 - 0s - 23ms/step - loss: 0.1`). Values of
    metrics in `stateful_metrics` are shown as given; the others are averaged over steps.
    `update` reads the values (a device sync for device scalars) only when it draws, unless
    some metric is averaged.

    Args:
        target: total number of steps, or None if unknown.
        width: bar width in characters.
        verbose: 0 silent, 1 bar, 2 one line.
        interval: minimum seconds between redraws.
        stateful_metrics / stateless_metrics: names shown as given / averaged (give at most one;
            by default every metric is averaged).
        unit_name: "step" or "sample".
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be provided.")
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.stateful_metrics = set(stateful_metrics) if stateful_metrics is not None else None
        self.stateless_metrics = set(stateless_metrics) if stateless_metrics is not None else None
        if self.stateful_metrics is None and self.stateless_metrics is None:
            self.stateful_metrics = set()
        self._dynamic_display = ((hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
                                 or "ipykernel" in sys.modules or "posix" in sys.modules
                                 or "PYCHARM_HOSTED" in os.environ)
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def _is_stateless(self, key):
        if self.stateful_metrics is not None:
            return key not in self.stateful_metrics
        return key in self.stateless_metrics

    def _record(self, current, values, finalize):
        """Keras's bookkeeping: stateful values replace, stateless ones accumulate weighted by steps."""
        for key, value in values:
            if key not in self._values_order:
                self._values_order.append(key)
            if self._is_stateless(key) and not finalize:
                weight = max(current - self._seen_so_far, 1)
                if key in self._values:
                    self._values[key][0] += value * weight
                    self._values[key][1] += weight
                else:
                    self._values[key] = [value * weight, weight]
            else:
                self._values[key] = [value, 1]

    def update(self, current, values=None, finalize=None):
        """Advance to step `current` with `values`: a list of (name, value) or a dict."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)
        draw = self.verbose == 2 and finalize or (
            self.verbose == 1 and (finalize or now - self._last_update >= self.interval))
        averages = self.stateless_metrics is None or bool(self.stateless_metrics)  # some value may be averaged
        if values and (draw or averages):  # else the values are read only when drawn
            self._record(current, values.items() if hasattr(values, "items") else values, finalize)
        self._seen_so_far = current
        if self.verbose == 1 and draw:
            self._draw_bar(current, now, time_per_unit, finalize)
        elif self.verbose == 2 and draw and self.target:
            self._draw_line(current, now, time_per_unit)
        if self.verbose != 1 or draw:
            self._last_update = now

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    def _averages(self, small_by_magnitude):
        """" - name: value" for each metric, Keras's number format."""
        info = ""
        for key in self._values_order:
            total, count = self._values[key]
            average = _scalar(total) / max(1, count)
            small = abs(average) <= 1e-3 if small_by_magnitude else average <= 1e-3
            info += f" - {key}: {average:.4e}" if small else f" - {key}: {average:.4f}"
        return info

    def _draw_bar(self, current, now, time_per_unit, finalize):
        message = ("\b" * self._prev_total_width + "\r") if self._dynamic_display else "\n"
        special = 0  # characters of ANSI escapes, which take no room on screen
        if self.target is not None and self.target > 0:
            digits = int(math.log10(self.target)) + 1
            bar = f"\x1b[1m{current:{digits}d}/{self.target}\x1b[0m "
            special += 8
            done = int(self.width * float(current) / self.target)
            if done > 0:
                bar += f"\33[32m{'━' * done}\x1b[0m"
                special += 9
            bar += f"\33[37m{'━' * (self.width - done)}\x1b[0m"
            special += 9
        else:
            bar = f"{current:7d}/Unknown"
        if self.target is not None and self.target > 0 and not finalize:
            eta = time_per_unit * (self.target - current)
            if eta > 3600:
                eta_text = f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
            elif eta > 60:
                eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                eta_text = f"{int(eta)}s"
            info = f" \x1b[1m{eta_text}\x1b[0m"
        else:
            info = f" \x1b[1m{now - self._start:.0f}s\x1b[0m"
        special += 8
        info += self._format_time(time_per_unit) + self._averages(small_by_magnitude=True)
        total_width = len(bar) + len(info) - special
        padding = " " * max(self._prev_total_width - total_width, 0)
        _print(message + bar + info + padding + ("\n" if finalize else ""))
        self._prev_total_width = total_width

    def _draw_line(self, current, now, time_per_unit):
        digits = int(math.log10(self.target)) + 1
        info = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s -{self._format_time(time_per_unit)}"
        _print(info + self._averages(small_by_magnitude=False) + "\n")

    def _format_time(self, time_per_unit):
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{self.unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1000.0:.0f}ms/{self.unit_name}"
        return f" {time_per_unit * 1000000.0:.0f}us/{self.unit_name}"

    def _estimate_step_duration(self, current, now):
        """Seconds per step, leaving out the first step (compilation, warm-up) once there are more."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit


def _print(message):
    """Write to the current sys.stdout (so redirection and capture see it), as Keras's print_msg."""
    try:
        sys.stdout.write(message)
    except UnicodeEncodeError:  # a terminal without the bar character: Keras 2's "="
        encoding = sys.stdout.encoding or "utf-8"
        sys.stdout.write(message.replace("━", "=").encode(encoding, errors="ignore").decode(encoding))
    sys.stdout.flush()


def _message(text):
    """A callback's message on its own line, as Keras's io_utils.print_msg."""
    _print(text + "\n")


class ProgbarLogger(Callback):
    """Prints progress: with verbose=1 a bar per epoch (and for evaluate and predict), with
    verbose=2 one line per epoch. fit, evaluate and predict add it when verbose != 0; its
    settings come from their parameters (`verbose`, `epochs`, `steps`)."""

    _reads_batch_logs_lazily = True  # the bar reads the logs only when it redraws

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params["verbose"]
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def on_train_begin(self, logs=None):
        self._called_in_fit = True  # fit's validation draws no bar of its own

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _message(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step",
                                   stateless_metrics=set())

    def _update_progbar(self, batch, logs=None):
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, logs or None, finalize=False)

    def _finalize_progbar(self, logs):
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)


# -- monitoring a quantity ------------------------------------------------------

# Keras's metric directions (the `_direction` of its metric classes), by name
INCREASING = {"accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
              "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "precision", "recall", "auc",
              "prc", "f1_score", "fbeta_score", "r2_score", "cosine_similarity", "iou", "mean_iou",
              "pearson_correlation", "concordance_correlation"}
DECREASING = {"loss", "mse", "mae", "mape", "msle", "rmse", "mean_squared_error", "mean_absolute_error",
              "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "root_mean_squared_error",
              "logcosh", "log_cosh", "hinge", "squared_hinge", "categorical_hinge", "binary_crossentropy",
              "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence", "kld", "poisson",
              "huber"}


def metric_direction(name, metrics=()):
    """"max" or "min" for the monitored `name` (a "val_" prefix is ignored): a metric object
    of that name in `metrics` with Keras's `_direction` ("up"/"down") decides, else Keras's
    direction of the metric of that name; None when unknown."""
    name = name.removeprefix("val_")
    for metric in metrics or ():
        direction = getattr(metric, "_direction", None)
        if getattr(metric, "name", None) == name and direction in ("up", "down"):
            return "max" if direction == "up" else "min"
    if name in INCREASING:
        return "max"
    if name in DECREASING:
        return "min"
    return None


def auto_mode(monitor):
    """"max" for metrics Keras maximizes (accuracy, auc, ...), else "min"."""
    return metric_direction(monitor) or "min"


def check_count(argument, value, callback):
    """A non-negative integer (patience, cooldown), as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise invalid_value(argument, "a non-negative integer", value, callback)
    return int(value)


class BatchCounter:
    """Keras's counting for save_freq=N: `due(batch)` is True every N training batches,
    counted across epochs (a batch index not above the last one starts a new epoch)."""

    def __init__(self, every):
        self.every, self.since_last, self.last_batch = every, 0, None

    def due(self, batch):
        if self.last_batch is None or batch <= self.last_batch:
            self.since_last += batch + 1  # batches are 0-based
        else:
            self.since_last += batch - self.last_batch
        self.last_batch = batch
        if self.since_last >= self.every:
            self.since_last = 0
            return True
        return False


def check_save_freq(save_freq, callback):
    """"epoch" or a positive number of batches."""
    if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer))
                                 or save_freq < 1):
        raise invalid_value("save_freq", "'epoch' or a positive integer (a number of batches)", save_freq,
                            callback)
    return save_freq


class MonitorCallback(Callback):
    """Base of callbacks that watch `monitor` in the epoch logs (Keras's MonitorCallback).

    mode "min"/"max", or "auto": "min" for a loss, else the metric's direction (accuracy-like
    metrics rise). A value improves on `reference` when
        min: current + min_delta < reference      max: current - min_delta > reference
    and any value improves on None (nothing seen yet).
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise invalid_value("mode", "one of 'auto', 'min', 'max'", mode, type(self).__name__)
        self.monitor, self.mode, self.best = monitor, mode, baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None
        self._warned = False

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            mode = metric_direction(self.monitor, getattr(self.model, "metrics", None))
            if mode is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but gpudl isn't able "
                    "to automatically determine whether that metric should be maximized or minimized. "
                    "Pass `mode='max'` in order to monitor based on the highest metric value, or pass "
                    "`mode='min'` in order to use the lowest value.")
        self.monitor_op = np.less if mode == "min" else np.greater
        self._signed_delta = -self.min_delta if mode == "min" else self.min_delta

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self._signed_delta, reference_value))

    def _warn_missing(self, message):
        """Keras warns when the monitored key is missing; gpudl warns once per fit."""
        if not self._warned:
            self._warned = True
            warnings.warn(message, stacklevel=3)

    def on_train_begin(self, logs=None):
        self._warned = False


class EarlyStopping(MonitorCallback):
    """Stop training when `monitor` has stopped improving (Keras's rule).

    Each epoch from `start_from_epoch` on counts one more epoch of waiting; an improvement
    (by more than `min_delta`) resets the count, unless `baseline` is given and not beaten.
    Training stops when the count reaches `patience` (never after the first epoch).

    Args:
        monitor: log key to watch. Default "val_loss".
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints when it stops and when it restores weights.
        mode: "auto", "min" or "max".
        baseline: a value the monitored quantity must beat.
        restore_best_weights: end with the weights of the best epoch.
        start_from_epoch: epochs of warm-up during which nothing is watched.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = check_count("patience", patience, "EarlyStopping")
        self.verbose, self.baseline = verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, 0, 0, None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _message(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _message(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            self._warn_missing(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                               f"Available metrics are: {','.join(list(logs.keys()))}")
        return value


def learning_rate_value(optimizer):
    """The optimizer's current learning rate as a float (a schedule's rate at the next step)."""
    rate = optimizer.learning_rate
    if callable(rate) and hasattr(optimizer, "current_learning_rate"):
        return float(optimizer.current_learning_rate())
    return float(rate)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when `monitor` has not improved (by more than
    `min_delta`) for `patience` epochs, then wait `cooldown` epochs; never below `min_lr`.
    Adds `learning_rate` (the rate of the epoch) to the epoch logs. Keras's rule, exactly.

    Args:
        monitor: log key to watch. Default "val_loss".
        factor: new_lr = lr * factor, in (0, 1).
        patience: epochs without improvement before reducing.
        verbose: 1 prints each reduction.
        mode: "auto", "min" or "max".
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs after a reduction during which epochs do not count.
        min_lr: lower bound on the learning rate.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0.0 < factor < 1.0:
            raise invalid_value("factor", "a float in (0, 1)", factor, "ReduceLROnPlateau")
        self.factor, self.min_lr, self.verbose = float(factor), float(min_lr), verbose
        self.patience = check_count("patience", patience, "ReduceLROnPlateau")
        self.cooldown = check_count("cooldown", cooldown, "ReduceLROnPlateau")
        self.cooldown_counter, self.wait = 0, 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = learning_rate_value(self.model.optimizer)
        current = logs.get(self.monitor)
        if current is None:
            self._warn_missing(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                               f"available. Available metrics are: {','.join(list(logs.keys()))}.")
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch):
        old_lr = learning_rate_value(self.model.optimizer)
        if not old_lr > self.min_lr:
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        self.model.optimizer.learning_rate = new_lr
        if self.verbose > 0:
            _message(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True


class ModelCheckpoint(MonitorCallback):
    """Save the model (or its weights) after every epoch, every `save_freq` batches, or only
    when `monitor` improves.

    `filepath` may hold "{epoch:02d}" (1-based) and log keys such as "{val_loss:.2f}"; with
    save_freq batches, "{batch}" (1-based) too. A `.keras` path writes a Keras 3 archive,
    another path gpudl's `.npz` (which also resumes training exactly); with
    save_weights_only the path must end in ".weights.h5" (Keras's rule).

    Args:
        filepath: where to save (a format string).
        monitor: log key for save_best_only. Default "val_loss".
        verbose: 1 prints each save.
        save_best_only: save only when `monitor` improves; if it is missing from the logs,
            warn and save anyway (Keras).
        save_weights_only: model.save_weights instead of model.save.
        mode: "auto", "min" or "max".
        save_freq: "epoch" or a number of batches.
        initial_value_threshold: the value to beat at first (save_best_only).
    """

    _reads_batch_logs_lazily = True  # reads the batch logs only on the batches it saves at

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        self.save_freq = check_save_freq(save_freq, "ModelCheckpoint")
        self._batches = None if save_freq == "epoch" else BatchCounter(save_freq)
        self._current_epoch = 0
        if save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided "
                             "must end in `.weights.h5` (Keras weights format). Received: "
                             f"filepath={self.filepath}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._batches is not None and self._batches.due(batch):
            self._save_model(self._current_epoch, batch, pythonify_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                _message(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            self._warn_missing(f"Can save best model only with {self.monitor} available.")
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _message(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                         f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _message(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an "
                          f"existing directory: {filepath}")
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            _message(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as error:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}') from None


class LambdaCallback(Callback):
    """A callback from functions: on_epoch_begin/on_epoch_end(epoch, logs),
    on_train_begin/on_train_end(logs), on_train_batch_begin/on_train_batch_end(batch, logs);
    other hooks by keyword (e.g. on_test_end=lambda logs: ...)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - set(HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback got unknown hooks {unknown}; known: {', '.join(HOOKS)}.")
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for name, function in hooks.items():
            if function is not None:
                setattr(self, name, function)


class BackupAndRestore(Callback):
    """Back up the whole training state to `backup_dir` after every epoch (or every
    `save_freq` batches), and resume from it when fit is run again after a crash.

    The backup is gpudl's exact-resume file (weights, optimizer slots and step, dropout
    counters, epochs done; written atomically) plus Keras's training_metadata.json. On
    train begin an existing backup is loaded into the model and fit starts at the epoch
    after the last one backed up (`model._initial_epoch`), so a run interrupted at an
    epoch boundary and resumed ends with the weights an uninterrupted run gives (the same
    model seed is needed for the same shuffling and dropout; a different one is warned
    about). A backup made mid-epoch (save_freq batches) resumes at the start of that epoch
    from the mid-epoch weights, as in Keras. After a successful fit the backup is deleted
    (`delete_checkpoint`).

    Args:
        backup_dir: directory of the backup (made if missing).
        save_freq: "epoch" or a number of batches.
        double_checkpoint: also keep the previous backup (`.bkp`), used if the latest is unreadable.
        delete_checkpoint: delete `backup_dir` when fit completes.
    """

    _reads_batch_logs_lazily = True  # counts batches, never reads their logs

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise invalid_value("backup_dir", "a directory path", backup_dir, "BackupAndRestore")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = check_save_freq(save_freq, "BackupAndRestore")
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self._model_path = os.path.join(self.backup_dir, "latest.npz")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._batches = None if save_freq == "epoch" else BatchCounter(save_freq)
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        try:
            self._load()
        except (OSError, ValueError):
            previous = self._model_path + ".bkp"
            if not os.path.exists(previous):
                raise
            shutil.copyfile(previous, self._model_path)
            if os.path.exists(self._metadata_path + ".bkp"):
                shutil.copyfile(self._metadata_path + ".bkp", self._metadata_path)
            self._load()

    def _load(self):
        from gpudl.saving import load_model

        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, your model must be built before you call "
                             f"`fit()`. Model '{self.model.name}' is unbuilt.")
        if os.path.exists(self._model_path):
            restore_training_state(self.model, load_model(self._model_path))
        if os.path.exists(self._metadata_path):
            with open(self._metadata_path) as f:
                self.model._initial_epoch = json.load(f)["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self._batches is None:
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self._batches is not None and self._batches.due(batch):
            self._save()

    def _save(self):
        from gpudl.saving import save_model, write_atomically

        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path in (self._model_path, self._metadata_path):
                if os.path.exists(path):
                    shutil.copyfile(path, path + ".bkp")
        save_model(self.model, self._model_path)
        batch = self._batches.last_batch if self._batches is not None else 0
        metadata = json.dumps({"epoch": self._current_epoch, "batch": batch}).encode("utf-8")
        write_atomically(self._metadata_path, lambda f: f.write(metadata))

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def restore_training_state(model, saved):
    """Copy into `model` the training state of `saved` (a model loaded from gpudl's npz):
    weights, optimizer learning rate (when a number), step and slots, dropout counters, epochs done."""
    if saved.seed != model.seed:
        warnings.warn(f"BackupAndRestore: the backup was made by a model with seed={saved.seed}, this model has "
                      f"seed={model.seed}; the resumed epochs will shuffle (and drop out) differently from the "
                      f"interrupted run. Fix the seed (Sequential(seed=...) or gpudl.utils.set_random_seed) for "
                      f"an exact resume.", stacklevel=3)
    model.set_weights(saved.get_weights())
    model.epochs_done = saved.epochs_done
    from gpudl.frontend.layers.dropout import Dropout

    for layer, saved_layer in zip(_leaf_layers(model), _leaf_layers(saved)):
        if isinstance(layer, Dropout):
            layer.calls = saved_layer.calls
    if getattr(model, "compiled", False) and getattr(saved, "compiled", False):
        optimizer, saved_optimizer = model.optimizer, saved.optimizer
        if not callable(saved_optimizer._learning_rate) and not callable(optimizer._learning_rate):
            optimizer.learning_rate = learning_rate_value(saved_optimizer)
        if optimizer.slot_names and not optimizer.slots:
            optimizer.build(model.arena)
        for name in optimizer.slot_names:
            if name in saved_optimizer.slots:
                optimizer.slots[name][...] = saved_optimizer.slots[name]
        optimizer.iterations = saved_optimizer.iterations


def _leaf_layers(model):
    return model._leaves() if hasattr(model, "_leaves") else model.layers


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or inf (with raise_error=True, raise instead).
    It reads the loss every batch (a device sync per step)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   f"Terminating training immediately.")
            _message(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write one CSV row per epoch: `epoch`, then the log keys in sorted order. Without
    validation data the header still has a val_* column per key, filled with "NA", so the
    columns stay the same when validation comes later (Keras). append=True continues a file.

    Args:
        filename: the CSV file.
        separator: the column separator.
        append: append to an existing file (its header is kept) instead of overwriting it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep, self.filename, self.append = separator, os.fspath(filename), append
        self.writer, self.keys, self.csv_file, self.append_header = None, None, None, True

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{key}" for key in self.keys])
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{key: _csv_value(logs.get(key, "NA")) for key in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    """Keras's cell: a string or number as is, a list as "[a, b]"."""
    if isinstance(value, str) or not hasattr(value, "__iter__") or getattr(value, "ndim", 1) == 0:
        return value
    return f'"[{", ".join(map(str, value))}]"'


class LearningRateScheduler(Callback):
    """At each epoch's start set the learning rate to `schedule(epoch, lr)` (or
    `schedule(epoch)`), which must return a float; adds `learning_rate` to the epoch logs.

    Args:
        schedule: function of the 0-based epoch (and the current rate) giving the new rate.
        verbose: 1 prints each change.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise invalid_value("schedule", "a function (epoch, lr) -> float", schedule, "LearningRateScheduler")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, learning_rate_value(optimizer))
        except TypeError:  # a schedule of the epoch alone (Keras's old API)
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            _message(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs:  # Keras adds the key only to non-empty logs
            logs["learning_rate"] = learning_rate_value(self.model.optimizer)


class TensorBoard(Callback):
    """Write TensorBoard event files (through tensorboardX: pip install "gpudl[tensorboard]").

    As Keras: per epoch, the train logs (and the learning rate) go to `log_dir/train` and
    the val_* logs, without the prefix, to `log_dir/validation`, as scalars tagged
    `epoch_loss`, `epoch_accuracy`, ... at step = epoch; each validation also writes
    `evaluation_<name>_vs_iterations` at the optimizer's step. With update_freq="batch" or N,
    the training batch logs are written as `batch_<name>` every N batches (step = batches
    seen in this fit, from 1). histogram_freq=N writes a histogram of every weight every N
    epochs (`<layer>/<weight>/histogram`).

    Args:
        log_dir: root directory of the event files.
        histogram_freq: epochs between weight histograms (0: none).
        write_graph: accepted for Keras scripts; gpudl has no computation graph to write.
        write_steps_per_second: also write `epoch_steps_per_second`.
        update_freq: "epoch", "batch" or a number of batches.
        write_images, profile_batch, embeddings_freq, embeddings_metadata: Keras's; gpudl
            supports only their defaults (no images, profiler or embedding layers).
    """

    _reads_batch_logs_lazily = True  # reads the batch logs only on the batches it writes

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        try:
            import tensorboardX
        except ImportError as error:
            raise ImportError('TensorBoard needs tensorboardX: pip install "gpudl[tensorboard]"') from error
        self._summary_writer = tensorboardX.SummaryWriter
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, (int, np.integer))
                                       or update_freq < 1):
            raise invalid_value("update_freq", "'epoch', 'batch' or a positive integer", update_freq, "TensorBoard")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, (int, np.integer)) or histogram_freq < 0:
            raise invalid_value("histogram_freq", "a non-negative integer", histogram_freq, "TensorBoard")
        for argument, value, supported in (("write_images", write_images, False), ("profile_batch", profile_batch, 0),
                                           ("embeddings_freq", embeddings_freq, 0),
                                           ("embeddings_metadata", embeddings_metadata, None)):
            if value != supported:
                raise invalid_value(argument, f"{supported!r} (gpudl's TensorBoard writes scalars and weight "
                                    f"histograms only)", value, "TensorBoard")
        self.log_dir, self.histogram_freq, self.write_graph = os.fspath(log_dir), int(histogram_freq), write_graph
        self.write_steps_per_second, self.update_freq = write_steps_per_second, update_freq
        self._writers = {}
        self._global_train_batch, self._global_test_batch = 0, 0

    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = self._summary_writer(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        writer = self._writer("train")
        for name, value in pythonify_logs(logs).items():
            writer.add_scalar(f"batch_{name}", value, global_step=self._global_train_batch)

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "iterations"):
            return
        writer, step = self._writer("validation"), optimizer.iterations
        for name, value in (logs or {}).items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", value, global_step=step)

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start = time.time()
            self._epoch_start_iterations = self.model.optimizer.iterations

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if logs and getattr(self.model, "optimizer", None) is not None:
            train["learning_rate"] = learning_rate_value(self.model.optimizer)
        if logs and self.write_steps_per_second:
            steps = self.model.optimizer.iterations - self._epoch_start_iterations
            train["steps_per_second"] = steps / (time.time() - self._epoch_start)
        for which, scalars in (("train", train), ("validation", validation)):
            if scalars:
                writer = self._writer(which)
                for name, value in scalars.items():
                    writer.add_scalar(f"epoch_{name}", value, global_step=epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch):
        from gpudl.backend import get_backend

        writer = self._writer("train")
        for layer in _leaf_layers(self.model):
            for weight in layer.weights:
                path = getattr(weight, "path", f"{layer.name}/{weight.name}").replace(":", "_")
                writer.add_histogram(f"{path}/histogram", get_backend().to_numpy(weight.value), global_step=epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class LearningCurves(Callback):
    """Redraw a PNG of train and dev loss and metrics after every epoch, for someone
    babysitting a run ("panda"). With `csv_log` (a CSVLogger file), the curves of earlier
    runs that the file holds are drawn too, so a resumed run shows its whole history.
    Needs matplotlib (pip install gpudl[plot])."""

    def __init__(self, path, csv_log=None):
        super().__init__()
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
                    values = {k: math.nan if v in ("NA", "", None) else float(v) for k, v in row.items()}
                    self._append(int(values.pop("epoch")), values)

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
