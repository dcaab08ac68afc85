"""Shapes as Keras 3 layers report them (keras/src/layers/*: compute_output_shape takes and
returns shapes with the batch axis None): Dense, Flatten, Reshape, Dropout,
BatchNormalization, Rescaling, and a Sequential's output_shape after Flatten and
Reshape; the layers also called on arrays to check the shapes they really give."""

import json

import numpy as np

import keras
from keras import layers

out = {}
x = np.zeros((2, 4, 6), dtype="float32")
for name, layer, shape in [
    ("Dense", layers.Dense(5), (None, 6)),
    ("Flatten", layers.Flatten(), (None, 4, 6)),
    ("Reshape", layers.Reshape((3, 8)), (None, 4, 6)),
    ("Dropout", layers.Dropout(0.5), (None, 6)),
    ("BatchNormalization", layers.BatchNormalization(), (None, 6)),
    ("Rescaling", layers.Rescaling(1.0 / 255), (None, 4, 6)),
]:
    out[name] = list(layer.compute_output_shape(shape))

out["called_shapes"] = [
    list(np.asarray(layers.Flatten()(x)).shape),
    list(np.asarray(layers.Reshape((3, 8))(x)).shape),
    list(np.asarray(layers.Reshape((-1,))(x)).shape),
]
model = keras.Sequential([keras.Input((4, 6)), layers.Flatten(), layers.Dense(12), layers.Reshape((3, 4))])
out["sequential_output_shape"] = list(model.output_shape)

print(json.dumps(out))
