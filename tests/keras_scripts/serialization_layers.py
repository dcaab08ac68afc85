"""Keras 3's layer and activation (de)serialization functions (keras/src/layers/__init__.py
serialize/deserialize, keras/src/activations/__init__.py serialize), as the saving guide
uses them for a layer: a Dense layer serialized to a dict and rebuilt from it."""

import json

import keras

out = {}
layer = keras.layers.Dense(4, activation="relu", kernel_initializer="he_uniform", name="hidden")
serialized = keras.layers.serialize(layer)
out["layer_serialized_class"] = serialized["class_name"]
clone = keras.layers.deserialize(serialized)
out["layer_roundtrip"] = [type(clone).__name__, clone.units, clone.name, clone.get_config()["activation"]]
out["activation_serialize"] = keras.activations.serialize(keras.activations.relu)

print(json.dumps(out))
