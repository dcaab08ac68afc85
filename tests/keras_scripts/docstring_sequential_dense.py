"""The examples in Keras 3's docstrings of Sequential (keras/src/models/sequential.py:
built as layers arrive after an Input, later by build((None, 16)), or by the first fit;
pop), Dense (keras/src/layers/core/dense.py: output_shape with the batch axis),
to_categorical (keras/src/utils/numerical_utils.py) and categorical_crossentropy
(keras/src/losses/losses.py)."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(6)
rng = np.random.default_rng(6)
out = {}

# Sequential: built as layers arrive after an Input, or later by build/fit.
model = keras.Sequential()
model.add(keras.Input(shape=(16,)))
model.add(keras.layers.Dense(8))
out["seq_input_weights"] = len(model.weights)
model = keras.Sequential()
model.add(keras.layers.Dense(8))
model.add(keras.layers.Dense(4))
out["seq_delayed_built"] = model.built
model.build((None, 16))
out["seq_build_weights"] = len(model.weights)
model = keras.Sequential()
model.add(keras.layers.Dense(8))
model.add(keras.layers.Dense(1))
model.compile(optimizer="sgd", loss="mse")
x = rng.random((64, 16)).astype("float32")
y = rng.random((64, 1)).astype("float32")
model.fit(x, y, batch_size=32, epochs=2, verbose=0)
out["seq_fit_built_weights"] = len(model.weights)
out["seq_fit_weight_shapes"] = [list(w.shape) for w in model.get_weights()]
model.pop()
out["seq_pop_layers"] = len(model.layers)

# Dense: output_shape includes the batch axis.
model = keras.Sequential()
model.add(keras.Input(shape=(16,)))
model.add(keras.layers.Dense(32, activation="relu"))
model.add(keras.layers.Dense(32))
out["dense_output_shape"] = list(model.output_shape)
out["dense_input_shape"] = list(model.input_shape)
out["get_layer_name"] = model.get_layer(index=0).name.split("_")[0]

# to_categorical and categorical_crossentropy.
a = keras.utils.to_categorical([0, 1, 2, 3], num_classes=4)
b = np.array(
    [0.9, 0.04, 0.03, 0.03, 0.3, 0.45, 0.15, 0.13, 0.04, 0.01, 0.94, 0.05, 0.12, 0.21, 0.5, 0.17]
).reshape(4, 4)
out["to_categorical"] = np.asarray(a).tolist()
out["categorical_crossentropy"] = np.asarray(keras.losses.categorical_crossentropy(a, b)).tolist()

print(json.dumps(out))
