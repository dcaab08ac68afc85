"""gpudl: a small Keras-style training library for "Improving Deep Neural Networks".

    import gpudl
    model = gpudl.Sequential([gpudl.Input((64,)), gpudl.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=10)
"""

import sys

from gpudl.backend import floatx, get_backend, set_backend, set_floatx
from gpudl.frontend import (activations, callbacks, data, initializers, layers, losses, metrics, optimizers,
                            regularizers, schedules, tuning, utils)
from gpudl.frontend.diagnosis import diagnose
from gpudl.frontend.gradient_check import gradient_check
from gpudl.frontend.layers import Input
from gpudl.frontend.models import Sequential
from gpudl.saving import load_model

__version__ = "0.1.0"

# `from gpudl.layers import Dense` works like `gpudl.layers.Dense`.
SUBMODULES = ("activations", "callbacks", "data", "initializers", "layers", "losses", "metrics", "optimizers",
              "regularizers", "schedules", "tuning", "utils")
for _name in SUBMODULES:
    sys.modules[f"gpudl.{_name}"] = globals()[_name]

__all__ = ["Input", "Sequential", "diagnose", "floatx", "get_backend", "gradient_check", "load_model",
           "set_backend", "set_floatx", *SUBMODULES]
