"""Keras 3's object-by-name and serialization API as MLP scripts use it
(keras/src/saving/saving_api.py, serialization_lib.py and the `get`/`serialize`/
`deserialize` functions of optimizers, losses, initializers, regularizers, layers):
keras.saving.save_model/load_model, training resumed from a saved model continuing
exactly as uninterrupted training does (SGD with momentum), objects looked up by name,
configs read back, and initializer/regularizer values."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(17)
rng = np.random.default_rng(17)
x = rng.normal(0, 1, (64, 6)).astype("float32")
y = rng.normal(0, 1, (64, 2)).astype("float32")
out = {}


def get_model():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="mse", metrics=["mae"])
    return model


model = get_model()
model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
keras.saving.save_model(model, "half.keras")
model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
resumed = keras.saving.load_model("half.keras")
resumed.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
out["resume_matches_uninterrupted"] = all(
    np.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(model.get_weights(), resumed.get_weights())
)
out["resumed_iterations"] = int(resumed.optimizer.iterations)
out["resumed_loss_name"] = type(resumed.loss).__name__ if not isinstance(resumed.loss, str) else resumed.loss
out["resumed_evaluate_len"] = len(resumed.evaluate(x, y, verbose=0))

optimizer = keras.optimizers.get("adam")
out["optimizer_by_name"] = type(optimizer).__name__
out["adam_defaults"] = {k: optimizer.get_config()[k] for k in ("learning_rate", "beta_1", "beta_2", "amsgrad", "name")}
sgd = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)
sgd_config = keras.optimizers.serialize(sgd)
out["optimizer_serialized_class"] = sgd_config["class_name"]
restored = keras.optimizers.deserialize(sgd_config)
out["optimizer_roundtrip"] = [type(restored).__name__, float(np.asarray(restored.learning_rate)),
                              restored.get_config()["momentum"], restored.get_config()["nesterov"]]

y_true = np.array([[0.0, 1.0], [3.0, -1.0]], dtype="float32")
y_pred = np.array([[0.5, 0.0], [0.0, 1.0]], dtype="float32")
loss_fn = keras.losses.get("mse")
# A probe (getattr) rather than `loss_fn.__name__`, so a difference stops only this key.
out["loss_by_name"] = [callable(loss_fn), getattr(loss_fn, "__name__", type(loss_fn).__name__)]
out["loss_by_name_value"] = float(np.mean(np.asarray(loss_fn(y_true, y_pred))))
loss_object = keras.losses.get({"class_name": "Huber", "config": {"delta": 2.0}})
out["loss_from_config"] = [type(loss_object).__name__, float(loss_object(y_true, y_pred))]
serialized_loss = keras.losses.serialize(keras.losses.BinaryCrossentropy(from_logits=True))
out["loss_serialize"] = serialized_loss["config"]["from_logits"]

initializer = keras.initializers.get("he_normal")
out["initializer_by_name"] = type(initializer).__name__
out["initializer_call_shape"] = list(np.asarray(initializer(shape=(3, 4))).shape)
out["constant_values"] = np.asarray(keras.initializers.Constant(2.5)(shape=(2, 2))).tolist()
out["identity_values"] = np.asarray(keras.initializers.Identity()(shape=(2, 3))).tolist()
out["variance_scaling_config"] = keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal").get_config()

regularizer = keras.regularizers.get("l2")
out["regularizer_by_name"] = [type(regularizer).__name__, regularizer.get_config()]
w = np.array([[1.0, -2.0], [0.5, 3.0]], dtype="float32")
out["regularizer_values"] = [
    float(keras.regularizers.L2(0.01)(w)),
    float(keras.regularizers.L1(0.02)(w)),
    float(keras.regularizers.L1L2(l1=0.01, l2=0.03)(w)),
]

print(json.dumps(out))
