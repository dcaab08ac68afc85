"""The examples in Keras 3's Normalization docstring
(keras/src/layers/preprocessing/normalization.py): adapt with axis=None on 1-D data,
adapt per feature with axis=-1, fixed mean and variance, and invert=True."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(7)
rng = np.random.default_rng(7)
out = {}

# Normalization.
adapt_data = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype="float32")
input_data = np.array([1.0, 2.0, 3.0], dtype="float32")
layer = keras.layers.Normalization(axis=None)
layer.adapt(adapt_data)
out["norm_axis_none"] = np.asarray(layer(input_data)).tolist()
adapt_data = np.array([[0.0, 7.0, 4.0], [2.0, 9.0, 6.0], [0.0, 7.0, 4.0], [2.0, 9.0, 6.0]], dtype="float32")
input_data = np.array([[0.0, 7.0, 4.0]], dtype="float32")
layer = keras.layers.Normalization(axis=-1)
layer.adapt(adapt_data)
out["norm_axis_last"] = np.asarray(layer(input_data)).tolist()
out["norm_adapted_mean"] = np.asarray(layer.mean).tolist()
out["norm_adapted_variance"] = np.asarray(layer.variance).tolist()
input_data = np.array([[1.0], [2.0], [3.0]], dtype="float32")
layer = keras.layers.Normalization(mean=3.0, variance=2.0)
out["norm_mean_variance"] = np.asarray(layer(input_data)).tolist()
adapt_data = np.array([[1.0], [2.0], [3.0]], dtype="float32")
layer = keras.layers.Normalization(axis=-1, invert=True)
layer.adapt(adapt_data)
out["norm_invert"] = np.asarray(layer(input_data)).tolist()

print(json.dumps(out))
