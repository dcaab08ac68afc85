"""CUDA on the CPU: gpudl's CuPy kernels compiled with the host C++ compiler and run.

The CUDA C text of a kernel (a RawModule template, or an ElementwiseKernel expanded as
CuPy expands it) is compiled with g++ behind cuda_cpu.h, loaded with ctypes, and
launched the way CUDA launches it: every block, every thread, with __shared__ memory
per block and __syncthreads() a real barrier among the block's threads (fibers).

`cupy_on_cpu()` swaps the CuPy module the kernel launchers see for CPU_CUPY: NumPy
arrays stand in for CuPy arrays, and RawModule / ElementwiseKernel compile here. So the
launchers themselves (grids, splits, argument order, the host-side arithmetic between
launches) run unchanged on the CPU.
"""

import contextlib
import ctypes
import hashlib
import os
import subprocess
import tempfile
import threading
import types

import numpy as np

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_cpu.h")
# -ffp-contract=off: one rounding per operation, as NumPy rounds (nvcc may fuse a*b+c)
COMPILE_FLAGS = ("-std=c++17", "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-w")
CACHE = os.environ.get("GPUDL_CUDA_CPU_CACHE") or os.path.join(tempfile.gettempdir(),
                                                               f"gpudl-cuda-cpu-{os.getuid()}")
_libraries = {}
_lock = threading.Lock()


def compile_library(source, kernel_expressions):
    """Compile `source` with a launcher per kernel expression ("dropout_kernel<float>");
    returns {expression: launch function}. Cached on disk by the text of everything."""
    with open(HEADER) as f:
        header = f.read()
    launchers = "".join(f"CUDA_CPU_LAUNCHER(cuda_cpu_launch_{i}, {e})\n" for i, e in enumerate(kernel_expressions))
    text = f'#include "{HEADER}"\n{source}\n{launchers}'
    key = hashlib.sha256("\0".join((header, text, *COMPILE_FLAGS)).encode()).hexdigest()[:24]
    with _lock:
        if key not in _libraries:
            os.makedirs(CACHE, exist_ok=True)
            library = os.path.join(CACHE, key + ".so")
            if not os.path.exists(library):
                source_path = os.path.join(CACHE, key + ".cpp")
                with open(source_path, "w") as f:
                    f.write(text)
                partial = f"{library}.{os.getpid()}.tmp"
                done = subprocess.run(["g++", *COMPILE_FLAGS, source_path, "-o", partial],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"g++ could not compile the CUDA source:\n{done.stderr}")
                os.replace(partial, library)
            _libraries[key] = ctypes.CDLL(library)
    lib = _libraries[key]
    return {e: getattr(lib, f"cuda_cpu_launch_{i}") for i, e in enumerate(kernel_expressions)}


_SCALAR_CTYPES = {np.dtype(t): c for t, c in [
    (np.float32, ctypes.c_float), (np.float64, ctypes.c_double), (np.int32, ctypes.c_int32),
    (np.int64, ctypes.c_int64), (np.uint32, ctypes.c_uint32), (np.uint64, ctypes.c_uint64),
    (np.bool_, ctypes.c_bool)]}


GUARD_BYTES, GUARD = 256, 0xCD


class GuardedBuffers:
    """Each array argument runs in a copy with GUARD_BYTES of a known pattern on both
    sides; a kernel that writes outside its array changes the pattern and the launch
    raises. Arguments that share memory share one copy (in-place kernels stay in place)."""

    def __init__(self):
        self.copies = {}  # (address, nbytes) -> (array, guarded buffer)

    def pointer(self, array):
        if not array.flags.c_contiguous:
            raise ValueError(f"kernel argument of shape {array.shape} is not C-contiguous")
        key = (array.ctypes.data, array.nbytes)
        if key not in self.copies:
            buffer = np.full(array.nbytes + 2 * GUARD_BYTES, GUARD, np.uint8)
            buffer[GUARD_BYTES:GUARD_BYTES + array.nbytes] = array.reshape(-1).view(np.uint8)
            self.copies[key] = (array, buffer)
        return ctypes.c_void_p(self.copies[key][1].ctypes.data + GUARD_BYTES)

    def check_and_copy_back(self):
        for index, (array, buffer) in enumerate(self.copies.values()):
            guards = np.concatenate([buffer[:GUARD_BYTES], buffer[GUARD_BYTES + array.nbytes:]])
            if (guards != GUARD).any():
                raise RuntimeError(f"the kernel wrote outside array argument {index} "
                                   f"(shape {array.shape}, {array.dtype})")
            if array.flags.writeable:
                array.reshape(-1).view(np.uint8)[:] = buffer[GUARD_BYTES:GUARD_BYTES + array.nbytes]


def _argument(value, guarded):
    """The ctypes object CUDA would receive for one kernel argument."""
    if isinstance(value, np.ndarray):
        return guarded.pointer(value)
    if isinstance(value, np.generic):
        return _SCALAR_CTYPES[value.dtype](value.item())
    raise TypeError(f"kernel arguments must be arrays or NumPy scalars (CuPy's typed launch); "
                    f"received {type(value).__name__}")


def launch(function, grid, block, args):
    """Run `function` over the whole grid; args as cupy.RawKernel takes them."""
    grid, block = (tuple(d) + (1,) * (3 - len(d)) for d in (grid, block))
    guarded = GuardedBuffers()
    values = [_argument(a, guarded) for a in args]
    pointers = (ctypes.c_void_p * max(len(values), 1))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p)
                                                         for v in values])
    function(*map(ctypes.c_uint, grid + block), pointers)
    guarded.check_and_copy_back()


class RawModule:
    """cupy.RawModule on the CPU: the same source and name expressions."""

    def __init__(self, code, options=(), name_expressions=()):
        self.options = tuple(options)
        self.functions = compile_library(code, list(name_expressions))

    def get_function(self, expression):
        function = self.functions[expression]
        return lambda grid, block, args: launch(function, grid, block, args)


SCALARS_SEEN = {}  # ElementwiseKernel name -> the inputs its last call passed as scalars


class ElementwiseKernel:
    """cupy.ElementwiseKernel on the CPU for the parameter forms gpudl uses: typed or
    `T` arrays broadcast to one shape, scalars by value, `raw` arrays indexed directly;
    missing outputs are allocated; one block of 128 threads per 128 elements, at most 64
    blocks (so the grid-stride loop is exercised)."""

    BLOCK, MAX_BLOCKS = 128, 64

    def __init__(self, in_params, out_params, operation, name, loop_prep=""):
        from gpudl.kernels import _triton_util

        self.inputs = _triton_util.parse_params(in_params)
        self.outputs = _triton_util.parse_params(out_params)
        self.definition = _triton_util.CupyElementwise(in_params, out_params, operation, name, loop_prep)

    def __call__(self, *args):
        inputs, outputs = args[:len(self.inputs)], list(args[len(self.inputs):])
        T = next(np.dtype(a.dtype) for (raw, t, _), a in zip(self.inputs, inputs) if t == "T")
        shape = np.broadcast_shapes(*[a.shape for (raw, _, _), a in zip(self.inputs, inputs)
                                      if isinstance(a, np.ndarray) and not raw])
        scalars = tuple(name for (raw, _, name), a in zip(self.inputs, inputs) if not isinstance(a, np.ndarray))
        SCALARS_SEEN[self.definition.name] = scalars
        for (_, t, name), out in zip(self.outputs, outputs):
            if out.shape != shape:
                raise ValueError(f"{self.definition.name}: output `{name}` has shape {out.shape}, inputs {shape}")
        outputs += [CPU_CUPY.empty(shape, T if t == "T" else t) for _, t, _ in self.outputs[len(outputs):]]
        kernel = self.definition._replace(scalars=scalars)
        ctype = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[T]
        (function,) = compile_library(kernel.source(ctype), [kernel.name]).values()
        launch_args = []
        for (raw, t, name), a in zip(self.inputs, inputs):
            dtype = T if t == "T" else np.dtype(t)
            if raw:
                launch_args.append(a)
            elif isinstance(a, np.ndarray):
                launch_args.append(np.ascontiguousarray(np.broadcast_to(a.astype(dtype, copy=False), shape)))
            else:
                launch_args.append(dtype.type(a))
        n = int(np.prod(shape))
        blocks = max(1, min(-(-n // self.BLOCK), self.MAX_BLOCKS))
        launch(function, (blocks,), (self.BLOCK,), launch_args + outputs + [np.int64(n)])
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _poisoned(make):
    """np.empty / np.empty_like whose float arrays start as NaN: an element a launcher
    allocates and its kernel never writes shows up (as the GPU tests' pool poisoning does)."""
    def poisoned(*args, **kwargs):
        array = make(*args, **kwargs)
        if array.dtype.kind == "f":
            array.fill(np.nan)
        return array

    return poisoned


class _Device:
    attributes = {"MultiProcessorCount": 132}  # an H100 SXM: the launchers size grids by it


CPU_CUPY = types.SimpleNamespace(
    **{name: getattr(np, name) for name in ("arange", "asarray", "minimum", "zeros", "sqrt", "int64", "float32",
                                            "float64", "ascontiguousarray")},
    empty=_poisoned(np.empty), empty_like=_poisoned(np.empty_like),
    ndarray=np.ndarray, RawModule=RawModule, ElementwiseKernel=ElementwiseKernel,
    asnumpy=np.asarray, cuda=types.SimpleNamespace(Device=_Device))


@contextlib.contextmanager
def cupy_on_cpu():
    """Within this block the CuPy launchers of gpudl.kernels run through this harness."""
    from gpudl.kernels import _triton_util

    saved = _triton_util.cupy
    _triton_util.cupy = CPU_CUPY
    try:
        yield CPU_CUPY
    finally:
        _triton_util.cupy = saved
