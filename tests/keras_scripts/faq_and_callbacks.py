"""After the Keras 3 FAQ (keras-io templates/getting_started/faq.md) and callback
docstrings, the MLP parts: reproducible results with keras.utils.set_random_seed,
EarlyStopping(restore_best_weights=True) and its stopped_epoch/best_epoch, freezing a
whole model with `model.trainable = False`, `model(x, training=True)` against
inference with Dropout, TerminateOnNaN, BackupAndRestore resuming an interrupted fit
(the BackupAndRestore docstring; targets np.zeros((5, 10)) rather than its np.zeros(5),
so this script does not depend on the broadcasting gap of docstring_early_stopping.py),
and keras.utils.normalize."""

import json

import numpy as np

import keras
from keras import layers

rng = np.random.default_rng(16)
x = rng.random((120, 10)).astype("float32")
y = (x[:, :3].sum(axis=1) > 1.5).astype("float32")
x_val, y_val = x[:30], y[:30]
x_train, y_train = x[30:], y[30:]
out = {}


def get_model():
    model = keras.Sequential([keras.Input((10,)), layers.Dense(16, activation="relu"), layers.Dropout(0.5),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


keras.utils.set_random_seed(1337)
first = get_model()
first_history = first.fit(x_train, y_train, epochs=2, batch_size=16, verbose=0)
keras.utils.set_random_seed(1337)
second = get_model()
second_history = second.fit(x_train, y_train, epochs=2, batch_size=16, verbose=0)
out["seeded_weights_equal"] = all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights()))
out["seeded_histories_equal"] = first_history.history == second_history.history

training_output = np.asarray(first(x_val, training=True))
inference_output = np.asarray(first(x_val, training=False))
out["training_call_differs"] = not np.allclose(training_output, inference_output)
out["inference_call_matches_predict"] = bool(np.allclose(inference_output, first.predict(x_val, verbose=0), atol=1e-6))


class WeightsPerEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


keras.utils.set_random_seed(3)
model = get_model()
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
recorder = WeightsPerEpoch()
history = model.fit(x_train, y_train, epochs=40, batch_size=8, validation_data=(x_val, y_val),
                    callbacks=[recorder, early], verbose=0)
val_losses = history.history["val_loss"]
best = int(np.argmin(val_losses))
out["early_best_epoch_is_argmin"] = early.best_epoch == best
out["early_stopped_epoch_consistent"] = early.stopped_epoch == (len(val_losses) - 1 if len(val_losses) < 40 else 0)
out["early_restored_best"] = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), recorder.weights[best])) \
    if len(val_losses) < 40 else True
out["early_best_value"] = bool(np.isclose(early.best, val_losses[best]))

model = get_model()
model.trainable = False
out["frozen_flags"] = [layer.trainable for layer in model.layers]
out["frozen_counts"] = [len(model.trainable_weights), len(model.non_trainable_weights)]
model.compile(optimizer="adam", loss="binary_crossentropy")
before = model.get_weights()
model.fit(x_train, y_train, epochs=1, verbose=0)
out["frozen_unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
model.trainable = True
out["unfrozen_counts"] = [len(model.trainable_weights), len(model.non_trainable_weights)]

model = keras.Sequential([keras.Input((10,)), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e6), loss="mse")
history = model.fit(x_train * 1e6, y_train * 1e6, epochs=5, batch_size=8, callbacks=[keras.callbacks.TerminateOnNaN()],
                    verbose=0)
out["terminate_on_nan_epochs"] = len(history.history["loss"])
out["terminate_on_nan_last_is_nan"] = bool(np.isnan(history.history["loss"][-1]))


class InterruptingCallback(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 4:
            raise RuntimeError("Interrupting!")


callback = keras.callbacks.BackupAndRestore(backup_dir="backup")
model = keras.models.Sequential([keras.layers.Dense(10)])
model.compile(keras.optimizers.SGD(), loss="mse")
model.build(input_shape=(None, 20))
try:
    model.fit(np.arange(100).reshape(5, 20), np.zeros((5, 10)), epochs=10, batch_size=1,
              callbacks=[callback, InterruptingCallback()], verbose=0)
except Exception:
    pass
history = model.fit(np.arange(100).reshape(5, 20), np.zeros((5, 10)), epochs=10, batch_size=1, callbacks=[callback],
                    verbose=0)
out["backup_resumed_epochs"] = len(history.history["loss"])

normalized = keras.utils.normalize(np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]), axis=-1, order=2)
out["normalize"] = np.asarray(normalized).tolist()

print(json.dumps(out))
