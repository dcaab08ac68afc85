"""After keras-io guides/training_with_built_in_methods.py (Keras 3): the end-to-end
fit/evaluate/predict workflow, compile with objects and with strings, class and sample
weights, EarlyStopping on validation_split, a per-batch loss history callback and
ModelCheckpoint with `{epoch}` in the name. Sequential instead of the guide's
functional model, synthetic MNIST-like data instead of the download."""

import json
import os

import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x_train = rng.random((600, 64)).astype("float32")
y_train = (x_train[:, :10].argmax(axis=1)).astype("float32")
x_test = rng.random((200, 64)).astype("float32")
y_test = (x_test[:, :10].argmax(axis=1)).astype("float32")

# Reserve 100 samples for validation
x_val = x_train[-100:]
y_val = y_train[-100:]
x_train = x_train[:-100]
y_train = y_train[:-100]


def get_uncompiled_model():
    return keras.Sequential(
        [
            keras.Input(shape=(64,), name="digits"),
            layers.Dense(64, activation="relu", name="dense_1"),
            layers.Dense(64, activation="relu", name="dense_2"),
            layers.Dense(10, activation="softmax", name="predictions"),
        ]
    )


def get_compiled_model():
    model = get_uncompiled_model()
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


out = {}
model = get_uncompiled_model()
model.compile(
    optimizer=keras.optimizers.RMSprop(),  # Optimizer
    loss=keras.losses.SparseCategoricalCrossentropy(),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)
print("Fit model on training data")
history = model.fit(
    x_train,
    y_train,
    batch_size=64,
    epochs=2,
    validation_data=(x_val, y_val),
    verbose=0,
)
out["history_type"] = type(history).__name__
out["history_keys"] = sorted(history.history)
out["history_lengths"] = {k: len(v) for k, v in history.history.items()}
out["history_value_type"] = type(history.history["loss"][0]).__name__
out["history_epoch"] = history.epoch
out["history_params"] = {k: history.params[k] for k in sorted(history.params)}
out["model_history_is_history"] = model.history is history

print("Evaluate on test data")
results = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
print("test loss, test acc:", results)
out["evaluate_type"] = type(results).__name__
out["evaluate_len"] = len(results)
out["evaluate_item_types"] = [type(r).__name__ for r in results]

print("Generate predictions for 3 samples")
predictions = model.predict(x_test[:3], verbose=0)
print("predictions shape:", predictions.shape)
out["predict_type"] = type(predictions).__name__
out["predict_shape"] = list(predictions.shape)
out["predict_dtype"] = str(predictions.dtype)
out["predict_rows_sum_to_one"] = bool(np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5))

result_dict = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
out["evaluate_dict_keys"] = sorted(result_dict)
out["evaluate_dict_matches_list"] = bool(
    np.allclose([result_dict["loss"], result_dict["sparse_categorical_accuracy"]], results, rtol=1e-5)
)

# Class weights: class 5 twice as important.
class_weight = {i: 1.0 for i in range(10)}
class_weight[5] = 2.0
print("Fit with class weight")
model = get_compiled_model()
h = model.fit(x_train, y_train, class_weight=class_weight, batch_size=64, epochs=1, verbose=0)
out["class_weight_history_keys"] = sorted(h.history)

sample_weight = np.ones(shape=(len(y_train),))
sample_weight[y_train == 5] = 2.0
print("Fit with sample weight")
model = get_compiled_model()
h = model.fit(x_train, y_train, sample_weight=sample_weight, batch_size=64, epochs=1, verbose=0)
out["sample_weight_history_keys"] = sorted(h.history)

# Callbacks: EarlyStopping on validation_split.
model = get_compiled_model()
callbacks = [
    keras.callbacks.EarlyStopping(
        monitor="val_loss",
        min_delta=1e-2,
        patience=2,
        verbose=1,
    )
]
h = model.fit(x_train, y_train, epochs=20, batch_size=64, callbacks=callbacks, validation_split=0.2, verbose=0)
out["early_stopping_keys"] = sorted(h.history)
epochs_run = len(h.history["loss"])
stopped_epoch = callbacks[0].stopped_epoch
out["early_stopping_stopped_epoch_consistent"] = stopped_epoch == (epochs_run - 1 if epochs_run < 20 else 0)


class LossHistory(keras.callbacks.Callback):
    def on_train_begin(self, logs):
        self.per_batch_losses = []

    def on_batch_end(self, batch, logs):
        self.per_batch_losses.append(logs.get("loss"))


loss_history = LossHistory()
model = get_compiled_model()
model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=[loss_history], verbose=0)
out["per_batch_losses_len"] = len(loss_history.per_batch_losses)
out["per_batch_loss_is_number"] = all(isinstance(float(v), float) for v in loss_history.per_batch_losses)

# Checkpointing models.
model = get_compiled_model()
callbacks = [
    keras.callbacks.ModelCheckpoint(
        filepath="mymodel_{epoch}.keras",
        save_best_only=True,
        monitor="val_loss",
        verbose=1,
    )
]
model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=callbacks, validation_split=0.2, verbose=0)
out["checkpoint_files"] = sorted(f for f in os.listdir(".") if f.startswith("mymodel_"))
reloaded = keras.models.load_model(out["checkpoint_files"][-1])
out["checkpoint_reload_predict_shape"] = list(reloaded.predict(x_test[:5], verbose=0).shape)

# Learning-rate schedules passed to an optimizer.
initial_learning_rate = 0.1
lr_schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate, decay_steps=100000, decay_rate=0.96, staircase=True
)
optimizer = keras.optimizers.RMSprop(learning_rate=lr_schedule)
model = get_uncompiled_model()
model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
h = model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
out["schedule_history_keys"] = sorted(h.history)
out["optimizer_iterations"] = int(optimizer.iterations)

print(json.dumps(out))
