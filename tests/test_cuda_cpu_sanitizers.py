"""The CUDA-on-CPU harness's sanitizers (gpudl/tools/cuda_cpu.py, cuda_cpu.h): each planted
bug below passes a plain CPU run (or corrupts memory silently) and must be refused with a
message naming the kernel and what went wrong."""

import numpy as np
import pytest

from gpudl.tools import nvrtc
from gpudl.tools.cuda_cpu import KernelError, RawModule, check_launch_limits, ptxas_registers

SOURCE = r"""
template<typename T>
__global__ void copy(const T* x, T* out, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[i];
}

template<typename T>
__global__ void block_reverse(const T* x, T* out, long long n) {
    __shared__ T shared[64];
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    shared[threadIdx.x] = i < n ? x[i] : (T)0;
    __syncthreads();
    if (i < n) out[i] = shared[blockDim.x - 1 - threadIdx.x];
}

template<typename T>
__global__ void block_sums(const T* x, T* sums, long long n) {
    // thread 0 of each block adds its block's slice into sums[blockIdx.x]
    if (threadIdx.x == 0) {
        T s = 0;
        for (long long i = (long long)blockIdx.x * blockDim.x; i < n && i < (long long)(blockIdx.x + 1) * blockDim.x; ++i) s += x[i];
        sums[blockIdx.x] += s;
    }
}

template<typename T>
__global__ void first_block_fills_shared(T* out) {
    // reads shared memory that only block 0 writes: on a GPU another block's shared memory is garbage
    __shared__ T shared[64];
    if (blockIdx.x == 0) shared[threadIdx.x] = (T)threadIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = shared[threadIdx.x];
}
"""
EXPRESSIONS = ["copy<double>", "block_reverse<double>", "block_sums<double>", "first_block_fills_shared<double>"]


def kernel(source, expression):
    return RawModule(source, name_expressions=[expression]).get_function(expression)


def test_the_unplanted_kernels_run_clean():
    x = np.random.default_rng(0).standard_normal(200)
    out = np.full(200, np.nan)
    kernel(SOURCE, "copy<double>")((4,), (64,), (x, out, np.int64(200)))
    assert np.array_equal(out, x)
    sums = np.zeros(4)
    kernel(SOURCE, "block_sums<double>")((4,), (64,), (x, sums, np.int64(200)))
    np.testing.assert_allclose(sums, [x[b * 64:(b + 1) * 64].sum() for b in range(4)], rtol=1e-14)


def test_a_read_one_past_the_end_of_an_input_is_caught():
    planted = SOURCE.replace("out[i] = x[i];", "out[i] = x[i + 1];")
    x, out = np.ones(200), np.zeros(200)
    with pytest.raises(KernelError, match=r"copy<double>: block \(3, 0, 0\): segmentation fault: an access "
                                          r"0 bytes past the end of array argument 0 \(shape \(200,\)"):
        kernel(planted, "copy<double>")((4,), (64,), (x, out, np.int64(200)))
    assert not out.any()  # a failed launch leaves the arrays as they were


def test_a_far_read_and_a_write_before_the_start_are_caught():
    far = SOURCE.replace("out[i] = x[i];", "out[i] = x[i + 5000];")
    with pytest.raises(KernelError, match="past the end of array argument 0"):
        kernel(far, "copy<double>")((1,), (64,), (np.ones(64), np.zeros(64), np.int64(64)))
    before = SOURCE.replace("out[i] = x[i];", "out[i - 1] = x[i];")
    with pytest.raises(KernelError, match="wrote 8 bytes before the start of array argument 1"):
        kernel(before, "copy<double>")((1,), (64,), (np.ones(64), np.zeros(64), np.int64(64)))


def test_a_shared_array_indexed_past_its_size_is_caught():
    planted = SOURCE.replace("shared[threadIdx.x] = i < n", "shared[threadIdx.x + 1] = i < n")
    line = next(n for n, text in enumerate(planted.split("\n"), 1) if "shared[threadIdx.x + 1]" in text)
    with pytest.raises(KernelError, match=rf"block_reverse<double>: block \(0, 0, 0\): array index 64 out of "
                                          rf"bounds for type 'double \[64\]' at line {line} of the kernel source"):
        kernel(planted, "block_reverse<double>")((1,), (64,), (np.ones(64), np.zeros(64), np.int64(64)))


def test_shared_memory_is_poisoned_for_every_block():
    out = np.zeros(128)
    kernel(SOURCE, "first_block_fills_shared<double>")((2,), (64,), (out,))
    assert np.array_equal(out[:64], np.arange(64.0))
    assert np.isnan(out[64:]).all()  # block 1 read what it never wrote, not block 0's values


def test_a_race_between_blocks_is_caught():
    # every block adds into sums[0]: a GPU loses updates without an atomicAdd
    planted = SOURCE.replace("sums[blockIdx.x] += s;", "sums[0] += s;")
    with pytest.raises(KernelError, match=r"block_sums<double>: race between blocks: block \(1, 0, 0\) and "
                                          r"block \(0, 0, 0\) both write element 0 of array argument 1"):
        kernel(planted, "block_sums<double>")((4,), (64,), (np.ones(256), np.zeros(4), np.int64(256)))


def test_a_missing_barrier_in_a_one_block_launch_is_caught():
    planted = SOURCE.replace("__syncthreads();\n    if (i < n) out[i]", "if (i < n) out[i]")
    assert planted != SOURCE
    with pytest.raises(KernelError, match="depends on the order of the block's threads"):
        kernel(planted, "block_reverse<double>")((1,), (64,), (np.arange(64.0), np.zeros(64), np.int64(64)))


@pytest.mark.parametrize("grid, block, expected", [
    ((1,), (2048,), r"blockDim \(2048, 1, 1\) \(2048 threads\)"),
    ((1,), (32, 64), r"blockDim \(32, 64, 1\) \(2048 threads\)"),
    ((1,), (1, 1, 128), r"blockDim \(1, 1, 128\)"),
    ((1, 70000), (32,), r"gridDim \(1, 70000, 1\)"),
    ((0,), (32,), r"gridDim \(0, 1, 1\)"),
])
def test_launches_a_device_refuses_are_refused(grid, block, expected):
    with pytest.raises(KernelError, match="copy<double>: invalid launch: " + expected):
        kernel(SOURCE, "copy<double>")(grid, block, (np.ones(4), np.zeros(4), np.int64(4)))


def test_registers_times_threads_past_the_register_file_are_refused():
    check_launch_limits("k", (1, 1, 1), (1024, 1, 1), registers=64)  # 32 warps x 2048 = 65536: fits
    with pytest.raises(KernelError, match=r"k: invalid launch: 1024 threads x 72 registers \(sm_90 ptxas\) need "
                                          r"73728 registers per block; a device has 65536"):
        check_launch_limits("k", (1, 1, 1), (1024, 1, 1), registers=72)
    check_launch_limits("k", (1, 1, 1), (256, 1, 1), registers=255)  # 8 warps x 8160


def test_the_harness_reads_each_kernels_registers_from_nvrtc():
    if nvrtc.find_nvrtc() is None:
        pytest.skip("NVRTC is not installed (pip install -e '.[test]')")
    registers = ptxas_registers(SOURCE, "copy<double>", ("-std=c++14",))
    assert isinstance(registers, int) and 4 <= registers <= 64
