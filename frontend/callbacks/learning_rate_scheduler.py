"""LearningRateScheduler callback."""

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend.callbacks.callback import Callback, learning_rate_value
from gpudl.frontend.callbacks.progbar import _message


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
