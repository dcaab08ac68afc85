"""Numbers that must equal Keras's for the other layers of an MLP, with fixed weights:
Rescaling with an offset, LeakyReLU(negative_slope=0.2), PReLU (its alpha trains), ELU,
ReLU(max_value, threshold), LayerNormalization(epsilon=1e-5) without scale, Activation
layers by name, ActivityRegularization (its penalty in the loss), Softmax, and the noise
layers (GaussianNoise, GaussianDropout, AlphaDropout) at inference; predict, evaluate and
two SGD steps (the noise layers are left out of the steps: their random numbers differ
between libraries)."""

import json

import numpy as np

import keras
from keras import layers

rng = np.random.default_rng(30)
x = rng.normal(0, 2, (24, 4)).astype("float32")
y = rng.integers(0, 3, 24)


def fixed(shape, scale=0.5):
    size = int(np.prod(shape))
    return (np.cos(np.arange(1, size + 1, dtype="float64") * 1.3) * scale).astype("float32").reshape(shape)


def make_model(noise_layers):
    model = keras.Sequential([
        keras.Input((4,)),
        layers.Rescaling(0.5, offset=0.1),
        layers.Dense(6),
        layers.LeakyReLU(negative_slope=0.2),
        *([layers.GaussianNoise(0.5), layers.GaussianDropout(0.3)] if noise_layers else []),
        layers.Dense(6),
        layers.PReLU(),
        layers.Dense(5),
        layers.ELU(alpha=0.7),
        layers.Dense(5),
        layers.ReLU(max_value=1.5, threshold=0.1, negative_slope=0.05),
        layers.LayerNormalization(epsilon=1e-5, scale=False),
        *([layers.AlphaDropout(0.2)] if noise_layers else []),
        layers.Dense(4),
        layers.Activation("tanh"),
        layers.ActivityRegularization(l1=0.01, l2=0.02),
        layers.Dense(3),
        layers.Softmax(),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.set_weights([fixed(w.shape, 0.5 + 0.1 * i) for i, w in enumerate(model.get_weights())])
    return model


out = {}
model = make_model(noise_layers=True)
out["weight_shapes"] = [list(w.shape) for w in model.get_weights()]
out["predict"] = model.predict(x[:4], verbose=0).astype("float64").ravel().tolist()
out["evaluate"] = model.evaluate(x, y, batch_size=8, verbose=0)

model = make_model(noise_layers=False)
out["predict_without_noise"] = model.predict(x[:4], verbose=0).astype("float64").ravel().tolist()
history = model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
out["history"] = history.history
out["weights_after_fit"] = np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64").tolist()

print(json.dumps(out))
