"""The launches, host syncs and device bytes of a training step, counted on the CPU.

The real triton and cupy backend code of a step (layers, loss, optimizer, the kernel
launchers) runs against a recording stand-in for the device:

    DeviceArray   an ndarray subclass standing in for cupy.ndarray: every ufunc call
                  (elementwise, reduction, matmul), every NumPy function applied to one,
                  every copy, fill and fancy index is one recorded launch with the bytes
                  of the device arrays it reads and writes; views are free; .get(),
                  float(), int(), bool() and .item() are host syncs (device-to-host reads)
    RECORDING_CUPY  the `cupy` module the kernel launchers and the backend's `xp` see:
                  creation (empty: free; zeros, full: a fill launch), uploads (asarray of a
                  host array), RawModule compiled and run by the
                  CUDA-on-CPU harness and recorded as one launch each
    Triton        each launched @triton.jit kernel runs in the interpreter; its launch is
                  recorded with the bytes its tl.load / tl.store calls actually moved

A GEMM (matmul, vdot) is a launch with flops 2 m k n. Bytes of a RawKernel: each distinct
array argument once; a `const` pointer is read, another is written, and read too unless
freshly allocated (empty) and not yet written. Grids are sized for an H200 (132 SMs).

    python -m gpudl.tools.count [--json PATH]      (or: gpudl bench --count)
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import types
from typing import NamedTuple

import numpy as np

H200 = {"name": "NVIDIA H200 (SXM)", "sms": 132, "fp32_flops": 67e12, "bytes_per_s": 4.8e12,
        "launch_s": 4e-6}  # per-launch cost: an assumption (back-to-back small kernels), not measured here
REDUCTION_KERNELS = {"_partial_stats_kernel", "_finalize_stats_kernel", "_backward_partial_kernel",
                     "_backward_finalize_kernel", "bn_partial_stats", "bn_finalize_stats", "bn_backward_partial"}


class Launch(NamedTuple):
    kind: str  # "triton", "raw", "elementwise" (the fused kernels), "array" (a cupy array op), "gemm", "fill"
    name: str
    read: int  # bytes
    written: int
    elements_written: int
    flops: int = 0
    where: str = ""  # "<layer> forward|backward", or "" outside the layers


class Recorder:
    """Collects Launch rows, host syncs and uploads while `active`."""

    def __init__(self):
        self.launches, self.syncs, self.uploads, self.upload_bytes, self.host_operands = [], 0, 0, 0, 0
        self.fresh = set()  # buffers allocated by empty() and not yet written
        self.where = ""

    def launch(self, kind, name, reads, writes, flops=0):
        """Record one launch reading the arrays `reads` and writing `writes` (each buffer once)."""
        read = {_buffer(a): a.nbytes for a in reads if isinstance(a, np.ndarray)}
        written = {_buffer(a): a for a in writes if isinstance(a, np.ndarray)}
        for key in written:
            self.fresh.discard(key)
        self.launches.append(Launch(kind, name, sum(read.values()), sum(a.nbytes for a in written.values()),
                                    sum(a.size for a in written.values()), int(flops), self.where))

    def sync(self):
        self.syncs += 1

    def snapshot(self):
        return len(self.launches), self.syncs, self.uploads, self.upload_bytes


RECORDER = Recorder()


def _buffer(array):
    """The memory an array covers: (first address, bytes)."""
    return array.__array_interface__["data"][0], array.nbytes


def _host(value):
    """DeviceArray -> plain ndarray (a view), through lists and tuples."""
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    return value


def _device(value):
    """ndarray results (and NumPy scalars: CuPy returns 0-d arrays) -> DeviceArray."""
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
        return value.view(DeviceArray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_device(v) for v in value)
    return value


def _device_arrays(values):
    found = []
    for value in values:
        if isinstance(value, DeviceArray):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(_device_arrays(value))
        elif isinstance(value, np.ndarray) and value.ndim > 0:
            RECORDER.host_operands += 1  # CuPy would refuse a host array here
    return found


FREE_FUNCTIONS = {"reshape", "ravel", "transpose", "broadcast_to", "shape", "ndim", "size", "result_type",
                  "squeeze", "expand_dims", "may_share_memory", "shares_memory", "swapaxes", "atleast_1d",
                  "atleast_2d", "empty_like", "iscomplexobj", "isrealobj", "ndim", "broadcast_arrays"}
GEMMS = {"matmul", "dot", "vdot", "inner"}


def _gemm_flops(a, b):
    """2 m k n of a product of a (.., m, k) and b (k, n) (vectors: 2 k)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim <= 1 or b.ndim <= 1:
        return 2 * max(a.size, b.size)
    return 2 * a.shape[-2] * a.shape[-1] * b.shape[-1]


class DeviceArray(np.ndarray):
    """cupy.ndarray on the CPU, recording what it would launch (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if out is not None:
            kwargs["out"] = tuple(_host(o) for o in out)
        result = getattr(ufunc, method)(*_host(inputs), **kwargs)
        outputs = list(out) if out is not None else [r for r in (result if isinstance(result, tuple) else (result,))]
        outputs = [np.asarray(o) for o in outputs]
        reads = _device_arrays(inputs)
        if ufunc.__name__ in GEMMS:
            RECORDER.launch("gemm", ufunc.__name__, reads, outputs, _gemm_flops(*inputs[:2]))
        else:
            RECORDER.launch("array", ufunc.__name__ + ("" if method == "__call__" else "." + method), reads,
                            outputs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _device(result)

    def __array_function__(self, func, types_, args, kwargs):
        result = func(*_host(args), **{k: _host(v) for k, v in kwargs.items()})
        name = func.__name__
        if name not in FREE_FUNCTIONS:
            reads = _device_arrays(list(args) + list(kwargs.values()))
            outputs = [r for r in (result if isinstance(result, tuple) else (result,)) if isinstance(r, np.ndarray)]
            if "out" in kwargs and kwargs["out"] is not None:
                outputs = [kwargs["out"]]
            if name in GEMMS:
                RECORDER.launch("gemm", name, reads, outputs, _gemm_flops(args[0], args[1]))
            else:
                RECORDER.launch("array", name, reads, outputs or [np.asarray(result)])
        return _device(result)

    def __getitem__(self, index):
        result = super().__getitem__(index)
        if _advanced(index):
            RECORDER.launch("array", "gather", [self], [result])
        return _device(result) if isinstance(result, np.ndarray) else np.asarray(result).view(DeviceArray)

    def __setitem__(self, index, value):
        target = self.view(np.ndarray)[index] if not _advanced(index) else None
        np.ndarray.__setitem__(self.view(np.ndarray), index, _host(value))
        RECORDER.launch("array", "copy" if isinstance(value, np.ndarray) else "fill",
                        [value] if isinstance(value, DeviceArray) else [],
                        [target if isinstance(target, np.ndarray) else self])

    def copy(self, order="C"):
        result = np.ndarray.copy(self.view(np.ndarray), order)
        RECORDER.launch("array", "copy", [self], [result])
        return result.view(DeviceArray)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        result = self.view(np.ndarray).astype(dtype, order=order, casting=casting)
        RECORDER.launch("array", "astype", [self], [result])
        return result.view(DeviceArray)

    def argmax(self, axis=None, out=None, *, keepdims=False):
        """An index reduction: one launch (NumPy's method reaches neither protocol)."""
        return self._index_reduction(np.ndarray.argmax, axis, out, keepdims)

    def argmin(self, axis=None, out=None, *, keepdims=False):
        return self._index_reduction(np.ndarray.argmin, axis, out, keepdims)

    def _index_reduction(self, method, axis, out, keepdims):
        result = np.asarray(method(self.view(np.ndarray), axis, _host(out), keepdims=keepdims))
        RECORDER.launch("array", method.__name__, [self], [out if out is not None else result])
        return out if out is not None else _device(result)

    def fill(self, value):
        self.view(np.ndarray).fill(value)
        RECORDER.launch("fill", "fill", [], [self])

    def get(self, stream=None):
        """Device to host: a sync."""
        RECORDER.sync()
        return np.array(self.view(np.ndarray))

    def item(self, *args):
        RECORDER.sync()
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        RECORDER.sync()
        return self.view(np.ndarray).tolist()

    def __float__(self):
        RECORDER.sync()
        return float(self.view(np.ndarray))

    def __int__(self):
        RECORDER.sync()
        return int(self.view(np.ndarray))

    def __bool__(self):
        RECORDER.sync()
        return bool(self.view(np.ndarray))

    def __index__(self):
        RECORDER.sync()
        return self.view(np.ndarray).__index__()


def _advanced(index):
    """Whether an index is NumPy advanced indexing (a gather/scatter kernel, not a view)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


# -- the cupy module the backend and the launchers see --------------------------------------
def _poisoned(array):
    """Fresh allocations start as NaN (an element never written shows), as in the harness."""
    if array.dtype.kind == "f":
        array.fill(np.nan)
    RECORDER.fresh.add(_buffer(array))
    return array.view(DeviceArray)


def _empty(shape, dtype=float, order="C"):
    return _poisoned(np.empty(shape, dtype, order))


def _empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return _poisoned(np.empty_like(_host(a), dtype=dtype, shape=shape))


def _filled(array):
    out = array.view(DeviceArray)
    RECORDER.launch("fill", "fill", [], [array])
    return out


def _asarray(a, dtype=None, order=None):
    if isinstance(a, DeviceArray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    host = np.array(a, dtype=dtype, order="C")
    RECORDER.uploads += 1
    RECORDER.upload_bytes += host.nbytes
    return host.view(DeviceArray)


def _array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, DeviceArray):
        return a.astype(a.dtype if dtype is None else dtype) if copy else _asarray(a, dtype)
    return _asarray(a, dtype)


class _Stream:
    ptr = 0

    def synchronize(self):
        RECORDER.sync()


class _Device:
    attributes = {"MultiProcessorCount": H200["sms"]}

    def __init__(self, index=0):
        pass


class _MemoryPool:
    def free_all_blocks(self):
        pass


class _RecordedRawModule:
    """cupy.RawModule through the CUDA-on-CPU harness; each launch is recorded."""

    def __init__(self, code, options=(), name_expressions=()):
        from gpudl.tools import cuda_cpu

        self.module = cuda_cpu.RawModule(code, options, name_expressions)
        self.code = code

    def get_function(self, expression):
        run = self.module.get_function(expression)
        name = expression.split("<")[0]
        const = _const_parameters(self.code, name)

        def launch(grid, block, args):
            arrays = [(i, a) for i, a in enumerate(args) if isinstance(a, np.ndarray)]
            writes = [a for i, a in arrays if i not in const]
            reads = [a for i, a in arrays if i in const or _buffer(a) not in RECORDER.fresh]
            run(grid, block, [_host(a) for a in args])
            RECORDER.launch("raw", name, reads, writes)

        return launch


def _const_parameters(source, name):
    """Indices of the `const T*` parameters of __global__ function `name` in `source`."""
    match = re.search(r"__global__\s+void\s+" + re.escape(name) + r"\s*\(([^)]*)\)", source)
    params = [p.strip() for p in match.group(1).split(",")]
    return {i for i, p in enumerate(params) if p.startswith("const") and "*" in p}


def _namespace():
    """The recording `cupy`: NumPy's functions (DeviceArray's protocols record them), with
    CuPy's creation functions, kernels and device queries."""
    namespace = types.SimpleNamespace(**{name: getattr(np, name) for name in dir(np) if not name.startswith("_")})
    vars(namespace).update(
        __name__="cupy", ndarray=DeviceArray,
        empty=_empty, empty_like=_empty_like,
        zeros=lambda shape, dtype=float, order="C": _filled(np.zeros(shape, dtype)),
        ones=lambda shape, dtype=float, order="C": _filled(np.ones(shape, dtype)),
        full=lambda shape, value, dtype=None, order="C": _filled(np.full(shape, value, dtype)),
        zeros_like=lambda a, dtype=None, **kw: _filled(np.zeros_like(_host(a), dtype=dtype)),
        ones_like=lambda a, dtype=None, **kw: _filled(np.ones_like(_host(a), dtype=dtype)),
        full_like=lambda a, value, dtype=None, **kw: _filled(np.full_like(_host(a), value, dtype=dtype)),
        arange=lambda *args, **kw: _filled(np.arange(*args, **kw)),
        asarray=_asarray, array=_array, ascontiguousarray=lambda a, dtype=None: _asarray(a, dtype),
        asnumpy=lambda a, stream=None: a.get() if isinstance(a, DeviceArray) else np.asarray(a),
        RawModule=_RecordedRawModule,
        get_default_memory_pool=_MemoryPool, get_default_pinned_memory_pool=_MemoryPool,
        cuda=types.SimpleNamespace(Device=_Device, get_current_stream=lambda: _Stream(),
                                   runtime=types.SimpleNamespace(getDeviceCount=lambda: 1)))
    return namespace


RECORDING_CUPY = _namespace()


# -- Triton: each launched kernel recorded with the bytes its loads and stores moved -----------
class _Traffic:
    read = written = elements_written = 0


def _launched_triton_kernels():
    """{(module, attribute): kernel} of every @triton.jit kernel the launchers launch (the
    kernel modules name them *_kernel; helpers called from kernels are named otherwise)."""
    import importlib

    from triton.runtime.interpreter import InterpretedFunction

    from gpudl import kernels

    found = {}
    for module_name in kernels.MODULES:
        module = importlib.import_module(f"gpudl.kernels.{module_name}")
        for attribute, value in vars(module).items():
            if attribute.endswith("_kernel") and isinstance(value, InterpretedFunction):
                found[(module, attribute)] = value
    return found


class _RecordedTritonKernel:
    def __init__(self, kernel, name, traffic):
        self.kernel, self.name, self.traffic = kernel, name, traffic

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            before = (self.traffic.read, self.traffic.written, self.traffic.elements_written)
            launch(*args, **kwargs)
            RECORDER.launches.append(Launch("triton", self.name, self.traffic.read - before[0],
                                            self.traffic.written - before[1],
                                            self.traffic.elements_written - before[2], 0, RECORDER.where))

        return run


@contextlib.contextmanager
def _recording_triton():
    from triton.runtime import interpreter

    from gpudl.kernels import _triton_util

    traffic = _Traffic()
    builder = interpreter.interpreter_builder
    load, store = builder.create_masked_load, builder.create_masked_store

    def counted_load(ptrs, mask, other, cache_policy, is_volatile):
        result = load(ptrs, mask, other, cache_policy, is_volatile)
        traffic.read += int(np.count_nonzero(np.broadcast_to(mask.data, ptrs.data.shape))) * result.data.itemsize
        return result

    def counted_store(ptrs, value, mask, cache_policy):
        elements = int(np.count_nonzero(np.broadcast_to(mask.data, ptrs.data.shape)))
        traffic.written += elements * value.data.itemsize
        traffic.elements_written += elements
        return store(ptrs, value, mask, cache_policy)

    swapped = _launched_triton_kernels()
    builder.create_masked_load, builder.create_masked_store = counted_load, counted_store
    for (module, attribute), kernel in swapped.items():
        setattr(module, attribute, _RecordedTritonKernel(kernel, attribute, traffic))
    saved_as_triton = _triton_util.as_triton
    _triton_util.as_triton = lambda array: saved_as_triton(_host(array)) if isinstance(array, DeviceArray) \
        else saved_as_triton(array)
    try:
        yield
    finally:
        builder.create_masked_load, builder.create_masked_store = load, store  # as before (a sanitizer's, if installed)
        for (module, attribute), kernel in swapped.items():
            setattr(module, attribute, kernel)
        _triton_util.as_triton = saved_as_triton


@contextlib.contextmanager
def recording(backend_name):
    """Within this block the active backend is `backend_name` ("triton" or "cupy") on the
    recording device; RECORDER collects what it launches. Build the model inside."""
    from gpudl import backend
    from gpudl.kernels import _triton_util

    if backend_name not in ("triton", "cupy"):
        raise ValueError(f"Invalid value received for argument `backend`. Expected 'triton' or 'cupy'. "
                         f"Received: backend={backend_name!r}")
    if backend_name == "triton" and not _triton_util.interpreting():
        raise RuntimeError("counting the triton backend needs the Triton interpreter: set TRITON_INTERPRET=1 "
                           "before gpudl is first imported (python -m gpudl.tools.count does)")
    saved = backend._state["backend"], _triton_util.cupy, _triton_util.num_programs_target
    _triton_util.cupy = RECORDING_CUPY
    _triton_util.num_programs_target = lambda: 4 * H200["sms"]
    backend._state["backend"] = backend.Backend(backend_name, RECORDING_CUPY, backend.op_table("_" + backend_name),
                                                "recording stand-in for the device (gpudl.tools.count)")
    RECORDER.__init__()
    try:
        with _recording_triton() if backend_name == "triton" else contextlib.nullcontext():
            yield RECORDER
    finally:
        backend._state["backend"], _triton_util.cupy, _triton_util.num_programs_target = saved


# -- the step --------------------------------------------------------------------------------
@contextlib.contextmanager
def _layer_labels(model):
    """Each leaf layer's forward and backward set RECORDER.where while they run."""
    leaves = model._leaves()
    for layer in leaves:
        for phase in ("forward", "backward"):
            method = getattr(layer, phase)

            def labelled(*args, _method=method, _label=f"{layer.name} {phase}", **kwargs):
                outer, RECORDER.where = RECORDER.where, _label
                try:
                    return _method(*args, **kwargs)
                finally:
                    RECORDER.where = outer

            setattr(layer, phase, labelled)
    try:
        yield
    finally:
        for layer in leaves:
            del layer.forward, layer.backward


def count_fit_steps(backend_name, build_model, x, y, batch_size, steps=3):
    """Run `steps` training steps of fit() on the recording device; returns the Launch rows,
    syncs, uploads and upload bytes of one steady step (from the start of the second-to-last
    step to the start of the last: its batch fetch included), and the model. (Marking batch
    starts, not ends: a callback reading every batch's end logs would add a sync.)"""
    from gpudl.frontend.callbacks import Callback

    marks = []

    class StepMarks(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            marks.append(RECORDER.snapshot())

    with recording(backend_name):
        model = build_model()
        model.build((None, x.shape[1]))
        with _layer_labels(model):
            model.fit(x[:steps * batch_size], y[:steps * batch_size], batch_size=batch_size, epochs=1,
                      shuffle=False, verbose=0, callbacks=[StepMarks()])
    (start, syncs0, uploads0, bytes0), (stop, syncs1, uploads1, bytes1) = marks[-2], marks[-1]
    return {"launches": RECORDER.launches[start:stop], "syncs": syncs1 - syncs0, "uploads": uploads1 - uploads0,
            "upload_bytes": bytes1 - bytes0, "host_operands": RECORDER.host_operands, "model": model}


def minimum_bytes(model, batch_size):
    """The fewest device bytes a training step must move: each activation, parameter, gradient
    and optimizer slot once per use in a fully fused schedule.

    Dense (in -> out):  forward reads x, W, b and writes z; backward reads x and dz for dW
        (written), dz for db (written), dz and W for dx (written; not below the first learner).
    BatchNormalization with its ReLU and Dropout: forward reads z for the statistics, then z
        again and writes a (the mask is drawn, never stored); backward reads dy and z for the
        sums, then dy and z again and writes dz.
    Another layer: forward reads x, writes y; backward reads dy and x, writes dx.
    Loss: reads the logits (and labels), writes d logits.
    Optimizer: reads each parameter, gradient and slot once and writes parameter and slots.
    """
    itemsize = np.dtype(model.dtype).itemsize
    leaves, total = model._leaves(), 0
    shape = model._feature_shape
    for index, layer in enumerate(leaves):
        out_shape = layer.output_feature_shape(shape)
        x, a = batch_size * int(np.prod(shape)), batch_size * int(np.prod(out_shape))
        weights = sum(int(np.prod(p.shape)) for p in layer.weights if p.trainable)
        backward = index >= model._backward_start
        dx = backward and layer.input_gradient_needed
        kind = type(layer).__name__
        if kind == "Dense":
            total += x + weights + a  # forward: z = x W + b
            total += (x + a + weights + a) if backward else 0  # dW = x^T dz, db = sum dz
            total += (a + weights + x) if dx else 0  # dx = dz W^T
        elif kind == "BatchNormalization":
            total += 3 * a + weights  # statistics of z, then z -> a
            total += (5 * a + 2 * weights) if backward else 0  # sums of dy, dy x_hat; then dz
        elif kind in ("ReLU", "Activation", "Dropout") and _follows_batch_norm(leaves, index):
            pass  # inside the block above
        elif kind != "InputLayer":
            total += x + a + (dx and 3 * a)
        shape = out_shape
    outputs = batch_size * int(np.prod(model._output_feature_shape))
    total += 2 * outputs + batch_size  # logits read, gradient written, labels read
    params = model.arena.size
    slots = len(model.optimizer.slots)
    total += params * (2 + slots) + params * (1 + slots)  # read w, g, slots; write w, slots
    return total * itemsize


def _follows_batch_norm(leaves, index):
    """Whether leaves[index] (a ReLU, Activation or Dropout) sits in a BN -> ReLU [-> Dropout] run."""
    names = [type(layer).__name__ for layer in leaves[max(0, index - 2):index]]
    return "BatchNormalization" in names


def summarize(counted, model, batch_size):
    """Totals of one step: launches by kind, syncs, bytes, flops, the minimum and the estimate."""
    launches = counted["launches"]
    by_kind = {}
    for launch in launches:
        by_kind[launch.kind] = by_kind.get(launch.kind, 0) + 1
    moved = sum(launch.read + launch.written for launch in launches)
    flops = sum(launch.flops for launch in launches)
    floor = minimum_bytes(model, batch_size)
    estimate = {"gemm_s": flops / H200["fp32_flops"], "bytes_s": moved / H200["bytes_per_s"],
                "launch_s": len(launches) * H200["launch_s"]}
    estimate["step_s"] = sum(estimate.values())
    return {"launches": len(launches), "by_kind": by_kind, "syncs": counted["syncs"], "uploads": counted["uploads"],
            "upload_bytes": counted["upload_bytes"], "host_operands": counted["host_operands"], "bytes": moved, "gemm_flops": flops, "minimum_bytes": floor,
            "bytes_over_minimum": moved / floor, "h200_estimate": estimate,
            "block_passes": block_passes(launches, model, batch_size)}


def block_passes(launches, model, batch_size):
    """For each BatchNormalization -> ReLU [-> Dropout] run: its launches that write a whole
    activation (elementwise passes) and its statistics reductions, forward and backward."""
    leaves, blocks = model._leaves(), []
    shape = model._feature_shape
    for index, layer in enumerate(leaves):
        shape_out = layer.output_feature_shape(shape)
        if type(layer).__name__ == "BatchNormalization":
            members = [layer.name]
            for follower in leaves[index + 1:index + 3]:
                if type(follower).__name__ in ("ReLU", "Activation", "Dropout"):
                    members.append(follower.name)
                else:
                    break
            activation = batch_size * int(np.prod(shape_out))
            row = {"layers": members}
            for phase in ("forward", "backward"):
                mine = [launch for launch in launches if launch.where in {f"{m} {phase}" for m in members}]
                row[f"{phase}_passes"] = sum(launch.elements_written >= activation for launch in mine)
                row[f"{phase}_reductions"] = sum(launch.name in REDUCTION_KERNELS for launch in mine)
                row[f"{phase}_launches"] = len(mine)
            blocks.append(row)
        shape = shape_out
    return blocks


# -- the command ------------------------------------------------------------------------------
def run_count(backends=("triton", "cupy"), sizes=None, batch=None, dropout=None):
    """Count the benchmark MLP's step on each backend; returns the JSON-able results."""
    from gpudl.tools import bench

    reference = bench.REFERENCE_MLP
    sizes, batch = tuple(sizes or reference["sizes"]), batch or reference["batch"]
    rate = reference["dropout"] if dropout is None else dropout
    x, y = bench.synthetic_data(3 * batch, sizes[0], sizes[-1])
    results = {"model": "-".join(map(str, sizes)), "batch": batch, "dropout": rate, "device_model": H200,
               "backends": {}}
    for name in backends:
        counted = count_fit_steps(name, lambda: bench.gpudl_mlp(sizes, rate), x, y, batch)
        row = summarize(counted, counted["model"], batch)
        row["per_launch"] = [launch._asdict() for launch in counted["launches"]]
        results["backends"][name] = row
    return results


def print_count(results):
    print(f"one training step of the MLP {results['model']} (BN+ReLU+dropout {results['dropout']}, softmax-CE, "
          f"Adam), batch {results['batch']}, counted on the CPU against a recording device")
    device = results["device_model"]
    print(f"H200 estimate = GEMM flops at {device['fp32_flops'] / 1e12:.0f} TFLOP/s (FP32) + bytes at "
          f"{device['bytes_per_s'] / 1e12:.1f} TB/s + launches at {device['launch_s'] * 1e6:.0f} us each "
          f"(an estimate; no GPU)")
    print(f"{'backend':>8} {'launches':>8} {'gemm':>5} {'syncs':>5} {'MB moved':>9} {'MB min':>7} {'ratio':>6} "
          f"{'est. us':>8}  launches by kind")
    for name, row in results["backends"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(row["by_kind"].items()))
        print(f"{name:>8} {row['launches']:>8} {row['by_kind'].get('gemm', 0):>5} {row['syncs']:>5} "
              f"{row['bytes'] / 1e6:>9.2f} {row['minimum_bytes'] / 1e6:>7.2f} {row['bytes_over_minimum']:>6.2f} "
              f"{row['h200_estimate']['step_s'] * 1e6:>8.1f}  {kinds}")
        for block in row["block_passes"]:
            print(f"{'':>8} {' -> '.join(block['layers'])}: activation passes forward {block['forward_passes']}, "
                  f"backward {block['backward_passes']}; statistics reductions {block['forward_reductions']} + "
                  f"{block['backward_reductions']}; launches {block['forward_launches']} + {block['backward_launches']}")
        if row["host_operands"]:
            print(f"{'':>8} WARNING: {row['host_operands']} array ops mixed a host NumPy array with device arrays "
                  f"(CuPy refuses them)")
    worst = max(row["bytes_over_minimum"] for row in results["backends"].values())
    print(f"headline: bytes moved / minimum bytes per step, worst backend: {worst:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Count the launches, syncs and bytes of a training step.")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--backends", default="triton,cupy")
    args = parser.parse_args(argv)
    from gpudl.kernels import _triton_util

    if not _triton_util.interpreting():  # triton compiles here: count in a child with the interpreter
        command = [sys.executable, "-m", "gpudl.tools.count", "--backends", args.backends]
        command += ["--json", args.json] if args.json else []
        raise SystemExit(subprocess.call(command, env={**os.environ, "TRITON_INTERPRET": "1"}))
    results = run_count(tuple(args.backends.split(",")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print_count(results)
    return results


if __name__ == "__main__":
    main()
