"""After keras-io guides/serialization_and_saving.py (Keras 3): whole-model saving to a
`.keras` file and keras.models.load_model (predictions equal, training resumes), config
and JSON round trips for a layer and a Sequential model, clone_model, and weights-only
saving with save_weights/load_weights to a `.weights.h5` file."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(2)
out = {}


def get_model():
    model = keras.Sequential([keras.Input(shape=(32,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mean_squared_error")
    return model


model = get_model()
rng = np.random.default_rng(2)
test_input = rng.random((128, 32)).astype("float32")
test_target = rng.random((128, 1)).astype("float32")
model.fit(test_input, test_target, verbose=0)

model.save("my_model.keras")
reconstructed_model = keras.models.load_model("my_model.keras")
np.testing.assert_allclose(model.predict(test_input, verbose=0), reconstructed_model.predict(test_input, verbose=0))
out["reconstructed_type"] = type(reconstructed_model).__name__
out["reconstructed_optimizer"] = type(reconstructed_model.optimizer).__name__
out["optimizer_iterations_kept"] = int(reconstructed_model.optimizer.iterations) == int(model.optimizer.iterations)
h = reconstructed_model.fit(test_input, test_target, verbose=0)
out["resumed_history_keys"] = sorted(h.history)
out["iterations_after_resume"] = int(reconstructed_model.optimizer.iterations)

# Config of a layer.
layer = keras.layers.Dense(3, activation="relu")
layer_config = layer.get_config()
new_layer = keras.layers.Dense.from_config(layer_config)
out["dense_config_keys"] = sorted(layer_config)
out["dense_config_activation"] = layer_config["activation"]
out["dense_config_units"] = new_layer.units

# Config of a Sequential model.
model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(1)])
config = model.get_config()
new_model = keras.Sequential.from_config(config)
out["sequential_config_keys"] = sorted(config)
out["sequential_config_layer_classes"] = [layer["class_name"] for layer in config["layers"]]
out["from_config_layers"] = [type(layer).__name__ for layer in new_model.layers]
out["from_config_output_shape"] = list(new_model.predict(test_input[:4], verbose=0).shape)

json_config = model.to_json()
new_model = keras.models.model_from_json(json_config)
out["json_is_str"] = isinstance(json_config, str)
out["json_top_keys"] = sorted(json.loads(json_config))
out["model_from_json_weights"] = [list(w.shape) for w in new_model.get_weights()]

# In-memory cloning: same architecture, fresh weights.
new_model = keras.models.clone_model(model)
out["clone_type"] = type(new_model).__name__
out["clone_weight_shapes"] = [list(w.shape) for w in new_model.get_weights()]
out["clone_is_new_object"] = new_model is not model


# Weights only.
def create_layer():
    layer = keras.layers.Dense(64, activation="relu", name="dense_2")
    layer.build((None, 784))
    return layer


layer_1 = create_layer()
layer_2 = create_layer()
layer_2.set_weights(layer_1.get_weights())
out["layer_weights_equal"] = all(np.array_equal(a, b) for a, b in zip(layer_1.get_weights(), layer_2.get_weights()))


def create_sequential():
    return keras.Sequential(
        [
            keras.Input(shape=(784,), name="digits"),
            keras.layers.Dense(64, activation="relu", name="dense_1"),
            keras.layers.Dense(64, activation="relu", name="dense_2"),
            keras.layers.Dense(10, name="predictions"),
        ]
    )


sequential_model = create_sequential()
sequential_model.save_weights("ckpt.weights.h5")
load_model = create_sequential()
load_model.load_weights("ckpt.weights.h5")
out["load_weights_equal"] = all(
    np.array_equal(a, b) for a, b in zip(sequential_model.get_weights(), load_model.get_weights())
)
out["weights_shapes"] = [list(w.shape) for w in load_model.get_weights()]
out["weights_names"] = [w.name for w in load_model.weights]
out["trainable_weights_len"] = len(load_model.trainable_weights)
out["count_params"] = load_model.count_params()

try:
    sequential_model.save_weights("ckpt.h5")
    out["save_weights_bad_suffix"] = "accepted"
except ValueError:
    out["save_weights_bad_suffix"] = "ValueError"

# Transfer weights from a model with one more layer.
extended = keras.Sequential(create_sequential().layers + [keras.layers.Dense(5, name="extra")])
functional_model = create_sequential()
for a, b in zip(functional_model.layers, extended.layers):
    b.set_weights(a.get_weights())
out["transfer_equal"] = all(
    np.array_equal(a, b) for a, b in zip(functional_model.get_weights(), extended.get_weights()[:6])
)

print(json.dumps(out))
