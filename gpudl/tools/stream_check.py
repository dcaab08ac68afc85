"""Which stream each Triton launch goes to, recorded on the CPU.

On a GPU, Triton launches on torch's current stream (torch imported), and the launchers
bind that to CuPy's current stream (`_triton_util.launch_stream`). `recorded_launches()`
stands in for both: CuPy becomes a namespace whose arrays are NumPy arrays "on a device"
(DeviceArray, `.data.ptr` their address) and whose current stream is CUPY_STREAM; torch.cuda
reports a device whose current stream is what `torch.cuda.stream(...)` last set; Triton's
launch entry (InterpretedFunction.run) records (kernel, that stream) and runs the kernel in
the interpreter on the same memory. A launch outside the binding records stream 0.
"""

import contextlib
import types

import numpy as np

CUPY_STREAM = 0x5EED  # the `ptr` of CuPy's current stream in the stand-in


class DeviceArray(np.ndarray):
    """A NumPy array standing in for a cupy.ndarray (`.data.ptr` is its device address)."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def device(array):
    """A copy of `array` as a DeviceArray (the checks' `put`)."""
    return np.array(array).view(DeviceArray)


@contextlib.contextmanager
def recorded_launches():
    """Within this block: CuPy and torch.cuda are the stand-ins; yields the list of
    (kernel name, stream ptr torch would launch on) of every Triton launch."""
    import torch
    from triton.runtime import interpreter

    from gpudl.kernels import _triton_util

    current = {"stream": 0}  # torch's current stream: the legacy default stream until set
    launches = []

    class Stream:  # torch.cuda.stream(ExternalStream(ptr)): current while the block runs
        def __init__(self, stream):
            self.stream, self.saved = stream, None

        def __enter__(self):
            self.saved, current["stream"] = current["stream"], self.stream.ptr

        def __exit__(self, *exc):
            current["stream"] = self.saved

    def on_device(make):
        return lambda *args, **kwargs: make(*args, **kwargs).view(DeviceArray)

    host = _triton_util.POISONED_NUMPY
    fake_cupy = types.SimpleNamespace(
        ndarray=DeviceArray, empty=on_device(host.empty),
        empty_like=on_device(lambda a, *args, **kwargs: host.empty_like(np.asarray(a), *args, **kwargs)),
        asarray=on_device(np.asarray), mean=np.mean,
        cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=CUPY_STREAM)))
    run = interpreter.InterpretedFunction.run

    def recording_run(self, *args, grid, warmup, **kwargs):
        launches.append((self.fn.__name__, current["stream"]))
        args = [torch.from_numpy(a.array.view(np.ndarray)) if isinstance(a, _triton_util.DevicePointer) else a
                for a in args]
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    saved = (_triton_util.cupy, torch.cuda.is_available, torch.cuda.ExternalStream, torch.cuda.stream)
    _triton_util.cupy = fake_cupy
    torch.cuda.is_available = lambda: True
    torch.cuda.ExternalStream = lambda ptr: types.SimpleNamespace(ptr=ptr)
    torch.cuda.stream = Stream
    interpreter.InterpretedFunction.run = recording_run
    try:
        yield launches
    finally:
        _triton_util.cupy, torch.cuda.is_available, torch.cuda.ExternalStream, torch.cuda.stream = saved
        interpreter.InterpretedFunction.run = run


def triton_kernels(module):
    """Names of the Triton kernels (interpreted) defined in a kernel module."""
    from triton.runtime import interpreter

    return {name for name, value in vars(module).items()
            if isinstance(value, interpreter.InterpretedFunction) and name.endswith("_kernel")}
