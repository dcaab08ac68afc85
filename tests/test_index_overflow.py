"""The index-overflow check (gpudl/tools/index_overflow.py): grids past 2**31 elements on
reserved, unbacked memory, only their last programs run, under the interpreter's bounds
checker (Triton) or in the CUDA-on-CPU harness in place (CuPy). A kernel with int32 offsets
is caught; the shipped kernels pass and agree with their references on the rows they wrote."""

import os

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the overflow check runs kernels in the Triton interpreter", allow_module_level=True)
torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from gpudl.tools import cuda_cpu, index_overflow, selftest, triton_sanitizer  # noqa: E402

triton_sanitizer.install()


@triton.jit
def _scale_kernel(x_ptr, y_ptr, n, WIDE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if WIDE:
        pid = pid.to(tl.int64)
    offsets = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(y_ptr + offsets, 2 * tl.load(x_ptr + offsets, mask=mask), mask=mask)


def scale(wide):
    n = index_overflow.PAST_INT32
    with index_overflow.unbacked_outputs() as arrays, index_overflow.last_programs(2):
        x, y = arrays.zeros(n, np.float32), arrays.zeros(n, np.float32)
        x[-3000:] = np.arange(3000, dtype=np.float32)
        _scale_kernel[(triton.cdiv(n, 1024),)](torch.from_numpy(x), torch.from_numpy(y), n, WIDE=wide, BLOCK=1024)
        # the last two programs wrote the last 1024 + 3 elements; the million before stay zero
        return y[-1027:].copy(), int(np.count_nonzero(y[-(1 << 20):-1027]))


def test_int64_offsets_past_2_to_the_31_reach_the_right_elements():
    tail, elsewhere = scale(wide=True)
    assert np.array_equal(tail, 2 * np.arange(3000 - 1027, 3000, dtype=np.float32))
    assert elsewhere == 0  # only the last two programs ran


def test_int32_offsets_past_2_to_the_31_are_caught_naming_the_kernel():
    with pytest.raises(triton_sanitizer.SanitizerError, match=r"_scale_kernel: program \(2097155, 0, 0\): tl.load"):
        scale(wide=False)


_CUDA_SCALE = r"""
extern "C" __global__ void scale(const float* x, float* y, long long n) {
    INDEX i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = 2 * x[i];
}
"""


def cuda_scale(index_type):
    """The CUDA kernel above, its index `index_type`, over PAST_INT32 elements: its last two blocks."""
    n = index_overflow.PAST_INT32
    function = cuda_cpu.RawModule(_CUDA_SCALE.replace("INDEX", index_type), name_expressions=["scale"]).get_function(
        "scale")
    with index_overflow.unbacked_outputs() as arrays, cuda_cpu.last_blocks(arrays.buffers, 2):
        x, y = arrays.zeros(n, np.float32), arrays.zeros(n, np.float32)
        x[-3000:] = np.arange(3000, dtype=np.float32)
        function((-(-n // 256),), (256,), (x, y, np.int64(n)))
        # n % 256 = 3: the last two blocks wrote the last 256 + 3 elements; the million before stay zero
        return y[-259:].copy(), int(np.count_nonzero(y[-(1 << 20):-259]))


def test_cuda_64_bit_indices_past_2_to_the_31_reach_the_right_elements():
    tail, elsewhere = cuda_scale("long long")
    assert np.array_equal(tail, 2 * np.arange(3000 - 259, 3000, dtype=np.float32))
    assert elsewhere == 0  # only the last two blocks ran


def test_cuda_int32_indices_past_2_to_the_31_fault_naming_the_kernel_and_the_argument():
    n = index_overflow.PAST_INT32
    blocks = -(-n // 256)
    # the second-to-last block runs first; its int index wraps to about -2**31 elements (8 GiB before x)
    with pytest.raises(cuda_cpu.KernelError, match=rf"scale: block \({blocks - 2}, 0, 0\) of grid \({blocks}, 1, 1\): "
                                                   rf"segmentation fault: an access 85\d{{8}} bytes before the start "
                                                   rf"of array argument 0 \(shape \({n},\), float32\)"):
        cuda_scale("int")


@pytest.mark.parametrize("implementation", ["triton", "cupy"])
@pytest.mark.parametrize("family", selftest.FAMILIES)
def test_every_kernel_family_passes_the_overflow_check(family, implementation):
    # (the arrays' first 8 GiB are inaccessible: a check that walked them would fault, not fill memory)
    (row,) = index_overflow.overflow_rows(family, selftest.Row, implementation=implementation)
    assert row.result == "pass", row
    assert row.kernel == f"{implementation} {family}" and "in bounds" in row.measure
