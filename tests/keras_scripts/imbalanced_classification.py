"""After keras-io examples/structured_data/imbalanced_classification.py (credit-card fraud,
Keras 3): features standardized with training mean and std, an MLP with Dropout, the
six count/ratio metrics by name (fn, fp, tn, tp, precision, recall), class weights
from the class counts, a ModelCheckpoint per epoch to `{epoch}`-named `.keras` files,
fit with validation_data and verbose=2. Synthetic data: 2000 rows, 30 features, ~5%
positives; smaller layers and fewer epochs."""

import contextlib
import io
import json
import os

import numpy as np

import keras

keras.utils.set_random_seed(11)
rng = np.random.default_rng(11)
features = rng.normal(0, 1, (2000, 30)).astype("float32") * rng.uniform(0.5, 20, 30).astype("float32")
targets = (rng.random((2000, 1)) < 0.05).astype("uint8")
features[targets[:, 0] == 1, :3] += 15.0

num_val_samples = int(len(features) * 0.2)
train_features = features[:-num_val_samples]
train_targets = targets[:-num_val_samples]
val_features = features[-num_val_samples:]
val_targets = targets[-num_val_samples:]

counts = np.bincount(train_targets[:, 0])
print(
    "Number of positive samples in training data: {} ({:.2f}% of total)".format(
        counts[1], 100 * float(counts[1]) / len(train_targets)
    )
)
weight_for_0 = 1.0 / counts[0]
weight_for_1 = 1.0 / counts[1]

mean = np.mean(train_features, axis=0)
train_features -= mean
val_features -= mean
std = np.std(train_features, axis=0)
train_features /= std
val_features /= std

model = keras.Sequential(
    [
        keras.Input(shape=train_features.shape[1:]),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.summary()

metrics = [
    keras.metrics.FalseNegatives(name="fn"),
    keras.metrics.FalsePositives(name="fp"),
    keras.metrics.TrueNegatives(name="tn"),
    keras.metrics.TruePositives(name="tp"),
    keras.metrics.Precision(name="precision"),
    keras.metrics.Recall(name="recall"),
]
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics)
callbacks = [keras.callbacks.ModelCheckpoint("fraud_model_at_epoch_{epoch}.keras")]
class_weight = {0: weight_for_0, 1: weight_for_1}

buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    history = model.fit(
        train_features,
        train_targets,
        batch_size=512,
        epochs=3,
        verbose=2,
        callbacks=callbacks,
        validation_data=(val_features, val_targets),
        class_weight=class_weight,
    )
out = {}
out["history_keys"] = sorted(history.history)
out["epoch_lines"] = [line.split(" - ")[0] for line in buffer.getvalue().splitlines() if line.strip()]
last = {k: v[-1] for k, v in history.history.items()}
out["val_counts_sum_to_samples"] = bool(
    np.isclose(last["val_fn"] + last["val_fp"] + last["val_tn"] + last["val_tp"], num_val_samples)
)
out["train_counts_sum_to_samples"] = bool(
    np.isclose(last["fn"] + last["fp"] + last["tn"] + last["tp"], len(train_features))
)
out["checkpoints"] = sorted(f for f in os.listdir(".") if f.startswith("fraud_model_at_epoch_"))

results = model.evaluate(val_features, val_targets, verbose=0, return_dict=True)
out["evaluate_keys"] = sorted(results)
predicted = (model.predict(val_features, verbose=0) > 0.5).astype(int)
tp = int(((predicted == 1) & (val_targets == 1)).sum())
fp = int(((predicted == 1) & (val_targets == 0)).sum())
out["tp_matches_predict"] = results["tp"] == tp
out["fp_matches_predict"] = results["fp"] == fp
out["count_types"] = sorted({type(results[k]).__name__ for k in ("fn", "fp", "tn", "tp")})

print(json.dumps(out))
