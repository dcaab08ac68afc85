"""After the classic keras/examples/mnist_mlp.py: labels one-hot encoded with
keras.utils.to_categorical, two Dense(512) + Dropout(0.2) hidden layers, summary,
categorical cross-entropy with RMSprop and accuracy, fit with validation_data and
verbose=2 (one line per epoch), `score = model.evaluate(...)`. Synthetic 784-feature
data, smaller sizes."""

import contextlib
import io
import json
import re

import numpy as np

import keras
from keras.layers import Dense, Dropout
from keras.models import Sequential
from keras.optimizers import RMSprop

keras.utils.set_random_seed(5)
batch_size = 128
num_classes = 10
epochs = 3

rng = np.random.default_rng(5)
x_train = rng.integers(0, 256, (512, 784)).astype("float32") / 255
x_test = rng.integers(0, 256, (200, 784)).astype("float32") / 255
y_train = rng.integers(0, 10, 512)
y_test = rng.integers(0, 10, 200)
print(x_train.shape[0], "train samples")

y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)
out = {"to_categorical_shape": list(y_train.shape), "to_categorical_dtype": str(y_train.dtype),
       "to_categorical_type": type(y_train).__name__}

model = Sequential()
model.add(Dense(512, activation="relu", input_shape=(784,)))
model.add(Dropout(0.2))
model.add(Dense(512, activation="relu"))
model.add(Dropout(0.2))
model.add(Dense(num_classes, activation="softmax"))
model.summary()
out["layer_classes"] = [type(layer).__name__ for layer in model.layers]
out["count_params"] = model.count_params()
out["dropout_rate"] = model.layers[1].rate

model.compile(loss="categorical_crossentropy", optimizer=RMSprop(), metrics=["accuracy"])
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=2,
                        validation_data=(x_test, y_test))
lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
# Timings and values vary; keep the shape of each line.
out["verbose2_lines"] = [re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?(us|ms|s)?", "N", line) for line in lines]

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
out["score_len"] = len(score)
out["history_keys"] = sorted(history.history)
out["evaluate_deterministic"] = model.evaluate(x_test, y_test, verbose=0) == score
predicted = model.predict(x_test, verbose=0)
out["predict_shape"] = list(predicted.shape)
out["accuracy_matches_predict"] = bool(
    np.isclose(score[1], (predicted.argmax(axis=1) == y_test.argmax(axis=1)).mean(), atol=1e-6)
)
out["predict_deterministic"] = bool(np.array_equal(predicted, model.predict(x_test, verbose=0)))

print(json.dumps(out))
