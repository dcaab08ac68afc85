"""After the TensorFlow tutorial "Overfit and underfit" (tensorflow/docs
site/en/tutorials/keras/overfit_and_underfit.ipynb), in Keras 3 with NumPy arrays instead
of tf.data: an InverseTimeDecay schedule for Adam, binary cross-entropy from logits as the
loss and as a named metric, EarlyStopping on `val_binary_crossentropy`, and the tiny,
L2-regularized, dropout and combined models (elu units, `input_shape=(FEATURES,)`),
each trained with validation data; the histories compared as the tutorial's plotter
reads them. Synthetic Higgs-like data (28 features), fewer epochs and units; labels of
shape (N, 1), since Keras 3.15's BinaryCrossentropy *metric* refuses (N,) labels for
(N, 1) logits ("Arguments `target` and `output` must have the same shape")."""

import json

import numpy as np

import keras
from keras import layers, regularizers

keras.utils.set_random_seed(22)
rng = np.random.default_rng(22)
FEATURES = 28
N_VALIDATION = 200
N_TRAIN = 800
BATCH_SIZE = 100
STEPS_PER_EPOCH = N_TRAIN // BATCH_SIZE
features = rng.normal(0, 1, (N_TRAIN + N_VALIDATION, FEATURES)).astype("float32")
labels = (features[:, :4].sum(axis=1) + rng.normal(0, 1, N_TRAIN + N_VALIDATION) > 0).astype("float32").reshape(-1, 1)
train_x, validate_x = features[:N_TRAIN], features[N_TRAIN:]
train_y, validate_y = labels[:N_TRAIN], labels[N_TRAIN:]

lr_schedule = keras.optimizers.schedules.InverseTimeDecay(
    0.001, decay_steps=STEPS_PER_EPOCH * 1000, decay_rate=1, staircase=False
)


def get_optimizer():
    return keras.optimizers.Adam(lr_schedule)


def get_callbacks(name):
    return [keras.callbacks.EarlyStopping(monitor="val_binary_crossentropy", patience=200)]


def compile_and_fit(model, name, optimizer=None, max_epochs=4):
    if optimizer is None:
        optimizer = get_optimizer()
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryCrossentropy(from_logits=True, name="binary_crossentropy"), "accuracy"],
    )
    model.summary()
    history = model.fit(
        train_x, train_y, batch_size=BATCH_SIZE, epochs=max_epochs, validation_data=(validate_x, validate_y),
        callbacks=get_callbacks(name), verbose=0,
    )
    return history


size_histories = {}
tiny_model = keras.Sequential([layers.Dense(16, activation="elu", input_shape=(FEATURES,)), layers.Dense(1)])
size_histories["Tiny"] = compile_and_fit(tiny_model, "sizes/Tiny")
l2_model = keras.Sequential([
    layers.Dense(64, activation="elu", kernel_regularizer=regularizers.l2(0.001), input_shape=(FEATURES,)),
    layers.Dense(64, activation="elu", kernel_regularizer=regularizers.l2(0.001)),
    layers.Dense(1),
])
size_histories["L2"] = compile_and_fit(l2_model, "regularizers/l2")
dropout_model = keras.Sequential([
    layers.Dense(64, activation="elu", input_shape=(FEATURES,)),
    layers.Dropout(0.5),
    layers.Dense(64, activation="elu"),
    layers.Dropout(0.5),
    layers.Dense(1),
])
size_histories["Dropout"] = compile_and_fit(dropout_model, "regularizers/dropout")
combined_model = keras.Sequential([
    layers.Dense(64, kernel_regularizer=regularizers.l2(0.0001), activation="elu", input_shape=(FEATURES,)),
    layers.Dropout(0.5),
    layers.Dense(64, kernel_regularizer=regularizers.l2(0.0001), activation="elu"),
    layers.Dropout(0.5),
    layers.Dense(1),
])
size_histories["Combined"] = compile_and_fit(combined_model, "regularizers/combined")

out = {
    "history_keys": {name: sorted(h.history) for name, h in size_histories.items()},
    "history_epochs": {name: h.epoch for name, h in size_histories.items()},
    "schedule_values": [float(np.asarray(lr_schedule(step))) for step in (0, 8000, 16000, 24000)],
    "l2_losses_counted": bool(
        l2_model.evaluate(validate_x, validate_y, verbose=0)[0]
        > l2_model.evaluate(validate_x, validate_y, verbose=0, return_dict=True)["binary_crossentropy"]
    ),
    "tiny_metric_equals_loss": bool(np.isclose(
        *[tiny_model.evaluate(validate_x, validate_y, verbose=0, return_dict=True)[k]
          for k in ("loss", "binary_crossentropy")],
        rtol=1e-5)),
}

print(json.dumps(out))
