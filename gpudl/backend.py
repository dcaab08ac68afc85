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

    @property
    def fuses_passes(self):
        """Whether a model runs its fused blocks (BN -> ReLU -> Dropout as one pass) here: on
        the GPU backends; the NumPy backend keeps the unfused reference path."""
        return self.name != "numpy"

    def synchronize(self):
        """Wait for queued device work (a no-op on the host)."""

    def free_cached_memory(self):
        """Give cached device memory back to the driver (between trials; a no-op on the host)."""


def op_table(suffix=""):
    """The fused ops of gpudl.kernels.OPS under their op-table names: suffix "" for the
    NumPy references, "_triton" or "_cupy" for the GPU kernels (same signatures); plus
    the training dropout pair made from `dropout`."""
    from gpudl import kernels

    ops = {op.name: kernels.implementation(op, suffix) for op in kernels.OPS}
    ops["dropout_train"], ops["dropout_backward"] = _dropout_train_and_backward(ops["dropout"], suffix)
    return SimpleNamespace(**ops)


def _dropout_train_and_backward(dropout_kernel, suffix):
    """The training dropout ops: dropout_train(x, rate, seed, seed_counter, offset) -> (y, saved) and
    dropout_backward(dy, saved, rate, seed, seed_counter, offset) -> dx (offset: x is elements
    [offset, offset + x.size) of a larger array, a data-parallel process's rows). NumPy keeps the forward's
    keep-mask for the backward (Philox in NumPy costs more than a byte per element); the GPU
    kernels draw the mask again from the key, so they save nothing (no mask memory)."""
    if not suffix:
        from gpudl.kernels import dropout

        return dropout.dropout_train, dropout.dropout_backward
    def train(x, rate, seed, seed_counter=None, offset=0):
        return dropout_kernel(x, rate, seed, seed_counter, offset), None

    def backward(dy, saved, rate, seed, seed_counter=None, offset=0):
        return dropout_kernel(dy, rate, seed, seed_counter, offset)
    return train, backward


def cuda_device_count():
    """CUDA devices visible through CuPy (0 without CuPy or a driver)."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # ImportError, or CUDARuntimeError without a driver
        return 0


def triton_available():
    try:
        import triton  # noqa: F401

        return True
    except ImportError:
        return False


class CupyBackend(Backend):
    def synchronize(self):
        self.xp.cuda.get_current_stream().synchronize()

    def free_cached_memory(self):
        self.synchronize()
        self.xp.get_default_memory_pool().free_all_blocks()
        self.xp.get_default_pinned_memory_pool().free_all_blocks()


def _make_backend(name, reason):
    if name not in KNOWN_BACKENDS:
        raise invalid_value("backend", f"one of {KNOWN_BACKENDS}", name)
    if name == "numpy":
        return Backend("numpy", np, op_table(), reason)
    if name == "triton" and not triton_available():
        raise RuntimeError("The 'triton' backend needs Triton: pip install 'gpudl[gpu]'.")
    if cuda_device_count() > 0:
        import cupy

        return CupyBackend(name, cupy, op_table("_" + name), reason)
    if name == "triton" and os.environ.get("TRITON_INTERPRET") == "1":
        return Backend(name, np, op_table("_triton"), reason + "; no CUDA device: Triton interpreter on the CPU")
    raise RuntimeError(f"The {name!r} backend needs a CUDA device with CuPy (pip install 'gpudl[gpu]'); "
                       f"none was found. Use 'numpy', or 'triton' with TRITON_INTERPRET=1 to test the "
                       f"Triton kernels on the CPU.")


_state = {"backend": None, "floatx": "float32"}


def get_backend():
    """The active Backend; chosen on first use from GPUDL_BACKEND, else numpy."""
    if _state["backend"] is None:
        requested = os.environ.get("GPUDL_BACKEND")
        if requested:
            _state["backend"] = _make_backend(requested, "GPUDL_BACKEND=" + requested)
        elif cuda_device_count() > 0 and triton_available():
            _state["backend"] = _make_backend("triton", "default: a CUDA device with CuPy and Triton")
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


def backend():
    """The active backend's name ("numpy", "triton" or "cupy"), as keras.backend.backend()."""
    return get_backend().name


def epsilon():
    """Keras's fuzz factor (1e-7), used where Keras clips probabilities."""
    return 1e-7


def clear_session(free_memory=True):
    """Keras's reset: layer names count from zero again (dense, dense_1, ...) and, with
    `free_memory`, the backend's cached device memory is released."""
    from gpudl.naming import reset_names

    reset_names()
    if free_memory and _state["backend"] is not None:
        _state["backend"].free_cached_memory()
