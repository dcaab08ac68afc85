"""Metrics used on their own, as the training guide's "Custom metrics" section and the
metric docstrings of Keras 3 do (keras/src/metrics/*.py): a `keras.metrics.Metric`
subclass (CategoricalTruePositives: add_variable, update_state with sample_weight,
result, reset_state) written with NumPy, then built-in metrics fed batch by batch (Mean
with sample weights, AUC, Precision, SparseCategoricalAccuracy, MeanMetricWrapper around
a loss function), their results as floats and their state after reset_state. (Inside
fit, Keras 3 on JAX traces update_state, so a NumPy metric runs there only in gpudl.)"""

import json

import numpy as np

import keras


class CategoricalTruePositives(keras.metrics.Metric):
    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.reshape(np.argmax(np.asarray(y_pred), axis=1), (-1, 1))
        values = (np.asarray(y_true).astype("int32").reshape(-1, 1) == y_pred.astype("int32")).astype("float32")
        if sample_weight is not None:
            values = values * np.asarray(sample_weight, dtype="float32").reshape(-1, 1)
        self.true_positives.assign(np.asarray(self.true_positives) + values.sum())

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0.0)


out = {}
metric = CategoricalTruePositives()
metric.update_state(np.array([0, 1, 2]), np.eye(3)[[0, 2, 2]])
metric.update_state(np.array([1, 1]), np.eye(3)[[1, 1]], sample_weight=np.array([0.5, 2.0]))
# A probe, so that a variable without __float__ stops only this key; the values go through NumPy.
out["result_variable_float"] = float(metric.result()) if hasattr(type(metric.result()), "__float__") else None
out["custom_result"] = float(np.asarray(metric.result()))
out["custom_name_and_variables"] = [metric.name, len(metric.variables)]
metric.reset_state()
out["custom_after_reset"] = float(np.asarray(metric.result()))

rng = np.random.default_rng(29)
y_true = rng.integers(0, 2, 50)
y_score = np.clip(y_true * 0.3 + rng.random(50) * 0.7, 0, 1).astype("float32")
mean = keras.metrics.Mean()
mean.update_state([1.0, 3.0, 5.0, 7.0])
mean.update_state([2.0], sample_weight=[4.0])
auc = keras.metrics.AUC()
precision = keras.metrics.Precision(thresholds=0.6)
for start in range(0, 50, 20):
    auc.update_state(y_true[start:start + 20], y_score[start:start + 20])
    precision.update_state(y_true[start:start + 20], y_score[start:start + 20])
accuracy = keras.metrics.SparseCategoricalAccuracy()
accuracy.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
wrapper = keras.metrics.MeanMetricWrapper(fn=keras.losses.mean_squared_error, name="mse_wrapped")
wrapper.update_state(np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([[0.5, 0.5], [1.0, 0.0]]))
results = {m.name: float(m.result()) for m in (mean, auc, precision, accuracy, wrapper)}
out["builtin_results"] = results
for m in (mean, auc, precision, accuracy, wrapper):
    m.reset_state()
out["builtin_after_reset"] = {m.name: float(m.result()) for m in (mean, auc, precision, accuracy, wrapper)}

print(json.dumps(out))
