"""The backend: which array namespace (`xp`) and which fused-op table run the model.

Only this module knows which backend is active; layers ask it for `xp` and `ops`.
    set_backend("numpy")   or   GPUDL_BACKEND=numpy
"""

import os
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from gpudl.errors import invalid_value

KNOWN_BACKENDS = ("numpy", "triton", "cupy")
FLOAT_TYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """One backend: its name, array namespace, op table and host/device transfers."""

    name: str
    xp: object
    ops: SimpleNamespace
    reason: str

    def asarray(self, host_array, dtype=None):
        """A device array of `host_array` (no copy when it is already one)."""
        return self.xp.asarray(host_array, dtype=dtype)

    def to_numpy(self, array):
        """A host NumPy array of `array`."""
        return array.get() if hasattr(array, "get") else np.asarray(array)

    def synchronize(self):
        """Wait for queued device work (a no-op on the host)."""


def numpy_ops():
    """The op table of the NumPy references in gpudl.kernels."""
    from gpudl.kernels import batchnorm, dropout, optimizer_updates, softmax_cross_entropy

    return SimpleNamespace(
        batchnorm_forward_train=batchnorm.forward_train,
        batchnorm_forward_infer=batchnorm.forward_infer,
        batchnorm_backward=batchnorm.backward,
        dropout=dropout.dropout,
        softmax=softmax_cross_entropy.softmax,
        softmax_cross_entropy=softmax_cross_entropy.softmax_cross_entropy,
        sgd=optimizer_updates.sgd,
        sgd_momentum=optimizer_updates.sgd_momentum,
        ema_momentum=optimizer_updates.ema_momentum,
        rmsprop=optimizer_updates.rmsprop,
        adam=optimizer_updates.adam,
    )


def _make_backend(name, reason):
    if name not in KNOWN_BACKENDS:
        raise invalid_value("backend", f"one of {KNOWN_BACKENDS}", name)
    if name != "numpy":
        raise NotImplementedError(
            f"The {name!r} backend needs the GPU kernels, which are not built yet; use 'numpy'."
        )
    return Backend("numpy", np, numpy_ops(), reason)


_state = {"backend": None, "floatx": "float32"}


def get_backend():
    """The active Backend; chosen on first use from GPUDL_BACKEND, else numpy."""
    if _state["backend"] is None:
        requested = os.environ.get("GPUDL_BACKEND")
        if requested:
            _state["backend"] = _make_backend(requested, "GPUDL_BACKEND=" + requested)
        else:
            _state["backend"] = _make_backend("numpy", "default: no CUDA device with CuPy and Triton")
    return _state["backend"]


def set_backend(name):
    """Select the backend by name ("numpy", "triton", "cupy")."""
    _state["backend"] = _make_backend(name, "set_backend(" + repr(name) + ")")
    return _state["backend"]


def floatx():
    """The default float type of new models ("float32" unless set)."""
    return _state["floatx"]


def set_floatx(dtype):
    """Set the default float type of new models: "float32" or "float64"."""
    dtype = np.dtype(dtype).name
    if dtype not in FLOAT_TYPES:
        raise invalid_value("dtype", f"one of {FLOAT_TYPES}", dtype)
    _state["floatx"] = dtype
