"""The Triton and CuPy kernels on a real GPU against their NumPy references.

Marked `gpu`; skipped without CuPy and a CUDA device. Outputs that a launcher
allocates are poisoned first: NaN-filled blocks of the same size are freed back to
CuPy's memory pool just before the call, so the launcher's `empty` gets NaN memory
and any element it forgets to write shows up as NaN.
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cupy = pytest.importorskip("cupy")
try:
    HAS_DEVICE = cupy.cuda.runtime.getDeviceCount() > 0
except cupy.cuda.runtime.CUDARuntimeError:
    HAS_DEVICE = False
if not HAS_DEVICE:
    pytest.skip("no CUDA device", allow_module_level=True)

from gpudl.kernels import batchnorm, dropout, optimizer_updates, softmax_cross_entropy  # noqa: E402
from gpudl.tools import cases  # noqa: E402

try:
    import triton  # noqa: F401

    TRITON_ON_GPU = os.environ.get("TRITON_INTERPRET") != "1"
except ImportError:
    TRITON_ON_GPU = False

IMPLEMENTATIONS = [
    pytest.param("triton", marks=pytest.mark.skipif(not TRITON_ON_GPU, reason="Triton missing or interpreted")),
    "cupy",
]
DTYPES = (np.float32, np.float64)


def launcher(module, name, implementation):
    return getattr(module, f"{name}_{implementation}")


def poison(*arrays_like):
    """Leave NaN-filled blocks of these sizes in CuPy's pool for the next allocations."""
    blocks = [cupy.full(a.shape, np.nan, a.dtype) for a in arrays_like]
    cupy.cuda.get_current_stream().synchronize()
    del blocks


def to_gpu(*arrays):
    return [cupy.asarray(a) for a in arrays]


def assert_close(actual, expected, dtype, scale=1.0, ulps=64):
    actual = cupy.asnumpy(actual)
    assert not np.isnan(actual).any(), "unwritten (NaN-poisoned) or NaN elements"
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("N,C,mean", [(1, 7, 0.0), (333, 5, 0.0), (4097, 130, 0.0), (2000, 257, 1e4)])
def test_batchnorm_matches_reference(N, C, mean, relu, dtype, implementation):
    rng = np.random.default_rng([N, C])
    x = (mean + rng.standard_normal((N, C))).astype(dtype)
    gamma, beta, running_mean = (rng.standard_normal(C).astype(dtype) for _ in range(3))
    running_var = rng.random(C).astype(dtype) + dtype(0.5)
    dy = rng.standard_normal((N, C)).astype(dtype)
    gx, ggamma, gbeta, grm, grv, gdy = to_gpu(x, gamma, beta, running_mean, running_var, dy)

    truth = x.astype(np.float64)
    y_truth, mu_truth, rstd_truth = batchnorm.forward_train(
        truth, gamma.astype(np.float64), beta.astype(np.float64), running_mean.astype(np.float64),
        running_var.astype(np.float64), 0.9, 1e-3, relu)
    batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.9, 1e-3, relu)
    poison(x, gamma, gamma)
    y, mu, rstd = launcher(batchnorm, "forward_train", implementation)(
        gx, ggamma, gbeta, grm, grv, 0.9, 1e-3, relu)
    y_scale = (abs(mean) + 1) * np.abs(gamma).max() + np.abs(beta).max()
    assert_close(mu, mu_truth, dtype, scale=abs(mean) + 1)
    assert_close(rstd, rstd_truth, dtype)
    assert_close(y, y_truth, dtype, scale=y_scale)
    assert_close(grm, running_mean, dtype, scale=abs(mean) + 1)
    assert_close(grv, running_var, dtype)

    poison(x)
    y_infer = launcher(batchnorm, "forward_infer", implementation)(gx, ggamma, gbeta, grm, grv, 1e-3, relu)
    assert_close(y_infer, batchnorm.forward_infer(x, gamma, beta, running_mean, running_var, 1e-3, relu),
                 dtype, scale=10 * y_scale)

    host_mu, host_rstd = cupy.asnumpy(mu), cupy.asnumpy(rstd)
    dx, dgamma, dbeta = batchnorm.backward(dy, x, gamma, beta, host_mu, host_rstd, relu)
    poison(x, gamma, gamma)
    dx2, dgamma2, dbeta2 = launcher(batchnorm, "backward", implementation)(gdy, gx, ggamma, gbeta, mu, rstd, relu)
    assert_close(dbeta2, dbeta, dtype, scale=np.sqrt(N))
    assert_close(dgamma2, dgamma, dtype, scale=np.sqrt(N))
    assert_close(dx2, dx, dtype, scale=np.abs(gamma * host_rstd).max() * (1 + abs(mean) * np.finfo(dtype).eps))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_batchnorm_backward_is_bit_deterministic_over_repeat_runs(implementation):
    rng = np.random.default_rng(5)
    x, dy = (rng.standard_normal((8192, 384)).astype(np.float32) for _ in range(2))
    gamma, beta = (rng.standard_normal(384).astype(np.float32) for _ in range(2))
    mean, rstd = x.mean(axis=0), (1 / np.sqrt(x.var(axis=0) + 1e-3)).astype(np.float32)
    arrays = to_gpu(dy, x, gamma, beta, mean, rstd)
    backward = launcher(batchnorm, "backward", implementation)
    first = [cupy.asnumpy(a) for a in backward(*arrays, True)]
    for _ in range(3):
        again = [cupy.asnumpy(a) for a in backward(*arrays, True)]
        for a, b in zip(first, again):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,rate,seed", [
    ((1,), 0.5, 0),
    ((17, 33), 0.5, 2**31 + 7),
    (((1 << 20) + 3,), 0.1, 2**63 + 5),
    ((513, 1001), 0.999, 2**64 - 1),
    ((6, 7), 0.0, 3),
])
def test_dropout_is_bit_identical_to_reference(shape, rate, seed, dtype, implementation):
    rng = np.random.default_rng(len(shape))
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    gx, gdy = to_gpu(x, dy)
    poison(x)
    y = cupy.asnumpy(launcher(dropout, "dropout", implementation)(gx, rate, seed))
    assert np.array_equal(y, dropout.dropout(x, rate, seed))
    poison(x)
    relu_y = cupy.asnumpy(launcher(dropout, "dropout_relu", implementation)(gx, rate, seed))
    assert np.array_equal(relu_y, dropout.dropout_relu(x, rate, seed))
    poison(x)
    relu_dx = cupy.asnumpy(launcher(dropout, "dropout_relu_backward", implementation)(gdy, gx, rate, seed))
    assert np.array_equal(relu_dx, dropout.dropout_relu_backward(dy, x, rate, seed))
    seed_counter = np.array([7, 2**32 + 3], dtype=np.int64)  # the key derived on the device
    poison(x)
    y = cupy.asnumpy(launcher(dropout, "dropout", implementation)(gx, rate, seed, cupy.asarray(seed_counter)))
    assert np.array_equal(y, dropout.dropout(x, rate, dropout.derived_key(seed, seed_counter)))
    offset = cases.DROPOUT_OFFSET  # a data-parallel process's elements of a larger array
    poison(x)
    y = cupy.asnumpy(launcher(dropout, "dropout", implementation)(gx, rate, seed, cupy.asarray(seed_counter), offset))
    assert np.array_equal(y, dropout.dropout(x, rate, seed, seed_counter, offset))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,C,scale", [(1, 2, 1.0), (3, 7, 1.0), (64, 1000, 10.0), (7, 50_001, 1.0),
                                       (2, 100_003, 1.0), (4, 10, 1e4)])
@pytest.mark.parametrize("epsilon", [0.0, 1e-7], ids=["exact", "clipped"])
def test_softmax_cross_entropy_matches_reference(m, C, scale, epsilon, dtype, implementation):
    rng = np.random.default_rng([m, C])
    logits = (scale * rng.standard_normal((m, C))).astype(dtype)
    index = rng.integers(0, C, m)
    index[0] = logits[0].argmin()  # confidently wrong at the wide scales: clipped at epsilon
    soft = rng.random((m, C)).astype(dtype)
    soft /= soft.sum(axis=1, keepdims=True)
    fused = launcher(softmax_cross_entropy, "softmax_cross_entropy", implementation)
    eps = float(np.finfo(dtype).eps)
    for labels in (index, index.astype(np.int32), soft):
        loss, dz = softmax_cross_entropy.softmax_cross_entropy(logits, labels, epsilon=epsilon)
        poison(logits)
        loss2, dz2 = fused(cupy.asarray(logits), cupy.asarray(labels), epsilon=epsilon)
        assert isinstance(loss2, cupy.ndarray) and loss2.shape == () and loss2.dtype == np.float64  # no host read
        assert float(loss2) == pytest.approx(float(loss), rel=256 * eps, abs=256 * eps)
        assert_close(dz2 * m, dz * m, dtype, ulps=256)
        in_place = cupy.asarray(logits)
        loss3, dz3 = fused(in_place, cupy.asarray(labels), in_place, epsilon=epsilon)
        assert dz3 is in_place and float(loss3) == float(loss2)
        assert np.array_equal(cupy.asnumpy(dz3), cupy.asnumpy(dz2))
    poison(logits)
    probabilities = launcher(softmax_cross_entropy, "softmax", implementation)(cupy.asarray(logits))
    assert_close(probabilities, softmax_cross_entropy.softmax(logits), dtype, ulps=256)


RATES = [1e-3, 0.1, 0.01]  # a 3-row step table; step 7 reads row 1 (0.1)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step", [0, 7])
@pytest.mark.parametrize("rule,buffers,step_table,constants", [
    ("sgd", 2, np.array(RATES)[:, None], ()),
    ("sgd_momentum", 3, np.array(RATES)[:, None], (0.9,)),
    ("sgd_momentum", 3, np.array(RATES)[:, None], (0.9, True)),
    ("ema_momentum", 3, np.array(RATES)[:, None], (0.9,)),
    ("rmsprop", 3, np.array(RATES)[:, None], (0.9, 1e-7)),
    ("adam", 4, optimizer_updates.adam_step_table(RATES, 0, 0.9, 0.999), (0.9, 0.999, 1e-8)),
    ("adam", 4, optimizer_updates.adam_step_table(RATES, 6, 0.9, 0.999, 0.01), (0.9, 0.999, 1e-8)),
])
def test_optimizer_update_matches_reference(rule, buffers, step_table, constants, step, dtype, implementation):
    n = 1_000_003
    rng = np.random.default_rng([buffers, len(constants)])
    expected = [rng.standard_normal(n).astype(dtype) for _ in range(buffers)]
    if rule in ("rmsprop", "adam"):
        expected[-1] = np.abs(expected[-1])
    actual = to_gpu(*expected)
    step_counter = np.array([step], dtype=np.int64)
    getattr(optimizer_updates, rule)(*expected, step_table, step_counter, *constants)
    launcher(optimizer_updates, rule, implementation)(*actual, *to_gpu(step_table, step_counter), *constants)
    for a, e in zip(actual, expected):
        assert_close(a, e, dtype, scale=np.abs(e).max(), ulps=8)
