"""Every Triton launch goes to CuPy's current stream (issue 18, item 6), checked on the CPU
with gpudl.tools.stream_check's recording stand-ins for CuPy and torch.cuda. Every op of
gpudl.kernels.OPS runs through selftest's checks (so the results are checked too), and
every launch must have gone to CuPy's current stream."""

import os

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the recording runs kernels in the Triton interpreter (TRITON_INTERPRET=1)", allow_module_level=True)
torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from gpudl import kernels  # noqa: E402
from gpudl.kernels import _triton_util  # noqa: E402
from gpudl.tools import selftest, stream_check  # noqa: E402
from gpudl.tools.selftest import kernel_module  # noqa: E402


@pytest.fixture
def recorded_launches():
    with stream_check.recorded_launches() as launches:
        yield launches


def test_every_triton_launch_goes_to_cupys_current_stream(recorded_launches):
    checks = selftest.KernelChecks("triton", "recorded", stream_check.device, np.asarray)
    for family in selftest.FAMILIES:  # the first float32 case of each kernel
        first = {}
        for kernel, label, check in checks.family_cases(family, 0, (np.float32,)):
            first.setdefault(kernel, check)
        for check in first.values():
            check()
    assert checks.rows and all(row.result == "pass" for row in checks.rows), checks.rows
    assert checks.launched == {op.name for op in kernels.OPS}
    every_kernel = set().union(*(stream_check.triton_kernels(kernel_module(m)) for m in kernels.MODULES))
    assert {name for name, _ in recorded_launches} == every_kernel
    off_stream = [(name, stream) for name, stream in recorded_launches if stream != stream_check.CUPY_STREAM]
    assert not off_stream


def test_selftest_stream_row_fails_a_launcher_that_skips_the_binding(monkeypatch):
    from gpudl.kernels import dropout

    assert selftest.stream_row("dropout").result == "pass"
    monkeypatch.setattr(dropout._util, "launch_stream", lambda array: _triton_util._NoStream())
    row = selftest.stream_row("dropout")
    assert row.result == "FAIL" and row.kernel == "triton dropout" and "off CuPy's stream (_dropout_kernel)" in row.measure


def test_the_recording_sees_a_launch_outside_the_stream_binding(recorded_launches, monkeypatch):
    # the check above can fail: a launcher that skips launch_stream launches on stream 0
    monkeypatch.setattr(_triton_util, "launch_stream", lambda array: _triton_util._NoStream())
    from gpudl.kernels import dropout

    dropout.dropout_triton(stream_check.device(np.ones(10, np.float32)), 0.5, 1)
    assert recorded_launches == [("_dropout_kernel", 0)]
