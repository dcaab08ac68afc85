"""Keras 3's built-in callbacks on a loss that cannot move (SGD with a learning rate of
1e-9; the monitors' min_delta is 1e-4 or more, far above the loss's rounding drift), so
every decision they take is fixed: ReduceLROnPlateau with patience, cooldown and min_lr
(the rates logged in the history and its verbose messages), EarlyStopping with
start_from_epoch and with an unreachable baseline, ModelCheckpoint every 2 batches with
`{epoch:02d}` and `{batch}` in the name and with initial_value_threshold, CSVLogger
appending with a `;` separator, and LearningRateScheduler's verbose message
(keras/src/callbacks/*.py)."""

import contextlib
import io
import json
import os
import re

import numpy as np

import keras

keras.utils.set_random_seed(26)
rng = np.random.default_rng(26)
x = rng.normal(0, 1, (40, 3)).astype("float32")
y = rng.normal(0, 1, (40, 1)).astype("float32")


def frozen_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-9), loss="mse")
    return model


def printed(call):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = call()
    lines = [re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", line) for line in buffer.getvalue().splitlines() if line.strip()]
    return result, lines


out = {}
model = frozen_model()
reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=2e-10,
                                              verbose=1)
history, lines = printed(lambda: model.fit(x, y, batch_size=20, epochs=10, callbacks=[reduce_lr], verbose=0))
out["reduce_lr_rates_over_initial"] = [rate / 1e-9 for rate in history.history["learning_rate"]]
out["reduce_lr_messages"] = lines
out["final_rate_over_initial"] = float(np.asarray(model.optimizer.learning_rate)) / 1e-9

model = frozen_model()
history = model.fit(x, y, batch_size=20, epochs=10, verbose=0,
                    callbacks=[keras.callbacks.EarlyStopping(monitor="loss", patience=2, start_from_epoch=3,
                                                                  min_delta=1e-3)])
out["start_from_epoch_epochs"] = len(history.history["loss"])
model = frozen_model()
stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=3, baseline=0.0, restore_best_weights=True,
                                        min_delta=1e-3)
history = model.fit(x, y, batch_size=20, epochs=10, verbose=0, callbacks=[stopper])
out["baseline_epochs"] = len(history.history["loss"])
out["baseline_stopped_epoch"] = stopper.stopped_epoch

model = frozen_model()
checkpoint = keras.callbacks.ModelCheckpoint("ckpt_{epoch:02d}_{batch}.weights.h5", save_weights_only=True, save_freq=2)
model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[checkpoint])
out["batch_checkpoints"] = sorted(f for f in os.listdir(".") if f.startswith("ckpt_"))
threshold = keras.callbacks.ModelCheckpoint("best.keras", monitor="loss", save_best_only=True,
                                            initial_value_threshold=0.0)
model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[threshold])
out["threshold_blocked_save"] = not os.path.exists("best.keras")

model = frozen_model()
model.fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.CSVLogger("log.csv", separator=";")])
model.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.CSVLogger("log.csv", separator=";", append=True)])
with open("log.csv") as f:
    rows = f.read().splitlines()
out["csv_header"] = rows[0]
out["csv_epochs"] = [row.split(";")[0] for row in rows[1:]]

scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)
_, lines = printed(lambda: frozen_model().fit(x, y, epochs=2, verbose=0, callbacks=[scheduler]))
out["scheduler_messages"] = lines

print(json.dumps(out))
