"""How MLP scripts read and change weights and layers in Keras 3 (keras/src/layers/layer.py,
keras/src/backend/common/variables.py, keras/src/models/sequential.py): layer and model
names given automatically (and reset by keras.backend.clear_session), get_layer by name,
a layer's kernel and bias as variables with path, name, shape, dtype, trainable,
`.numpy()` and `.assign()`, layer attributes (units, use_bias, activation, count_params), and the config keys of
Dropout and BatchNormalization."""

import json

import numpy as np

import keras

keras.backend.clear_session()
out = {}
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d"), keras.layers.Dense(1)])
layer = model.layers[0]
kernel = layer.kernel
out["kernel"] = {"path": kernel.path, "name": kernel.name, "shape": list(kernel.shape), "dtype": str(kernel.dtype),
                 "trainable": kernel.trainable}
out["weight_paths"] = [w.path for w in model.weights]
layer.kernel.assign(np.ones((3, 2)))
layer.bias.assign(np.array([0.5, -0.5]))
out["assigned"] = [float(layer.kernel.numpy().sum()), type(layer.kernel.numpy()).__name__,
                   np.asarray(layer.bias).tolist()]
out["layer_call_after_assign"] = \
    np.asarray(model.layers[0](np.array([[1.0, 2.0, 3.0]], dtype="float32"))).tolist()
out["get_layer"] = [model.get_layer("d").name, model.layers[1].name, model.get_layer(index=1).name]
out["attributes"] = [layer.count_params(), layer.units, layer.use_bias, layer.built, layer.dtype]
out["model_name"] = model.name

second = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dropout(0.1),
                           keras.layers.BatchNormalization()])
out["second_names"] = [l.name for l in second.layers] + [second.name]
keras.backend.clear_session()
third = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
out["names_after_clear_session"] = [l.name for l in third.layers] + [third.name]

out["dropout_config_keys"] = sorted(keras.layers.Dropout(0.1).get_config())
out["batch_norm_config_keys"] = sorted(keras.layers.BatchNormalization().get_config())
batch_norm = second.layers[2]
out["batch_norm_weight_names"] = [w.name for w in batch_norm.weights]
out["batch_norm_trainable"] = [w.name for w in batch_norm.trainable_weights]

print(json.dumps(out))
