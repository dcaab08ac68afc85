"""Every Triton launch goes to CuPy's current stream (issue 18, item 6), checked on the CPU.

On a GPU, Triton launches on torch's current stream (torch imported), and the launchers
bind that to CuPy's current stream (`_triton_util.launch_stream`). Here CuPy is a recording
stand-in whose arrays are NumPy arrays on a "device", torch.cuda reports a device whose
current stream is whatever `torch.cuda.stream(...)` last set, and Triton's launch entry
(InterpretedFunction.run) records that stream before running the kernel in the
interpreter. Every op of gpudl.kernels.OPS runs through selftest's checks (so the results
are checked too), and every launch must have gone to CuPy's current stream."""

import os
import types

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the recording runs kernels in the Triton interpreter (TRITON_INTERPRET=1)", allow_module_level=True)
torch = pytest.importorskip("torch")
pytest.importorskip("triton")
from triton.runtime import interpreter  # noqa: E402

from gpudl import kernels  # noqa: E402
from gpudl.kernels import _triton_util  # noqa: E402
from gpudl.tools import selftest  # noqa: E402
from gpudl.tools.selftest import kernel_module  # noqa: E402

CUPY_STREAM = 0x5EED  # the `ptr` of CuPy's current stream in the stand-in


class DeviceArray(np.ndarray):
    """A NumPy array standing in for a cupy.ndarray (`.data.ptr` is its device address)."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def device(array):
    return np.array(array).view(DeviceArray)


@pytest.fixture
def recorded_launches(monkeypatch):
    """[(kernel name, stream ptr torch would launch on)] of every Triton launch in the test."""
    current = {"stream": 0}  # torch's current stream: the legacy default stream until set
    launches = []

    class Stream:  # torch.cuda.stream(ExternalStream(ptr)): current while the block runs
        def __init__(self, stream):
            self.stream, self.saved = stream, None

        def __enter__(self):
            self.saved, current["stream"] = current["stream"], self.stream.ptr

        def __exit__(self, *exc):
            current["stream"] = self.saved

    fake_cupy = types.SimpleNamespace(
        ndarray=DeviceArray,
        empty=lambda *a, **k: _triton_util.POISONED_NUMPY.empty(*a, **k).view(DeviceArray),
        empty_like=lambda *a, **k: _triton_util.POISONED_NUMPY.empty_like(np.asarray(a[0]), *a[1:], **k).view(DeviceArray),
        asarray=lambda a, *args, **kwargs: np.asarray(a, *args, **kwargs).view(DeviceArray),
        cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=CUPY_STREAM)))
    monkeypatch.setattr(_triton_util, "cupy", fake_cupy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "ExternalStream", lambda ptr: types.SimpleNamespace(ptr=ptr))
    monkeypatch.setattr(torch.cuda, "stream", Stream)
    run = interpreter.InterpretedFunction.run

    def recording_run(self, *args, grid, warmup, **kwargs):
        launches.append((self.fn.__name__, current["stream"]))
        args = [torch.from_numpy(a.array.view(np.ndarray)) if isinstance(a, _triton_util.DevicePointer) else a
                for a in args]
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    monkeypatch.setattr(interpreter.InterpretedFunction, "run", recording_run)
    return launches


def test_every_triton_launch_goes_to_cupys_current_stream(recorded_launches):
    checks = selftest.KernelChecks("triton", "recorded", device, np.asarray)
    for family in selftest.FAMILIES:  # the first float32 case of each kernel
        first = {}
        for kernel, label, check in checks.family_cases(family, 0, (np.float32,)):
            first.setdefault(kernel, check)
        for check in first.values():
            check()
    assert checks.rows and all(row.result == "pass" for row in checks.rows), checks.rows
    assert checks.launched == {op.name for op in kernels.OPS}
    every_kernel = {name for module in kernels.MODULES for name, value in vars(kernel_module(module)).items()
                    if isinstance(value, interpreter.InterpretedFunction) and name.endswith("_kernel")}
    assert {name for name, _ in recorded_launches} == every_kernel
    off_stream = [(name, stream) for name, stream in recorded_launches if stream != CUPY_STREAM]
    assert not off_stream


def test_the_recording_sees_a_launch_outside_the_stream_binding(recorded_launches, monkeypatch):
    # the check above can fail: a launcher that skips launch_stream launches on stream 0
    monkeypatch.setattr(_triton_util, "launch_stream", lambda array: _triton_util._NoStream())
    from gpudl.kernels import dropout

    dropout.dropout_triton(device(np.ones(10, np.float32)), 0.5, 1)
    assert recorded_launches == [("_dropout_kernel", 0)]
