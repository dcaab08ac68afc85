"""The examples in Keras 3's docstrings of ReduceLROnPlateau, CSVLogger,
LambdaCallback and ModelCheckpoint (keras/src/callbacks/*.py) on one small binary
classifier: the learning rate in the history, CSVLogger's header, the three
LambdaCallback examples (batch printer, JSON epoch log closed at train end, cleanup),
and best-only checkpoints to a `.keras` model and a `.weights.h5` file, reloaded."""

import json
import os

import numpy as np

import keras

keras.utils.set_random_seed(9)
rng = np.random.default_rng(9)
out = {}

# ReduceLROnPlateau, CSVLogger, LambdaCallback, ModelCheckpoint on one small model.
X_train = rng.random((96, 5)).astype("float32")
Y_train = (X_train.sum(axis=1, keepdims=True) > 2.5).astype("float32")


def make_model():
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="binary_crossentropy", metrics=["accuracy"])
    return model


model = make_model()
reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5, min_lr=0.001)
history = model.fit(X_train, Y_train, epochs=3, validation_split=0.25, callbacks=[reduce_lr], verbose=0)
out["reduce_lr_history_keys"] = sorted(history.history)

csv_logger = keras.callbacks.CSVLogger("training.log")
model.fit(X_train, Y_train, epochs=2, callbacks=[csv_logger], verbose=0)
with open("training.log") as f:
    rows = f.read().splitlines()
out["csv_header"] = rows[0]
out["csv_rows"] = len(rows)

batches = []
batch_print_callback = keras.callbacks.LambdaCallback(on_batch_begin=lambda batch, logs: batches.append(batch))
json_log = open("loss_log.json", mode="wt", buffering=1)
json_logging_callback = keras.callbacks.LambdaCallback(
    on_epoch_end=lambda epoch, logs: json_log.write(json.dumps({"epoch": epoch, "loss": logs["loss"]}) + "\n"),
    on_train_end=lambda logs: json_log.close(),
)
processes = ["p"]
cleanup_callback = keras.callbacks.LambdaCallback(on_train_end=lambda logs: [p.upper() for p in processes])
model.fit(X_train, Y_train, batch_size=32, epochs=2,
          callbacks=[batch_print_callback, json_logging_callback, cleanup_callback], verbose=0)
out["lambda_batches"] = batches
out["lambda_json_closed"] = json_log.closed
with open("loss_log.json") as f:
    out["lambda_json_keys"] = [sorted(json.loads(line)) for line in f]

EPOCHS = 3
checkpoint_filepath = os.path.join("ckpt", "checkpoint.model.keras")
model_checkpoint_callback = keras.callbacks.ModelCheckpoint(
    filepath=checkpoint_filepath, monitor="val_accuracy", mode="max", save_best_only=True
)
model = make_model()
model.fit(X_train, Y_train, epochs=EPOCHS, validation_split=0.25, callbacks=[model_checkpoint_callback], verbose=0)
model = keras.models.load_model(checkpoint_filepath)
out["checkpoint_model_type"] = type(model).__name__
checkpoint_filepath = os.path.join("ckpt", "checkpoint.weights.h5")
model_checkpoint_callback = keras.callbacks.ModelCheckpoint(
    filepath=checkpoint_filepath, save_weights_only=True, monitor="val_accuracy", mode="max", save_best_only=True
)
model.fit(X_train, Y_train, epochs=EPOCHS, validation_split=0.25, callbacks=[model_checkpoint_callback], verbose=0)
model.load_weights(checkpoint_filepath)
out["checkpoint_files"] = sorted(os.listdir("ckpt"))

print(json.dumps(out))
