"""Array plumbing shared by the Triton and CuPy launchers of gpudl.kernels.

Triton launches a kernel on anything with ``data_ptr()`` and a ``dtype``:
    numpy array  -> torch.from_numpy(a)      (zero-copy; CPU, needs TRITON_INTERPRET=1
                                              set before triton is first imported)
    cupy array   -> DevicePointer(a)         (the two-line pointer adapter)
Both triton and cupy are optional: importing this module needs only NumPy.
"""

import sys

import numpy as np

try:
    import triton
    import triton.language as tl
except ImportError:  # NumPy-only install: the Triton launchers raise when called
    triton = None
    tl = None

try:
    import cupy
except ImportError:  # no CuPy: the CuPy launchers raise when called
    cupy = None

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class DevicePointer:
    """What Triton needs of a CuPy array: its device address and its dtype."""

    def __init__(self, array):
        self.array = array
        self.dtype = array.dtype

    def data_ptr(self):
        return self.array.data.ptr


def is_cupy(array):
    return cupy is not None and isinstance(array, cupy.ndarray)


def xp_of(array):
    """The array namespace (numpy or cupy) that owns `array`."""
    return cupy if is_cupy(array) else np


def require_triton(where):
    if triton is None:
        raise ImportError(f"{where}: Triton is not installed (pip install 'gpudl[gpu]').")


def require_cupy(where):
    if cupy is None:
        raise ImportError(f"{where}: CuPy is not installed (pip install 'gpudl[gpu]').")


# @triton.jit picks the interpreter when a kernel is defined, and the kernel modules
# define theirs right after importing this one: record the choice once, here.
INTERPRETED = triton is not None and bool(triton.knobs.runtime.interpret)


def interpreting():
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1 at import)."""
    return INTERPRETED


def check_arrays(where, arrays, device):
    """Check that every array in the dict `arrays` is C-contiguous and lives on `device`.

    device: "triton" (all NumPy under the interpreter, or all CuPy) or "cupy".
    """
    kinds = {is_cupy(a) for a in arrays.values()}
    if len(kinds) > 1:
        raise ValueError(f"{where}: mixing NumPy and CuPy arrays ({', '.join(arrays)}); "
                         f"expected all on one device.")
    on_gpu = kinds == {True}
    for name, array in arrays.items():
        if not (on_gpu or isinstance(array, np.ndarray)):
            raise ValueError(f"{where}: `{name}` must be a NumPy or CuPy array; "
                             f"received {type(array).__name__}.")
        if not array.flags.c_contiguous:
            raise ValueError(f"{where}: `{name}` must be C-contiguous; received strides "
                             f"{array.strides} for shape {array.shape}.")
    if device == "cupy" and not on_gpu:
        raise ValueError(f"{where}: the CuPy kernels need CuPy arrays; received NumPy arrays.")
    if device == "triton" and not on_gpu and not interpreting():
        raise ValueError(f"{where}: NumPy arrays run Triton kernels only in the interpreter; "
                         f"set TRITON_INTERPRET=1 before triton is first imported, or pass CuPy arrays.")


def check_float_dtype(where, arrays):
    """All arrays in the dict share one dtype, float32 or float64; returns it."""
    dtypes = {name: np.dtype(a.dtype) for name, a in arrays.items()}
    first = next(iter(dtypes.values()))
    if first not in FLOAT_DTYPES:
        raise ValueError(f"{where}: expected float32 or float64 arrays; received "
                         f"{next(iter(dtypes))}.dtype={first}.")
    for name, dtype in dtypes.items():
        if dtype != first:
            raise ValueError(f"{where}: all float arrays must share one dtype; received "
                             f"{next(iter(dtypes))}.dtype={first} but {name}.dtype={dtype}.")
    return first


def check_shape(where, name, array, shape):
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{where}: `{name}` must have shape {tuple(shape)}; "
                         f"received {tuple(array.shape)}.")


def check_counter(where, name, array, length):
    """A device counter (step state the kernels read through a pointer): int64, shape (length,)."""
    if np.dtype(array.dtype) != np.int64 or tuple(array.shape) != (length,):
        raise ValueError(f"{where}: `{name}` must be an int64 array of shape ({length},); "
                         f"received {np.dtype(array.dtype)} of shape {tuple(array.shape)}.")


def as_triton(array):
    """The object handed to a Triton kernel for `array` (zero-copy)."""
    if is_cupy(array):
        return DevicePointer(array)
    import torch

    return torch.from_numpy(array)


class _NoStream:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def launch_stream(array):
    """Context manager: launch Triton on CuPy's current stream (through torch when loaded).

    Triton launches on torch's current stream when torch is imported, else on the
    device's default stream; inside this context both match CuPy's current stream.
    """
    torch = sys.modules.get("torch")
    if not is_cupy(array) or torch is None or not torch.cuda.is_available():
        return _NoStream()
    stream = cupy.cuda.get_current_stream()
    return torch.cuda.stream(torch.cuda.ExternalStream(stream.ptr))


def num_programs_target():
    """How many programs a grid should have to fill the machine.

    GPU: 4 per SM keeps every SM busy while loads are in flight. Interpreter: few
    programs (each runs as vectorized NumPy), but more than one so splits are tested.
    """
    if interpreting():
        return 4
    if cupy is not None:
        return 4 * cupy.cuda.Device().attributes["MultiProcessorCount"]
    import torch

    return 4 * torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def cdiv(a, b):
    return -(-a // b)


def next_power_of_2(n):
    return 1 << max(int(n) - 1, 0).bit_length()


_cupy_functions = {}


def cupy_function(source, name, dtype):
    """The CUDA template `name<T>` of `source` compiled for T = float or double (cached)."""
    require_cupy(name)
    ctype = "float" if np.dtype(dtype) == np.float32 else "double"
    key = (name, ctype, source)
    if key not in _cupy_functions:
        expression = f"{name}<{ctype}>"
        module = cupy.RawModule(code=source, options=("-std=c++14",), name_expressions=[expression])
        _cupy_functions[key] = module.get_function(expression)
    return _cupy_functions[key]


if triton is not None:

    @triton.jit
    def reciprocal_sqrt(x):
        """1 / sqrt(x) correctly rounded (tl.sqrt_rn and tl.div_rn take float32 only;
        float64 sqrt and division are IEEE already)."""
        if x.dtype == tl.float32:
            y = tl.div_rn(tl.full(x.shape, 1.0, tl.float32), tl.sqrt_rn(x))
        else:
            y = 1.0 / tl.sqrt(x)
        return y

    @triton.jit
    def sqrt_ieee(x):
        """sqrt(x) correctly rounded, as NumPy computes it."""
        if x.dtype == tl.float32:
            y = tl.sqrt_rn(x)
        else:
            y = tl.sqrt(x)
        return y

    @triton.jit
    def divide_ieee(a, b):
        """a / b correctly rounded, as NumPy computes it (Triton's float32 `/` is approximate)."""
        if a.dtype == tl.float32:
            y = tl.div_rn(a, b)
        else:
            y = a / b
        return y
