"""After the classic "first deep learning project in Python with Keras" Pima Indians
diabetes classifier (machinelearningmastery.com): Sequential built with `add` and
`input_dim`, binary cross-entropy with Adam and accuracy, fit with batch_size=10,
`_, accuracy = model.evaluate(X, y)`, rounded predictions, and model.summary() (also
written to a file through `print_fn`).
Synthetic data with the dataset's shape (768 rows, 8 features, 0/1 outcome)."""

import contextlib
import io
import json
import re

import numpy as np
from keras.layers import Dense
from keras.models import Sequential

import keras

keras.utils.set_random_seed(4)
rng = np.random.default_rng(4)
dataset = np.concatenate([rng.normal(0, 1, (768, 8)), np.zeros((768, 1))], axis=1)
dataset[:, 8] = (dataset[:, 0] + 0.5 * dataset[:, 1] - dataset[:, 5] > 0).astype(float)
X = dataset[:, 0:8]
y = dataset[:, 8]

model = Sequential()
model.add(Dense(12, input_dim=8, activation="relu"))
model.add(Dense(8, activation="relu"))
model.add(Dense(1, activation="sigmoid"))
out = {"input_shape": list(model.input_shape), "output_shape": list(model.output_shape), "built": model.built}

buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    model.summary()
out["summary_param_lines"] = [line.strip(" │┃") for line in buffer.getvalue().splitlines() if "params:" in line]

with open("modelsummary.txt", "w") as fh:
    model.summary(print_fn=lambda x: fh.write(x + "\n"))
with open("modelsummary.txt") as fh:
    out["summary_file_param_lines"] = [line.strip(" │┃") for line in fh.read().splitlines() if "params:" in line]

model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(X, y, epochs=3, batch_size=10, verbose=0)
_, accuracy = model.evaluate(X, y, verbose=0)
print("Accuracy: %.2f" % (accuracy * 100))
out["accuracy_type"] = type(accuracy).__name__
out["history_keys"] = sorted(history.history)
out["history_params"] = {k: history.params[k] for k in sorted(history.params)}

probabilities = model.predict(X, verbose=0)
predictions = (probabilities > 0.5).astype(int)
for i in range(5):
    print("%s => %d (expected %d)" % (X[i].tolist(), predictions[i][0], y[i]))
out["predictions_shape"] = list(predictions.shape)
out["probabilities_dtype"] = str(probabilities.dtype)
out["probabilities_in_unit_interval"] = bool(((probabilities >= 0) & (probabilities <= 1)).all())
out["accuracy_matches_predictions"] = bool(np.isclose(accuracy, (predictions[:, 0] == y).mean(), atol=1e-6))

buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    model.summary()
out["summary_param_lines_after_fit"] = [
    re.sub(r"\s+", " ", line.strip(" │┃")) for line in buffer.getvalue().splitlines() if "params:" in line
]

print(json.dumps(out))
