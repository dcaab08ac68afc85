"""After the TensorFlow tutorials "TensorFlow 2 quickstart for beginners" and "Basic
classification: Classify images of clothing" (tensorflow/docs site/en/tutorials/quickstart/
beginner.ipynb, keras/classification.ipynb), in Keras 3: 28x28 images flattened by
Flatten(input_shape=(28, 28)), Dense(128, relu), Dropout(0.2), Dense(10) logits;
calling the untrained model on one image, softmax of the logits, the loss of those
logits, compile with SparseCategoricalCrossentropy(from_logits=True), fit, evaluate with
verbose=2, and a probability model Sequential([model, Softmax()]) for predict and for a
single image with np.expand_dims. Synthetic 28x28 uint8 images; np.asarray where the
tutorials call `.numpy()` on TF tensors, keras.activations.softmax for tf.nn.softmax."""

import contextlib
import io
import json
import re

import numpy as np

import keras

keras.utils.set_random_seed(21)
rng = np.random.default_rng(21)
x_train = rng.integers(0, 256, (300, 28, 28)).astype("uint8")
y_train = rng.integers(0, 10, 300).astype("uint8")
x_test = rng.integers(0, 256, (100, 28, 28)).astype("uint8")
y_test = rng.integers(0, 10, 100).astype("uint8")
x_train, x_test = x_train / 255.0, x_test / 255.0
out = {}

model = keras.models.Sequential([
    keras.layers.Flatten(input_shape=(28, 28)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10),
])
predictions = np.asarray(model(x_train[:1]))
out["logits_shape"] = list(predictions.shape)
probabilities = np.asarray(keras.activations.softmax(predictions))
out["softmax_sums_to_one"] = bool(np.isclose(probabilities.sum(), 1.0, atol=1e-5))
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
initial_loss = float(np.asarray(loss_fn(y_train[:1], predictions)))
out["initial_loss_matches_softmax"] = bool(np.isclose(initial_loss, -np.log(probabilities[0, y_train[0]]), rtol=1e-4))

model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=2, verbose=0)
out["history_keys"] = sorted(history.history)
out["input_shape"] = list(model.input_shape)

buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
out["evaluate_verbose_2"] = [re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?(us|ms|s)?", "N", line)
                             for line in buffer.getvalue().splitlines() if line.strip()]
print("\nTest accuracy:", test_acc)

probability_model = keras.Sequential([model, keras.layers.Softmax()])
predictions = probability_model.predict(x_test, verbose=0)
out["probability_predict_shape"] = list(predictions.shape)
out["probability_rows_sum_to_one"] = bool(np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5))
out["argmax_type"] = type(np.argmax(predictions[0])).__name__
img = x_test[1]
img = np.expand_dims(img, 0)
predictions_single = probability_model.predict(img, verbose=0)
out["single_shape"] = list(predictions_single.shape)
out["single_matches_batch"] = bool(np.allclose(predictions_single[0], predictions[1], atol=1e-6))
out["called_probabilities_shape"] = list(np.asarray(probability_model(x_test[:5])).shape)

print(json.dumps(out))
