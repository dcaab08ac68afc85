"""After the TensorFlow tutorial "Basic regression: Predict fuel efficiency"
(tensorflow/docs site/en/tutorials/keras/regression.ipynb), in Keras 3: Normalization
adapted on the training features, a multi-feature linear model (fixed weights, then
trained), a DNN regressor trained with mean absolute error and validation_split, test
results collected from evaluate, and the DNN saved to `.keras` and reloaded. Synthetic
auto-mpg-like data; `np.asarray` where the tutorial calls `.numpy()` on a TF tensor."""

import json

import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)
n = 320
features = np.stack(
    [rng.integers(3, 9, n), rng.normal(190, 100, n), rng.normal(104, 38, n), rng.normal(2970, 850, n),
     rng.normal(15.5, 2.8, n), rng.integers(70, 83, n), rng.integers(0, 2, n), rng.integers(0, 2, n)],
    axis=1,
).astype("float32")
labels = (46 - 0.12 * features[:, 2] - 0.002 * features[:, 3] + rng.normal(0, 2, n)).astype("float32")
train_features, test_features = features[:256], features[256:]
train_labels, test_labels = labels[:256], labels[256:]
out = {}
test_results = {}

normalizer = layers.Normalization(axis=-1)
normalizer.adapt(np.array(train_features))
out["normalizer_mean"] = np.asarray(normalizer.mean).ravel().tolist()
out["normalizer_variance"] = np.asarray(normalizer.variance).ravel().tolist()
out["normalizer_mean_shape"] = list(np.asarray(normalizer.mean).shape)
first = np.array(train_features[:1])
out["normalized_first"] = np.asarray(normalizer(first)).ravel().tolist()
out["normalized_first_shape"] = list(np.asarray(normalizer(first)).shape)

# Many features: a linear model on the shared normalizer.
linear_model = keras.Sequential([normalizer, layers.Dense(units=1)])
out["linear_predict_shape"] = list(linear_model.predict(train_features[:10], verbose=0).shape)
out["linear_kernel_shape"] = list(linear_model.layers[1].kernel.shape)
linear_model.layers[1].set_weights([np.linspace(-1, 1, 8, dtype="float32").reshape(8, 1), np.array([23.0], "float32")])
linear_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error")
out["linear_fixed_weights_mae"] = linear_model.evaluate(test_features, test_labels, verbose=0)
out["linear_fixed_weights_predict"] = linear_model.predict(test_features[:3], verbose=0).ravel().tolist()
history = linear_model.fit(train_features, train_labels, epochs=10, verbose=0, validation_split=0.2)
test_results["linear_model"] = linear_model.evaluate(test_features, test_labels, verbose=0)


def build_and_compile_model(norm):
    model = keras.Sequential(
        [norm, layers.Dense(64, activation="relu"), layers.Dense(64, activation="relu"), layers.Dense(1)]
    )
    model.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(0.001))
    return model


dnn_model = build_and_compile_model(normalizer)
dnn_model.summary()
history = dnn_model.fit(train_features, train_labels, validation_split=0.2, verbose=0, epochs=10)
test_results["dnn_model"] = dnn_model.evaluate(test_features, test_labels, verbose=0)
test_predictions = dnn_model.predict(test_features, verbose=0).flatten()
out["test_predictions_shape"] = list(test_predictions.shape)
out["test_results_types"] = {k: type(v).__name__ for k, v in test_results.items()}
out["dnn_history_lengths"] = {k: len(v) for k, v in history.history.items()}

dnn_model.save("dnn_model.keras")
reloaded = keras.models.load_model("dnn_model.keras")
out["reloaded_evaluate_equal"] = bool(
    np.isclose(reloaded.evaluate(test_features, test_labels, verbose=0), test_results["dnn_model"], rtol=1e-5)
)
out["reloaded_layers"] = [type(layer).__name__ for layer in reloaded.layers]

print(json.dumps(out))
