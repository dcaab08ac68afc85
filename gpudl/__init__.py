"""gpudl: a small Keras-style training library for "Improving Deep Neural Networks".

    import gpudl
    model = gpudl.Sequential([gpudl.Input((64,)), gpudl.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=10)
"""

import sys

from gpudl import backend, models, saving
from gpudl.backend import clear_session, floatx, get_backend, set_backend, set_floatx
from gpudl.frontend import (activations, callbacks, constraints, data, distribution, initializers, layers, losses,
                            metrics, ops,
                            optimizers, regularizers, schedules, tuning, utils)
from gpudl.frontend.diagnosis import diagnose
from gpudl.frontend.gradient_check import gradient_check
from gpudl.frontend.layers import Input, Layer
from gpudl.frontend.models import Sequential
from gpudl.models import Model
from gpudl.saving import load_model, save_model

__version__ = "0.1.0"

# `from gpudl.layers import Dense` works like `gpudl.layers.Dense`.
SUBMODULES = ("activations", "callbacks", "constraints", "data", "distribution", "initializers", "layers", "losses",
              "metrics", "ops", "optimizers", "regularizers", "schedules", "tuning", "utils")
for _name in SUBMODULES:
    sys.modules[f"gpudl.{_name}"] = globals()[_name]
sys.modules["gpudl.optimizers.schedules"] = schedules
optimizers.schedules = schedules


__all__ = ["Input", "Layer", "Model", "Sequential", "backend", "clear_session", "diagnose", "floatx", "get_backend",
           "gradient_check", "load_model", "models", "save_model", "saving", "set_backend", "set_floatx",
           *SUBMODULES]
