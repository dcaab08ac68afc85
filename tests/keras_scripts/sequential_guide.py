"""After keras-io guides/sequential_model.py (Keras 3): a Sequential model called on an
array like a function and the same stack of layers called one by one, `model.layers`,
`add`/`pop`, a named model, a layer and a model that get their weights on first call,
`summary()` once built, `Input` not in `model.layers`, and the transfer-learning
blueprints: freeze every layer but the last (`layer.trainable = False`), and a frozen
pretrained Sequential (`base_model.trainable = False`) nested under a new head.
`np.ones` where the guide writes `ops.ones`."""

import contextlib
import io
import json

import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(10)
out = {}

model = keras.Sequential(
    [
        layers.Dense(2, activation="relu", name="layer1"),
        layers.Dense(3, activation="relu", name="layer2"),
        layers.Dense(4, name="layer3"),
    ]
)
x = np.ones((3, 3))
y = model(x)
out["call_shape"] = list(np.asarray(y).shape)
out["call_equals_layer_chain"] = bool(
    np.allclose(np.asarray(y), np.asarray(model.layers[2](model.layers[1](model.layers[0](x)))), atol=1e-6)
)
out["layer_names"] = [layer.name for layer in model.layers]

model = keras.Sequential()
model.add(layers.Dense(2, activation="relu"))
model.add(layers.Dense(3, activation="relu"))
model.add(layers.Dense(4))
model.pop()
out["after_pop"] = len(model.layers)
model = keras.Sequential(name="my_sequential")
model.add(layers.Dense(2, activation="relu", name="layer1"))
out["model_name"] = model.name

layer = layers.Dense(3)
out["unbuilt_layer_weights"] = len(layer.weights)
y = layer(np.ones((1, 4)))
out["built_layer_weight_shapes"] = [list(w.shape) for w in layer.weights]

model = keras.Sequential([layers.Dense(2, activation="relu"), layers.Dense(3, activation="relu"), layers.Dense(4)])
y = model(np.ones((1, 4)))
out["weights_after_call"] = len(model.weights)
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    model.summary()
out["summary_total_line"] = [line.strip(" │┃") for line in buffer.getvalue().splitlines() if "Total params" in line]

model = keras.Sequential()
model.add(keras.Input(shape=(4,)))
model.add(layers.Dense(2, activation="relu"))
out["layers_with_input"] = [type(layer).__name__ for layer in model.layers]
model = keras.Sequential()
model.add(layers.Dense(2, activation="relu", input_shape=(4,)))
out["input_shape_built"] = len(model.weights)
out["input_shape_output_shape"] = list(model.output_shape)

# Freeze all layers except the last one.
rng = np.random.default_rng(10)
x_train = rng.random((64, 20)).astype("float32")
y_train = rng.integers(0, 10, 64)
model = keras.Sequential([
    keras.Input(shape=(20,)),
    layers.Dense(32, activation="relu"),
    layers.Dense(32, activation="relu"),
    layers.Dense(32, activation="relu"),
    layers.Dense(10),
])
model.save_weights("pretrained.weights.h5")
model.load_weights("pretrained.weights.h5")
for layer in model.layers[:-1]:
    layer.trainable = False
out["frozen_counts"] = [len(model.trainable_weights), len(model.non_trainable_weights)]
before = model.get_weights()
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x_train, y_train, epochs=1, verbose=0)
after = model.get_weights()
out["frozen_unchanged"] = [bool(np.array_equal(a, b)) for a, b in zip(before, after)]

# A frozen base model under a new head.
base_model = keras.Sequential(
    [keras.Input(shape=(20,)), layers.Dense(16, activation="relu"), layers.Dense(8, activation="relu")]
)
base_model.trainable = False
model = keras.Sequential([base_model, layers.Dense(10)])
out["nested_layer_types"] = [type(layer).__name__ for layer in model.layers]
out["nested_trainable_flags"] = [layer.trainable for layer in base_model.layers]
out["nested_counts"] = [len(model.trainable_weights), len(model.non_trainable_weights), len(model.weights)]
before = model.get_weights()
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x_train, y_train, epochs=1, verbose=0)
out["nested_unchanged"] = [bool(np.array_equal(a, b)) for a, b in zip(before, model.get_weights())]
base_model.trainable = True
out["unfrozen_counts"] = [len(model.trainable_weights), len(model.non_trainable_weights)]

print(json.dumps(out))
