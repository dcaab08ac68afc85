"""The example in Keras 3's LearningRateScheduler docstring
(keras/src/callbacks/learning_rate_scheduler.py): keep the rate for 10 epochs, then
decay it by exp(-0.1) per epoch; `round(model.optimizer.learning_rate, 5)` before and
after. `math.exp` where the docstring writes `ops.exp` (gpudl has no keras.ops), and
targets np.zeros((5, 10)) where it writes np.zeros(5): with fit's default batch of 32 the
five (5,) targets do not broadcast against the (5, 10) outputs in Keras 3.15 itself
("Incompatible shapes for broadcasting: shapes=[(5,), (5, 10)]" on JAX)."""

import json
import math

import numpy as np

import keras

keras.utils.set_random_seed(14)


def scheduler(epoch, lr):
    if epoch < 10:
        return lr
    else:
        return lr * math.exp(-0.1)


model = keras.models.Sequential([keras.layers.Dense(10)])
model.compile(keras.optimizers.SGD(), loss="mse")
out = {"rate_before": float(round(model.optimizer.learning_rate, 5))}
callback = keras.callbacks.LearningRateScheduler(scheduler)
history = model.fit(np.arange(100).reshape(5, 20), np.zeros((5, 10)), epochs=15, callbacks=[callback], verbose=0)
out["rate_after"] = float(round(model.optimizer.learning_rate, 5))
out["history_keys"] = sorted(history.history)
out["history_learning_rate"] = history.history["learning_rate"]

print(json.dumps(out))
