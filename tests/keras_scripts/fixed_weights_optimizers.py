"""Numbers that must equal Keras's for every optimizer an MLP script names: the same model
with the same fixed weights takes three train_on_batch steps with each optimizer (and
SGD with clipnorm, clipvalue, global_clipnorm and weight_decay), then the weights and
`optimizer.iterations` are recorded. Adam and RMSprop place epsilon differently on
purpose (README, "Differences from Keras"), so they run with epsilon=1e-12, where the
placement cannot show and the rest of the update rule still can."""

import json

import numpy as np

import keras

rng = np.random.default_rng(19)
x = rng.normal(0, 1, (32, 5)).astype("float32")
y = rng.integers(0, 3, 32)
weights = [
    (np.cos(np.arange(20, dtype="float64")).reshape(5, 4) * 0.5).astype("float32"),
    np.array([0.1, -0.2, 0.0, 0.05], dtype="float32"),
    (np.sin(np.arange(12, dtype="float64")).reshape(4, 3) * 0.5).astype("float32"),
    np.array([0.0, 0.1, -0.1], dtype="float32"),
]

optimizers = {
    "SGD": lambda: keras.optimizers.SGD(learning_rate=0.1),
    "SGD_momentum": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "SGD_nesterov": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "SGD_clipnorm": lambda: keras.optimizers.SGD(learning_rate=0.1, clipnorm=0.05),
    "SGD_clipvalue": lambda: keras.optimizers.SGD(learning_rate=0.1, clipvalue=0.01),
    "SGD_global_clipnorm": lambda: keras.optimizers.SGD(learning_rate=0.1, global_clipnorm=0.05),
    "SGD_weight_decay": lambda: keras.optimizers.SGD(learning_rate=0.1, weight_decay=0.1),
    "Adam_eps": lambda: keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-12),
    "Adam_amsgrad_eps": lambda: keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-12, amsgrad=True),
    "AdamW_eps": lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, epsilon=1e-12),
    "RMSprop_eps": lambda: keras.optimizers.RMSprop(learning_rate=0.01, epsilon=1e-12),
    "RMSprop_momentum_centered_eps": lambda: keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True,
                                                                      epsilon=1e-12),
    "Adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.1),
    "Adadelta": lambda: keras.optimizers.Adadelta(learning_rate=1.0),
    "Adamax": lambda: keras.optimizers.Adamax(learning_rate=0.01),
    "Nadam": lambda: keras.optimizers.Nadam(learning_rate=0.01),
    "Lion": lambda: keras.optimizers.Lion(learning_rate=0.01),
}

out = {"weights": {}, "losses": {}, "iterations": {}}
for name, make in optimizers.items():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=make(), loss="sparse_categorical_crossentropy")
    model.set_weights(weights)
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    out["weights"][name] = np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64").tolist()
    out["losses"][name] = losses
    out["iterations"][name] = int(model.optimizer.iterations)

print(json.dumps(out))
