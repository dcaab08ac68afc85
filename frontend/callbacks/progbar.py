"""Progbar (Keras's progress bar), ProgbarLogger, and the printing helpers callbacks share."""

import math
import os
import sys
import time

import numpy as np

from gpudl import collectives
from gpudl.frontend.callbacks.callback import Callback


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
    """Write to the current sys.stdout (so redirection and capture see it), as Keras's print_msg;
    in a data-parallel run, on rank 0 only."""
    if not collectives.is_rank_zero():
        return
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
