"""The Triton interpreter's bounds checker (gpudl/tools/triton_sanitizer.py): every active lane
of every tl.load and tl.store must fall inside a tensor argument of the launch, and the CPU
launchers' outputs start as NaN. Needs TRITON_INTERPRET=1 (tests/conftest.py sets it on a
machine without a GPU)."""

import os

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the bounds checker patches the Triton interpreter (TRITON_INTERPRET=1)", allow_module_level=True)
torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from gpudl.kernels import _triton_util, dropout  # noqa: E402
from gpudl.tools import triton_sanitizer  # noqa: E402
from gpudl.tools.triton_sanitizer import SanitizerError  # noqa: E402

triton_sanitizer.install()


@triton.jit
def _copy_kernel(src_ptr, out_ptr, n, SHIFT: tl.constexpr, MASK_LOAD: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    if MASK_LOAD:
        x = tl.load(src_ptr + offsets + SHIFT, mask=mask, other=0.0)
    else:
        x = tl.load(src_ptr + offsets + SHIFT)
    tl.store(out_ptr + offsets, x, mask=mask)


@triton.jit
def _store_kernel(out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, tl.full((BLOCK,), 1.0, tl.float32), mask=offsets <= n)  # one too many


def copy(src, shift=0, mask_load=True, n=None):
    out = np.zeros_like(src)
    n = src.size if n is None else n
    _copy_kernel[(triton.cdiv(n, 64),)](torch.from_numpy(src), torch.from_numpy(out), n, SHIFT=shift,
                                         MASK_LOAD=mask_load, BLOCK=64)
    return out


def test_masked_loads_inside_the_tensors_pass():
    src = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    assert np.array_equal(copy(src), src)


def test_an_unmasked_load_past_the_end_is_caught_naming_kernel_program_and_argument():
    src = np.random.default_rng(1).standard_normal(100).astype(np.float32)
    with pytest.raises(Exception, match=r"_copy_kernel: program \(1, 0, 0\): tl.load lane \(36,\) reads or writes "
                                        r"4 bytes at 0 bytes past the end of `src_ptr` \(shape \(100,\), float32\) "
                                        r"\(28 of 64 active lanes"):
        copy(src, mask_load=False)


def test_a_masked_load_shifted_by_one_is_caught():
    src = np.ones(128, np.float64)
    with pytest.raises(Exception, match=r"program \(1, 0, 0\): tl.load lane \(63,\) .* 0 bytes past the end of "
                                        r"`src_ptr`"):
        copy(src, shift=1)
    with pytest.raises(Exception, match=r"program \(0, 0, 0\): tl.load lane \(0,\) .* 8 bytes before the start"):
        copy(src, shift=-1)


def test_a_store_one_past_the_end_is_caught():
    out = np.zeros(100, np.float32)
    with pytest.raises(Exception, match=r"_store_kernel: program \(1, 0, 0\): tl.store lane \(36,\) .* past the end "
                                        r"of `out_ptr`"):
        _store_kernel[(2,)](torch.from_numpy(out), 100, BLOCK=64)


def test_a_read_inside_another_argument_is_not_a_false_alarm():
    # a pointer argument that aliases another (the launchers pass `src` for unused pointers)
    src = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    _copy_kernel[(1,)](torch.from_numpy(src), torch.from_numpy(out), 64, SHIFT=0, MASK_LOAD=False, BLOCK=64)
    assert np.array_equal(out, src)


def test_launcher_outputs_start_as_nan_so_an_unwritten_element_shows(monkeypatch):
    assert np.isnan(_triton_util.xp_of(np.zeros(3)).empty(4)).all()
    assert np.isnan(_triton_util.xp_of(np.zeros(3)).empty_like(np.zeros(2, np.float32))).all()
    # a dropout grid one program short leaves the last elements unwritten: NaN, not stale memory
    monkeypatch.setattr(_triton_util, "cdiv", lambda a, b: max(1, a // b))
    x = np.ones(5000, np.float32)
    y = dropout.dropout_triton(x, 0.5, 7)
    assert np.isnan(y[-1]) and not np.isnan(y[:1024]).any()
