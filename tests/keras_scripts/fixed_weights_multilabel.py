"""Numbers that must equal Keras's for a multi-label MLP (independent sigmoid outputs,
binary cross-entropy) with fixed weights: BinaryAccuracy with a threshold,
Precision/Recall with several thresholds and per class_id, AUC with multi_label=True,
the ROC and PR curves and fewer thresholds, evaluated and after two SGD steps."""

import json

import numpy as np

import keras

rng = np.random.default_rng(24)
x = rng.normal(0, 1, (36, 5)).astype("float32")
y = (rng.random((36, 3)) < np.array([0.2, 0.5, 0.7])).astype("float32")
weights = [(np.sin(np.arange(15, dtype="float64") * 0.7).reshape(5, 3) * 0.8).astype("float32"),
           np.array([-0.3, 0.0, 0.4], dtype="float32")]

model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="sigmoid")])
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=0.3),
    loss="binary_crossentropy",
    metrics=[
        keras.metrics.BinaryAccuracy(threshold=0.6),
        keras.metrics.Precision(thresholds=[0.3, 0.7], name="precision_at"),
        keras.metrics.Recall(class_id=2, name="recall_class_2"),
        keras.metrics.AUC(multi_label=True, num_labels=3, name="auc_multi"),
        keras.metrics.AUC(curve="PR", name="auc_pr"),
        keras.metrics.AUC(num_thresholds=20, name="auc_20"),
    ],
)
model.set_weights(weights)
# Precision with two thresholds gives one value per threshold (an array).
result = model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
out = {"evaluate": {name: np.asarray(value).tolist() for name, value in result.items()}}
history = model.fit(x, y, batch_size=18, epochs=1, shuffle=False, verbose=0)
out["history"] = {name: np.asarray(values).tolist() for name, values in history.history.items()}
out["weights_after_fit"] = np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64").tolist()

print(json.dumps(out))
