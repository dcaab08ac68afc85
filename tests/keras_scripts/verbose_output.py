"""What fit, evaluate and predict print with their default `verbose="auto"` (and fit's
verbose=1 and 2) when stdout is not a terminal, as in a script whose output goes to a
log file: Keras's progress bar (keras/src/utils/progbar.py) and ModelCheckpoint's and
EarlyStopping's verbose messages. What a log file finally shows is kept: for each line,
the text after its last carriage return (the bar's last redraw; how many redraws a
line holds depends on timing), without colour codes and backspaces, with every number
replaced by N (numbers and time units vary from run to run)."""

import contextlib
import io
import json
import re

import numpy as np

import keras

keras.utils.set_random_seed(18)
rng = np.random.default_rng(18)
x = rng.random((100, 4)).astype("float32")
y = (x.sum(axis=1) > 2).astype("float32")
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])


def printed(call):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        call()
    lines = [line.split("\r")[-1] for line in buffer.getvalue().split("\n")]
    lines = [re.sub(r"\x1b\[[0-9;]*m|\x08", "", line) for line in lines]
    lines = [re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", line) for line in lines]
    lines = [re.sub(r"\bN(us|ms|s)\b", "N", line) for line in lines]
    return [line.rstrip() for line in lines if line.strip()]


out = {}
out["fit_auto"] = printed(lambda: model.fit(x, y, epochs=2, batch_size=32, validation_split=0.2))
out["fit_verbose_1"] = printed(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=1))
out["fit_verbose_2"] = printed(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=2))
out["evaluate_auto"] = printed(lambda: model.evaluate(x, y))
out["predict_auto"] = printed(lambda: model.predict(x))
out["checkpoint_verbose"] = printed(lambda: model.fit(
    x, y, epochs=2, validation_split=0.2, verbose=0,
    callbacks=[keras.callbacks.ModelCheckpoint("best.weights.h5", save_weights_only=True, save_best_only=True,
                                               verbose=1)]))
out["early_stopping_verbose"] = printed(lambda: model.fit(
    x, y, epochs=3, verbose=0,
    callbacks=[keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, verbose=1)]))

print(json.dumps(out))
