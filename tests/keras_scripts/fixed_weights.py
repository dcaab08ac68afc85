"""Numbers that must equal Keras's when the weights are the same: a small binary
classifier gets fixed weights through model.set_weights (the Keras FAQ way of
transplanting weights), then predict, evaluate with and without sample_weight and with
return_dict and weighted_metrics, test_on_batch/predict_on_batch, and training steps with plain SGD and SGD
with momentum (train_on_batch, and fit with class_weight and shuffle=False)."""

import json

import numpy as np

import keras

rng = np.random.default_rng(7)
x = rng.normal(0, 1, (40, 3)).astype("float32")
y = (x[:, 0] - x[:, 1] > 0).astype("float32").reshape(-1, 1)
sample_weight = rng.uniform(0.5, 2.0, 40).astype("float32")
weights = [
    np.linspace(-0.8, 0.9, 12, dtype="float32").reshape(3, 4),
    np.array([0.1, -0.1, 0.05, 0.0], dtype="float32"),
    np.array([[0.7], [-0.6], [0.5], [-0.4]], dtype="float32"),
    np.array([0.05], dtype="float32"),
]


def make_model(optimizer, metrics=("accuracy",), weighted_metrics=None):
    model = keras.Sequential([
        keras.Input(shape=(3,)),
        keras.layers.Dense(4, activation="tanh"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=list(metrics),
                  weighted_metrics=weighted_metrics)
    model.set_weights(weights)
    return model


def flat(arrays):
    return np.concatenate([np.asarray(a, dtype="float64").ravel() for a in arrays]).tolist()


out = {}
model = make_model(keras.optimizers.SGD(learning_rate=0.1))
out["predict"] = model.predict(x[:5], verbose=0).ravel().tolist()
out["evaluate"] = model.evaluate(x, y, batch_size=16, verbose=0)
out["evaluate_weighted"] = model.evaluate(x, y, batch_size=16, sample_weight=sample_weight, verbose=0)
out["test_on_batch"] = model.test_on_batch(x, y)
out["predict_on_batch"] = np.asarray(model.predict_on_batch(x[:3])).ravel().tolist()
out["train_on_batch"] = model.train_on_batch(x, y)
out["sgd_weights_after_one_step"] = flat(model.get_weights())

model = make_model(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))
for _ in range(3):
    model.train_on_batch(x, y)
out["momentum_weights_after_three_steps"] = flat(model.get_weights())

model = make_model(keras.optimizers.SGD(learning_rate=0.1))
history = model.fit(x, y, batch_size=20, epochs=2, shuffle=False, class_weight={0: 1.0, 1: 3.0}, verbose=0)
out["class_weight_history_loss"] = history.history["loss"]
out["class_weight_weights"] = flat(model.get_weights())

model = make_model(keras.optimizers.SGD(learning_rate=0.1))
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, sample_weight=sample_weight, verbose=0)
out["sample_weight_weights"] = flat(model.get_weights())

# validation_split takes the last quarter before any shuffling; batches of 12, 12 and 6 make
# the epoch loss a mean weighted by batch size.
model = make_model(keras.optimizers.SGD(learning_rate=0.1))
history = model.fit(x, y, batch_size=12, epochs=2, shuffle=False, validation_split=0.25, verbose=0)
out["validation_split_history"] = history.history

model = make_model("sgd", metrics=["mae", keras.metrics.AUC(), keras.metrics.Precision(), keras.metrics.Recall()])
result = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
out["metric_names"] = sorted(result)
out["metric_values"] = {k: result[k] for k in sorted(result)}

# Keras weights only `weighted_metrics` by sample_weight; `metrics` stay unweighted.
model = make_model("sgd", metrics=["accuracy"], weighted_metrics=["binary_accuracy", "mae"])
result = model.evaluate(x, y, batch_size=16, sample_weight=sample_weight, verbose=0, return_dict=True)
out["weighted_metric_values"] = {k: result[k] for k in sorted(result)}

print(json.dumps(out))
