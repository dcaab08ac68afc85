"""The example in Keras 3's EarlyStopping docstring
(keras/src/callbacks/early_stopping.py): Dense(10) trained with mse on targets of shape
(5,) by SGD on unscaled inputs, so the loss grows and only 4 epochs run."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(8)
rng = np.random.default_rng(8)
out = {}

# EarlyStopping: the loss diverges, so only 4 epochs run.
callback = keras.callbacks.EarlyStopping(monitor="loss", patience=3)
model = keras.models.Sequential([keras.layers.Dense(10)])
model.compile(keras.optimizers.SGD(), loss="mse")
history = model.fit(
    np.arange(100).reshape(5, 20), np.zeros(5), epochs=10, batch_size=1, callbacks=[callback], verbose=0
)
out["early_stopping_epochs"] = len(history.history["loss"])

print(json.dumps(out))
