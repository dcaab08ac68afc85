"""After the TensorFlow tutorial "Basic regression: Predict fuel efficiency"
(tensorflow/docs site/en/tutorials/keras/regression.ipynb), in Keras 3, its one-feature
part: a Normalization(input_shape=[1], axis=None) adapted on the 1-D horsepower column,
a linear model on it fitted and evaluated on 1-D inputs, and predictions along a 1-D
np.linspace line. Synthetic auto-mpg-like data."""

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

# One feature: horsepower.
horsepower = np.array(train_features[:, 2])
horsepower_normalizer = layers.Normalization(input_shape=[1], axis=None)
horsepower_normalizer.adapt(horsepower)
out["horsepower_mean"] = np.asarray(horsepower_normalizer.mean).ravel().tolist()
out["horsepower_variance"] = np.asarray(horsepower_normalizer.variance).ravel().tolist()
horsepower_model = keras.Sequential([horsepower_normalizer, layers.Dense(units=1)])
horsepower_model.summary()
out["horsepower_predict_shape"] = list(horsepower_model.predict(horsepower[:10], verbose=0).shape)
horsepower_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error")
history = horsepower_model.fit(train_features[:, 2], train_labels, epochs=10, verbose=0, validation_split=0.2)
out["horsepower_history_keys"] = sorted(history.history)
out["horsepower_history_epoch"] = history.epoch
test_results = {}
test_results["horsepower_model"] = horsepower_model.evaluate(test_features[:, 2], test_labels, verbose=0)
x = np.linspace(0.0, 250, 251)
y = horsepower_model.predict(x, verbose=0)
out["line_predict_shape"] = list(y.shape)
out["test_results_types"] = {k: type(v).__name__ for k, v in test_results.items()}

print(json.dumps(out))
