"""The examples in Keras 3's learning-rate schedule docstrings
(keras/src/optimizers/schedules/learning_rate_schedule.py): ExponentialDecay (staircase)
passed to SGD and trained with sparse categorical cross-entropy, PiecewiseConstantDecay,
InverseTimeDecay, PolynomialDecay and CosineDecay; the schedules' values at given steps,
their get_config, and the optimizer's `learning_rate` as training advances."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(15)
rng = np.random.default_rng(15)
data = rng.random((64, 8)).astype("float32")
labels = rng.integers(0, 3, 64)
out = {}

initial_learning_rate = 0.1
lr_schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate, decay_steps=3, decay_rate=0.96, staircase=True
)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr_schedule), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(data, labels, epochs=5, batch_size=16, verbose=0)
out["optimizer_iterations"] = int(model.optimizer.iterations)
out["optimizer_rate_after_fit"] = float(np.asarray(model.optimizer.learning_rate))
out["exponential_config"] = lr_schedule.get_config()

steps = [0, 1, 5, 10, 50, 100]
boundaries = [10, 50]
values = [1.0, 0.5, 0.1]
schedules = {
    "ExponentialDecay": keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5),
    "PiecewiseConstantDecay": keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values),
    "InverseTimeDecay": keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5),
    "PolynomialDecay": keras.optimizers.schedules.PolynomialDecay(
        0.1, decay_steps=50, end_learning_rate=0.01, power=0.5
    ),
    "CosineDecay": keras.optimizers.schedules.CosineDecay(0.1, decay_steps=50, alpha=0.1),
    "CosineDecayWarmup": keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=50, warmup_target=0.1, warmup_steps=10
    ),
}
out["values"] = {name: [float(np.asarray(schedule(step))) for step in steps] for name, schedule in schedules.items()}
out["config_keys"] = {name: sorted(schedule.get_config()) for name, schedule in schedules.items()}

print(json.dumps(out))
