"""gpudl: a small Keras-style training library for "Improving Deep Neural Networks".

    import gpudl
    model = gpudl.Sequential([gpudl.Input((64,)), gpudl.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=10)
"""

import sys

from gpudl.backend import floatx, get_backend, set_backend, set_floatx
from gpudl.frontend import (activations, callbacks, initializers, layers, losses, metrics, optimizers,
                            regularizers, utils)
from gpudl.frontend.layers import Input
from gpudl.frontend.models import Sequential

__version__ = "0.1.0"

# `from gpudl.layers import Dense` works like `gpudl.layers.Dense`.
for _name in ("activations", "callbacks", "initializers", "layers", "losses", "metrics", "optimizers",
              "regularizers", "utils"):
    sys.modules[f"gpudl.{_name}"] = globals()[_name]

__all__ = ["Input", "Sequential", "activations", "callbacks", "floatx", "get_backend", "initializers",
           "layers", "losses", "metrics", "optimizers", "regularizers", "set_backend", "set_floatx", "utils"]
