"""The CUDA-on-CPU harness itself (gpudl/tools/cuda_cpu.py): CUDA semantics the CuPy kernels rely
on, and that it catches a planted bug. The CuPy kernels against their NumPy references
run in test_kernels_triton.py (implementation "cupy"), through the same launchers."""

import numpy as np
import pytest

from gpudl.tools.cuda_cpu import RawModule, cupy_on_cpu
from gpudl.kernels import _triton_util, batchnorm, dropout, optimizer_updates, softmax_cross_entropy

BLOCK_REVERSE = r"""
template<typename T>
__global__ void block_reverse(const T* x, T* out, long long n) {
    // each block reverses its own slice through shared memory: correct only if
    // __syncthreads() waits for every thread's write and `shared` is per block
    __shared__ T shared[64];
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    shared[threadIdx.x] = i < n ? x[i] : (T)-1;
    __syncthreads();
    if (i < n) out[i] = shared[blockDim.x - 1 - threadIdx.x];
}

template<typename T>
__global__ void block_sum(const T* x, T* sums) {
    // a shared-memory tree reduction: log2(blockDim) barriers, as softmax_xent does
    __shared__ T shared[64];
    shared[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) sums[blockIdx.x] = shared[0];
}
"""


def test_syncthreads_is_a_barrier_and_shared_memory_is_per_block():
    module = RawModule(BLOCK_REVERSE, name_expressions=["block_reverse<double>", "block_sum<double>"])
    x = np.random.default_rng(0).standard_normal(200)
    out = np.full(200, np.nan)
    module.get_function("block_reverse<double>")((4,), (64,), (x, out, np.int64(200)))
    expected = np.concatenate([x[b * 64:(b + 1) * 64][::-1] for b in range(3)] + [x[192:][::-1]])
    # the last block is partial: its 56 missing threads wrote -1 into the slots read back
    assert np.array_equal(out[:192], expected[:192])
    assert np.array_equal(out[192:], np.full(8, -1.0))
    sums = np.empty(3)
    values = np.arange(192, dtype=np.float64)
    module.get_function("block_sum<double>")((3,), (64,), (values, sums))
    assert np.array_equal(sums, values.reshape(3, 64).sum(axis=1))


def test_a_missing_barrier_is_caught():
    """Thread t reads its neighbour's shared slot; without __syncthreads() the result
    depends on thread order, and the harness runs odd blocks in reverse order."""
    source = BLOCK_REVERSE.replace("__syncthreads();\n    if (i < n)", "if (i < n)")
    assert source != BLOCK_REVERSE
    module = RawModule(source, name_expressions=["block_reverse<double>"])
    x = np.tile(np.arange(64.0), 2)  # the same data in both blocks
    out = np.full(128, np.nan)
    module.get_function("block_reverse<double>")((2,), (64,), (x, out, np.int64(128)))
    assert not np.array_equal(out[:64], out[64:])
    assert not np.array_equal(out[:64], x[:64][::-1])


def test_a_write_one_past_the_end_of_an_array_is_caught():
    shifted = BLOCK_REVERSE.replace("if (i < n) out[i] = shared", "if (i < n) out[i + 1] = shared")
    assert shifted != BLOCK_REVERSE
    module = RawModule(shifted, name_expressions=["block_reverse<float>"])
    x, out = np.ones(64, np.float32), np.zeros(64, np.float32)
    with pytest.raises(RuntimeError, match="0 bytes past the end of array argument 1"):
        module.get_function("block_reverse<float>")((1,), (64,), (x, out, np.int64(64)))


def test_an_element_the_kernel_never_writes_stays_nan(monkeypatch):
    # dropout that skips the last element: the launcher's output starts as NaN (poisoned)
    planted = dropout._CUPY_SOURCE.replace("if (i < n) {", "if (i < n - 1) {")
    assert planted != dropout._CUPY_SOURCE
    monkeypatch.setattr(dropout, "_CUPY_DROPOUT", _triton_util.CupyRaw(planted, "dropout_kernel"))
    with cupy_on_cpu():
        y = dropout.dropout_cupy(np.ones(10, np.float32), 0.5, 3)
    assert np.isnan(y[-1]) and not np.isnan(y[:-1]).any()


def test_planted_off_by_one_in_a_kernel_index_is_caught(monkeypatch):
    # a copy of the dropout source whose element takes the Philox word of the next lane
    planted = dropout._CUPY_SOURCE.replace("bool keep = words[lane] >= threshold",
                                           "bool keep = words[(lane + 1) % 4] >= threshold")
    assert planted != dropout._CUPY_SOURCE
    x = np.random.default_rng(1).standard_normal((17, 33)).astype(np.float32)
    expected = dropout.dropout(x, 0.5, 2**63 + 7)
    with cupy_on_cpu():
        assert np.array_equal(dropout.dropout_cupy(x, 0.5, 2**63 + 7), expected)
        monkeypatch.setattr(dropout, "_CUPY_DROPOUT", _triton_util.CupyRaw(planted, "dropout_kernel"))
        buggy = dropout.dropout_cupy(x, 0.5, 2**63 + 7)
    assert np.count_nonzero(buggy != expected) > x.size // 4  # about half the mask differs


def test_planted_off_by_one_in_a_loop_bound_is_caught(monkeypatch):
    # batch-norm statistics that skip the last row of every split
    source = batchnorm._CUPY_SOURCE
    planted = source.replace("for (long long i = start; i < end; ++i) {\n        T v",
                             "for (long long i = start; i < end - 1; ++i) {\n        T v")
    assert planted != source
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 5)).astype(np.float64)
    ones, zeros = np.ones(5), np.zeros(5)
    with cupy_on_cpu():
        _, mean, _ = batchnorm.forward_train_cupy(x, ones, zeros, zeros.copy(), ones.copy(), 0.9, 1e-3)
        np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12, atol=1e-15)
        monkeypatch.setattr(batchnorm, "_CUPY_PARTIAL_STATS", _triton_util.CupyRaw(planted, "bn_partial_stats"))
        _, mean, _ = batchnorm.forward_train_cupy(x, ones, zeros, zeros.copy(), ones.copy(), 0.9, 1e-3)
    assert not np.allclose(mean, x.mean(axis=0))


def test_every_cupy_launch_compiles_exactly_a_source_that_nvrtc_checks(monkeypatch):
    """The launchers hand cupy.RawModule only texts from selftest.cupy_sources() (what the
    NVRTC check compiles), with the same name expressions and options: the elementwise
    kernels are raw kernels, not CuPy's own code expansion."""
    compiled = set()

    class RecordingRawModule(RawModule):
        def __init__(self, code, options=(), name_expressions=()):
            compiled.add((code, tuple(name_expressions), tuple(options)))
            super().__init__(code, options, name_expressions)

    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    c = np.ones(4)
    step_table, step_counter = optimizer_updates.adam_step_table([1e-3], 0, 0.9, 0.999), np.zeros(1, np.int64)
    monkeypatch.setattr(_triton_util, "_cupy_functions", {})
    with cupy_on_cpu() as cpu_cupy:
        monkeypatch.setattr(cpu_cupy, "RawModule", RecordingRawModule)
        y = batchnorm.forward_infer_cupy(x, c, c, c, c, 1e-3)
        _, mean, rstd = batchnorm.forward_train_cupy(x, c, c, c.copy(), c.copy(), 0.9, 1e-3)
        batchnorm.backward_cupy(x, x, c, c, mean, rstd)
        flat = [rng.standard_normal(7) for _ in range(4)]
        optimizer_updates.sgd_cupy(flat[0], flat[1], step_table[:, :1].copy(), step_counter)
        optimizer_updates.sgd_momentum_cupy(*flat[:3], step_table[:, :1].copy(), step_counter, 0.9, True)
        optimizer_updates.ema_momentum_cupy(*flat[:3], step_table[:, :1].copy(), step_counter, 0.9)
        optimizer_updates.rmsprop_cupy(flat[0], flat[1], np.abs(flat[2]), step_table[:, :1].copy(), step_counter,
                                       0.9, 1e-7)
        optimizer_updates.adam_cupy(flat[0], flat[1], flat[2], np.abs(flat[3]), step_table, step_counter,
                                    0.9, 0.999, 1e-8)
        dropout.dropout_cupy(x, 0.5, 1)
        softmax_cross_entropy.softmax_cupy(x)
    from gpudl.tools.selftest import cupy_sources

    checked = {(source, (expression,), options) for _, dtype, source, expression, options in cupy_sources()
               if dtype == "float64"}
    assert compiled and compiled <= checked
    elementwise = [k for module in (batchnorm, optimizer_updates) for k in module.CUPY_KERNELS
                   if isinstance(k, _triton_util.CupyElementwise)]
    assert len(elementwise) == 7
    assert {k.name for k in elementwise} <= {names[0] for _, names, _ in compiled}
    # and the raw kernel broadcasts the per-column vectors as CuPy's ElementwiseKernel did
    np.testing.assert_allclose(y, (x - 1) / np.sqrt(1 + 1e-3) + 1, rtol=1e-15)


def test_elementwise_launch_refuses_mismatched_shapes_before_launching():
    x = np.ones((6, 4))
    with cupy_on_cpu(), pytest.raises(ValueError, match="gpudl_bn_normalize: `mean` is float64 of shape \\(5,\\); "
                                                        "expected float64 of shape \\(4,\\)"):
        _triton_util.launch_elementwise(batchnorm._CUPY_NORMALIZE, x, np.ones(5), np.ones(4), np.ones(4),
                                        np.ones(4), False)


def test_harness_refuses_python_scalars_as_cuda_launch_does():
    module = RawModule(BLOCK_REVERSE, name_expressions=["block_reverse<float>"])
    with pytest.raises(TypeError, match="NumPy scalars"):
        module.get_function("block_reverse<float>")((1,), (64,), (np.zeros(64, np.float32),
                                                                   np.zeros(64, np.float32), 64))


def test_softmax_cross_entropy_returns_a_device_scalar_not_a_host_float():
    logits = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32)
    labels = np.array([0, 4, 2])
    with cupy_on_cpu():
        loss, _ = softmax_cross_entropy.softmax_cross_entropy_cupy(logits, labels)
    reference, _ = softmax_cross_entropy.softmax_cross_entropy(logits, labels)
    for value in (loss, reference):
        assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float64
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    truth = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(3), labels])
    assert float(loss) == pytest.approx(truth, rel=1e-6)
    assert float(loss * 2 + 1) == pytest.approx(2 * truth + 1, rel=1e-6)  # arithmetic stays an array
