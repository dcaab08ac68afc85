"""MonitorCallback, the base of callbacks that watch a quantity of the epoch logs; Keras's
metric directions; save_freq counting (ModelCheckpoint, BackupAndRestore)."""

import warnings

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend.callbacks.callback import Callback


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
