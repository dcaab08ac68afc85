"""Numbers that must equal Keras's for the course's layers when weights are the same: an MLP
with L2/L1 kernel and bias regularizers, an activity regularizer, BatchNormalization,
LayerNormalization, Dropout and GaussianNoise gets fixed weights with set_weights; then
predict (inference: moving statistics, no dropout, no noise), evaluate (loss with the
penalties), one SGD train_on_batch (batch statistics; moving statistics updated with
momentum 0.99), and Huber/log-cosh/MAE losses and activations by name on fixed inputs."""

import json

import numpy as np

import keras
from keras import layers

rng = np.random.default_rng(13)
x = rng.normal(0, 1, (24, 4)).astype("float32")
y = rng.normal(0, 1, (24, 2)).astype("float32")


def fixed(shape, scale=0.5, shift=0.0):
    size = int(np.prod(shape))
    return (np.sin(np.arange(1, size + 1, dtype="float64")) * scale + shift).astype("float32").reshape(shape)


def flat(arrays):
    return np.concatenate([np.asarray(a, dtype="float64").ravel() for a in arrays]).tolist()


def make_model(random_layers=True):
    """Dropout and GaussianNoise draw different random numbers in every framework, so the
    training steps compare a model without them."""
    model = keras.Sequential([
        keras.Input(shape=(4,)),
        layers.Dense(6, activation="relu", kernel_regularizer=keras.regularizers.l2(0.01),
                     bias_regularizer=keras.regularizers.l1(0.02)),
        layers.BatchNormalization(),
        *([layers.Dropout(0.5)] if random_layers else []),
        layers.Dense(5, activation="tanh", kernel_regularizer=keras.regularizers.l1_l2(l1=0.001, l2=0.002),
                     activity_regularizer=keras.regularizers.l2(0.003)),
        layers.LayerNormalization(),
        *([layers.GaussianNoise(0.3)] if random_layers else []),
        layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    model.set_weights([
        fixed((4, 6)), fixed((6,), 0.1),
        fixed((6,), 0.2, 1.0), fixed((6,), 0.1), fixed((6,), 0.3), fixed((6,), 0.4, 1.0),
        fixed((6, 5)), fixed((5,), 0.1),
        fixed((5,), 0.2, 1.0), fixed((5,), 0.1),
        fixed((5, 2)), fixed((2,), 0.1),
    ])
    return model


out = {}
model = make_model()
out["weight_shapes"] = [list(w.shape) for w in model.get_weights()]
out["trainable_counts"] = [len(model.trainable_weights), len(model.non_trainable_weights)]
out["predict"] = flat([model.predict(x[:4], verbose=0)])
out["evaluate"] = model.evaluate(x, y, batch_size=8, verbose=0)
# Probes of single attributes record None where missing, so the rest of the script still runs.
out["losses_len"] = len(model.losses) if hasattr(model, "losses") else None
model = make_model(random_layers=False)
out["predict_without_random_layers"] = flat([model.predict(x[:4], verbose=0)])
out["train_on_batch"] = model.train_on_batch(x, y)
out["weights_after_step"] = flat(model.get_weights())

model = make_model(random_layers=False)
model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
out["weights_after_fit"] = flat(model.get_weights())

y_true = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype="float32")
y_pred = np.array([[0.3, 0.2], [-1.0, 3.0], [0.4, 0.9]], dtype="float32")
out["losses"] = {
    name: float(np.asarray(keras.losses.get(name)(y_true, y_pred)).mean())
    for name in ("huber", "log_cosh", "mean_absolute_error", "mean_squared_logarithmic_error", "cosine_similarity")
}
out["loss_objects"] = {
    "Huber(delta=0.5)": float(keras.losses.Huber(delta=0.5)(y_true, y_pred)),
    "LogCosh": float(keras.losses.LogCosh()(y_true, y_pred)),
    "MeanSquaredError(sample_weight)": float(
        keras.losses.MeanSquaredError()(y_true, y_pred, sample_weight=np.array([1.0, 0.5, 2.0]))
    ),
}
z = np.linspace(-3, 3, 7, dtype="float32")
out["activations_get_callable"] = callable(keras.activations.get("swish"))
out["activations"] = {
    name: np.asarray(getattr(keras.activations, name)(z)).tolist()
    for name in ("relu", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "swish", "gelu", "hard_sigmoid",
                 "relu6", "leaky_relu", "mish")
}

print(json.dumps(out))
