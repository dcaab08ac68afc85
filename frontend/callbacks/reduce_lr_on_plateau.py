"""ReduceLROnPlateau callback."""

from gpudl.errors import check_count, invalid_value
from gpudl.frontend.callbacks.callback import learning_rate_value
from gpudl.frontend.callbacks.monitor_callback import MonitorCallback
from gpudl.frontend.callbacks.progbar import _message


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
