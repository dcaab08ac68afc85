"""Array plumbing shared by the Triton and CuPy launchers of gpudl.kernels, and the
kernels described as data (CupyRaw, CupyElementwise, TritonSpec) for the compile checks
and the CUDA-on-CPU harness.

Triton launches a kernel on anything with ``data_ptr()`` and a ``dtype``:
    numpy array  -> torch.from_numpy(a)      (zero-copy; CPU, needs TRITON_INTERPRET=1
                                              set before triton is first imported)
    cupy array   -> DevicePointer(a)         (the two-line pointer adapter)
Both triton and cupy are optional: importing this module needs only NumPy.
"""

import os
import sys
from typing import NamedTuple

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


def poisoned(make):
    """`make` (np.empty, np.empty_like) whose float arrays start as NaN: an element a
    launcher allocates and its kernel never writes shows up."""
    def poisoned_make(*args, **kwargs):
        array = make(*args, **kwargs)
        if array.dtype.kind == "f":
            array.fill(np.nan)
        return array

    return poisoned_make


class _PoisonedNumpy:
    """numpy, except that empty and empty_like fill float arrays with NaN."""
    empty = staticmethod(poisoned(np.empty))
    empty_like = staticmethod(poisoned(np.empty_like))

    def __getattr__(self, name):
        return getattr(np, name)


POISONED_NUMPY = _PoisonedNumpy()
# what xp_of returns for NumPy arrays: gpudl.tools's CPU checks swap in POISONED_NUMPY
# (outputs start as NaN) or a namespace of unbacked arrays (the index-overflow check)
cpu_namespace = np


def xp_of(array):
    """The array namespace (numpy or cupy) that owns `array`."""
    return cupy if is_cupy(array) else cpu_namespace


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


# GPUDL_GPU_SIZES=1: the launchers pick block sizes and grids as on an H100/H200 (132 SMs)
# even in the interpreter, so the CPU checks run the kernels as a GPU launches them
GPU_SIZES = os.environ.get("GPUDL_GPU_SIZES") == "1"
H100_SMS = 132


def interpreter_sizes():
    """True when the launchers pick the interpreter's small sizes (interpreting, and
    GPUDL_GPU_SIZES unset): fewer, smaller programs, each run as vectorized NumPy."""
    return interpreting() and not GPU_SIZES


def num_programs_target():
    """How many programs a grid should have to fill the machine.

    GPU: 4 per SM keeps every SM busy while loads are in flight (an H100's 132 SMs under
    GPUDL_GPU_SIZES). Interpreter: few programs, but more than one so splits are tested.
    """
    if interpreter_sizes():
        return 4
    if interpreting():
        return 4 * H100_SMS
    if cupy is not None:
        return 4 * cupy.cuda.Device().attributes["MultiProcessorCount"]
    import torch

    return 4 * torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def cdiv(a, b):
    return -(-a // b)


def next_power_of_2(n):
    return 1 << max(int(n) - 1, 0).bit_length()


# ---------------------------------------------------------------------------
# CuPy kernels as data: each kernel module lists the kernels its launchers use
# (CUPY_KERNELS), so the NVRTC compile check and the CUDA-on-CPU harness build
# exactly the strings the launchers hand to CuPy.
# ---------------------------------------------------------------------------

CUPY_OPTIONS = ("-std=c++14",)  # what the launchers pass to cupy.RawModule
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


class CupyRaw(NamedTuple):
    """A RawModule template `name<T>` in `source`, instantiated for T = float and double."""

    source: str
    name: str

    def expression(self, dtype):
        return f"{self.name}<{CTYPES[np.dtype(dtype)]}>"


_PARAM_CTYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long",
                 "uint32": "unsigned int", "uint64": "unsigned long long", "bool": "bool"}


def parse_params(params):
    """CuPy's parameter string ("T x, raw float64 table, bool relu") as (raw, type, name) triples."""
    parsed = []
    for param in params.split(","):
        words = param.split()
        raw = words[0] == "raw"
        type_name, name = words[-2:]
        parsed.append((raw, type_name, name))
    return parsed


class CupyElementwise(NamedTuple):
    """An elementwise kernel written as CuPy's ElementwiseKernel strings, launched as the
    raw kernel `source(ctype)` (cupy.RawModule): the exact text the launchers compile is
    the text the NVRTC check and the CUDA-on-CPU harness compile. `scalars` names the
    inputs passed by value; `columns` the inputs that are per-column vectors broadcast
    over the rows of an (N, C) array (element i reads column i % C)."""

    in_params: str
    out_params: str
    operation: str
    name: str
    loop_prep: str = ""
    scalars: tuple = ()
    columns: tuple = ()

    def source(self, ctype):
        """The CUDA C of this kernel with T = ctype: typed parameters, loop_prep, then a
        grid-stride loop binding each element (as CuPy's ElementwiseKernel expands it)."""
        params, bind = [], []
        for raw, type_name, name in parse_params(self.in_params):
            ctype_name = _PARAM_CTYPES.get(type_name, type_name)
            if raw:
                params.append(f"const {ctype_name}* {name}")
            elif name in self.scalars:
                params.append(f"const {ctype_name} {name}")
            else:
                params.append(f"const {ctype_name}* _raw_{name}")
                index = "i % _columns" if name in self.columns else "i"
                bind.append(f"const {ctype_name} {name} = _raw_{name}[{index}];")
        for raw, type_name, name in parse_params(self.out_params):
            ctype_name = _PARAM_CTYPES.get(type_name, type_name)
            params.append(f"{ctype_name}* _raw_{name}")
            bind.append(f"{ctype_name} &{name} = _raw_{name}[i];")
        params.append("long long _n")
        if self.columns:
            params.append("long long _columns")
        return (f"typedef {ctype} T;\n"
                f"extern \"C\" __global__ void {self.name}({', '.join(params)}) {{\n"
                f"    {self.loop_prep};\n"
                f"    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < _n;\n"
                f"         i += (long long)blockDim.x * gridDim.x) {{\n"
                f"        {' '.join(bind)}\n"
                f"        {self.operation};\n"
                f"    }}\n"
                f"}}\n")

    def expression(self, dtype):
        return self.name


_cupy_functions = {}


def cupy_function(kernel, dtype):
    """The compiled kernel (a CupyRaw template, or a CupyElementwise's raw source) for
    `dtype`, cached: cupy.RawModule with CUPY_OPTIONS."""
    require_cupy(kernel.name)
    expression = kernel.expression(dtype)
    source = kernel.source if isinstance(kernel, CupyRaw) else kernel.source(CTYPES[np.dtype(dtype)])
    key = (id(cupy), expression, source)
    if key not in _cupy_functions:
        module = cupy.RawModule(code=source, options=CUPY_OPTIONS, name_expressions=[expression])
        _cupy_functions[key] = module.get_function(expression)
    return _cupy_functions[key]


ELEMENTWISE_THREADS = 256


def launch_elementwise(kernel, *args):
    """Launch a CupyElementwise as a cupy.ElementwiseKernel is called: the inputs in order
    (arrays, `raw` arrays, scalars), then the outputs (missing ones are allocated with the
    shape and T of the first elementwise input); returns the output(s). A grid-stride loop
    over at most num_programs_target() blocks of ELEMENTWISE_THREADS."""
    inputs = parse_params(kernel.in_params)
    outputs = parse_params(kernel.out_params)
    given, outputs_given = args[:len(inputs)], list(args[len(inputs):])
    elementwise = [(name, a) for (raw, _, name), a in zip(inputs, given)
                   if not raw and name not in kernel.scalars and name not in kernel.columns]
    first_name, first = elementwise[0]
    shape, T = first.shape, first.dtype
    for name, a in elementwise + [(name, a) for (_, _, name), a in zip(outputs, outputs_given)]:
        if a.shape != shape or a.dtype != T:
            raise ValueError(f"{kernel.name}: `{name}` is {a.dtype} of shape {a.shape}; expected {T} of shape "
                             f"{shape} (as `{first_name}`)")
    launch_args = []
    for (raw, type_name, name), a in zip(inputs, given):
        if name in kernel.columns and (a.shape != shape[-1:] or a.dtype != T):
            raise ValueError(f"{kernel.name}: `{name}` is {a.dtype} of shape {a.shape}; expected {T} of shape "
                             f"{shape[-1:]} (one value per column)")
        dtype = T if type_name == "T" else np.dtype(_NUMPY_NAMES.get(type_name, type_name))
        launch_args.append(dtype.type(a) if name in kernel.scalars else a)
    xp = xp_of(first)
    outputs_given += [xp.empty(shape, T if t == "T" else t) for _, t, _ in outputs[len(outputs_given):]]
    n = int(np.prod(shape))
    launch_args += outputs_given + [np.int64(n)] + ([np.int64(shape[-1])] if kernel.columns else [])
    blocks = max(1, min(cdiv(n, ELEMENTWISE_THREADS), num_programs_target()))
    cupy_function(kernel, T)((blocks,), (ELEMENTWISE_THREADS,), tuple(launch_args))
    return outputs_given[0] if len(outputs_given) == 1 else tuple(outputs_given)


_NUMPY_NAMES = {"bool": "bool_"}


# ---------------------------------------------------------------------------
# Triton specializations as data: each kernel module's triton_specializations()
# lists every (kernel, argument types, constexprs, num_warps) its launchers can
# launch, computed with the launchers' own block-size choices, for the ahead-of-time
# compile check (gpudl.tools.selftest).
# ---------------------------------------------------------------------------

TRITON_DTYPES = {np.dtype(np.float32): "fp32", np.dtype(np.float64): "fp64"}


class TritonSpec(NamedTuple):
    kernel: object  # the @triton.jit function
    label: str  # the launcher's choices, e.g. "fp32 RELU=1 BLOCK_N=32 BLOCK_C=64"
    signature: dict  # parameter name -> Triton type ("*fp32", "i32", "fp64", "constexpr")
    constexprs: dict
    num_warps: int = 4


def triton_spec(kernel, dtype, constexprs, num_warps=4, **pointer_types):
    """The TritonSpec of launching `kernel` on `dtype` data with these constexprs.

    Argument types follow the launchers: `*_ptr` parameters point at `dtype` unless named
    in pointer_types; annotated parameters (tl.float64, tl.uint64) keep their annotation;
    other integers are sizes below 2**31 (i32), as Triton types them at launch.
    """
    element = TRITON_DTYPES[np.dtype(dtype)]
    signature = {}
    for param in kernel.params:
        if param.is_constexpr:
            signature[param.name] = "constexpr"
        elif param.annotation:
            signature[param.name] = param.annotation
        elif param.name.endswith("_ptr"):
            signature[param.name] = pointer_types.get(param.name, "*" + element)
        else:
            signature[param.name] = "i32"
    label = " ".join([element] + [f"{k}={int(v)}" for k, v in constexprs.items()]
                     + ([f"warps={num_warps}"] if num_warps != 4 else []))
    return TritonSpec(kernel, label, signature, dict(constexprs), num_warps)


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
