"""gpudl: a small Keras-style training library for "Improving Deep Neural Networks".

    import gpudl
    model = gpudl.Sequential([gpudl.Input((64,)), gpudl.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=10)
"""

import sys
import types

from gpudl import backend, models, saving
from gpudl.errors import NotInGpudl
from gpudl.backend import clear_session, floatx, get_backend, set_backend, set_floatx
from gpudl.frontend import (activations, callbacks, constraints, data, distribution, initializers, layers, losses, metrics,
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
              "metrics", "optimizers", "regularizers", "schedules", "tuning", "utils")
for _name in SUBMODULES:
    sys.modules[f"gpudl.{_name}"] = globals()[_name]
sys.modules["gpudl.optimizers.schedules"] = schedules
optimizers.schedules = schedules


class _NoOps(types.ModuleType):
    """keras.ops (tensor operations for autodiff) is not part of gpudl."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotInGpudl(
            f"gpudl has no keras.ops (no autodiff), so ops.{name} does not exist: use NumPy on arrays, and "
            f"write a custom layer as a Layer with forward(x, training) and backward(dy), a custom loss as a "
            f"Loss with value_and_gradient(y_true, y_pred, sample_weight=None).")


ops = sys.modules["gpudl.ops"] = _NoOps("gpudl.ops")

__all__ = ["Input", "Layer", "Model", "Sequential", "backend", "clear_session", "diagnose", "floatx", "get_backend",
           "gradient_check", "load_model", "models", "ops", "save_model", "saving", "set_backend", "set_floatx",
           *SUBMODULES]
