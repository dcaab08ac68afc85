"""The GPU kernels against their NumPy references on the CPU: the Triton kernels in the
Triton interpreter, the CuPy kernels' CUDA C through the CUDA-on-CPU harness
(gpudl/tools/cuda_cpu.py), both through their own launchers and the same checks.

tests/conftest.py sets TRITON_INTERPRET=1 before triton is first imported when there is
no CUDA device; on a GPU these checks run compiled in test_kernels_gpu.py instead.
Shapes stay small: the interpreter runs each program as vectorized NumPy, and the
harness runs every CUDA thread as a fiber.
"""

import math
import os

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton is compiled here (a GPU is present): test_kernels_gpu.py covers it",
                allow_module_level=True)

pytest.importorskip("torch")
pytest.importorskip("triton")

from gpudl.tools.cuda_cpu import cupy_on_cpu  # noqa: E402
from gpudl import backend  # noqa: E402
from gpudl.tools import cases  # noqa: E402  (the hard cases, shared with gpudl selftest)
from gpudl.kernels import batchnorm, dropout, optimizer_updates, softmax_cross_entropy  # noqa: E402
from gpudl.tools import triton_sanitizer  # noqa: E402

triton_sanitizer.install()  # loads and stores bounds-checked, races refused, launcher outputs start as NaN

DTYPES = cases.DTYPES


@pytest.fixture(params=["triton", "cupy"])
def implementation(request):
    """Which GPU implementation runs: "triton" (interpreted) or "cupy" (CUDA on the CPU)."""
    if request.param == "cupy":
        with cupy_on_cpu():
            yield "cupy"
    else:
        yield "triton"


def launcher(module, name, implementation):
    return getattr(module, f"{name}_{implementation}")


def assert_close(actual, expected, dtype, scale=1.0, ulps=16):
    """Agreement to `ulps` roundings of `dtype`, relative to each value and to `scale`."""
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale)


# --- batch norm --------------------------------------------------------------

BATCHNORM_CASES = [case[:4] for case in cases.upto(cases.BATCHNORM, 1)]  # (N, C, mean, spread)


def batchnorm_inputs(rng, N, C, mean, spread, dtype):
    x = (mean + spread * rng.standard_normal((N, C))).astype(dtype)
    gamma, beta, running_mean = (rng.standard_normal(C).astype(dtype) for _ in range(3))
    running_var = rng.random(C).astype(dtype) + dtype(0.5)
    return x, gamma, beta, running_mean, running_var


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("N,C,mean,spread", BATCHNORM_CASES)
def test_batchnorm_forward_and_backward_match_reference(N, C, mean, spread, relu, dtype, implementation):
    rng = np.random.default_rng([N, C, int(relu)])
    x, gamma, beta, running_mean, running_var = batchnorm_inputs(rng, N, C, mean, spread, dtype)
    ours_running_mean, ours_running_var = running_mean.copy(), running_var.copy()
    y, mu, rstd = batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.9, 1e-3, relu)
    y2, mu2, rstd2 = launcher(batchnorm, "forward_train", implementation)(
        x, gamma, beta, ours_running_mean, ours_running_var, 0.9, 1e-3, relu)
    # the reference's float32 mean of values near 1e4 is itself off by ~10 roundings of 1e4
    # (sequential sums down the batch axis); the kernels sum shifted data. The true mean is
    # math.fsum's; summing N terms in any tree order adds up to one rounding per level, and
    # at a GPU's grid (GPUDL_GPU_SIZES=1) the kernels split the rows into many partials
    truth = x.astype(np.float64)
    exact_mean = np.array([math.fsum(column) / N for column in truth.T])
    assert_close(mu2, exact_mean, dtype, scale=abs(mean) + spread, ulps=4 + np.log2(N))
    assert_close(rstd2, 1.0 / np.sqrt(truth.var(axis=0) + 1e-3), dtype, ulps=64)
    assert_close(mu2, mu, dtype, scale=abs(mean) + spread, ulps=64)
    assert_close(rstd2, rstd, dtype, ulps=64)
    # y against the float64 reference: x - mean carries the roundings of |x| ~ |mean|
    y_truth = batchnorm.forward_train(truth, gamma.astype(np.float64), beta.astype(np.float64),
                                      running_mean.copy(), running_var.copy(), 0.9, 1e-3, relu)[0]
    y_scale = (abs(mean) + spread) / spread * np.abs(gamma).max() + np.abs(beta).max()
    assert_close(y2, y_truth, dtype, scale=y_scale, ulps=16)
    if mean == 0:
        assert_close(y2, y, dtype, scale=y_scale, ulps=16)
    assert_close(ours_running_mean, running_mean, dtype, scale=abs(mean) + 1, ulps=64)
    assert_close(ours_running_var, running_var, dtype, ulps=64)

    dy = rng.standard_normal((N, C)).astype(dtype)
    dx, dgamma, dbeta = batchnorm.backward(dy, x, gamma, beta, mu2, rstd2, relu)
    dx2, dgamma2, dbeta2 = launcher(batchnorm, "backward", implementation)(dy, x, gamma, beta, mu2, rstd2, relu)
    assert_close(dbeta2, dbeta, dtype, scale=np.sqrt(N), ulps=64)
    assert_close(dgamma2, dgamma, dtype, scale=np.sqrt(N), ulps=64)
    assert_close(dx2, dx, dtype, scale=np.abs(gamma * rstd2).max() * (1 + abs(mean) * np.finfo(dtype).eps), ulps=64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_inference_uses_running_statistics(relu, dtype, implementation):
    rng = np.random.default_rng(7)
    x, gamma, beta, running_mean, running_var = batchnorm_inputs(rng, 37, 131, 0.0, 3.0, dtype)
    expected = batchnorm.forward_infer(x, gamma, beta, running_mean, running_var, 1e-3, relu)
    actual = launcher(batchnorm, "forward_infer", implementation)(x, gamma, beta, running_mean, running_var, 1e-3, relu)
    assert_close(actual, expected, dtype, scale=10.0)


def test_batchnorm_backward_is_bit_deterministic_over_repeat_runs(implementation):
    rng = np.random.default_rng(3)
    x, gamma, beta, _, _ = batchnorm_inputs(rng, 150, 70, 0.0, 1.0, np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    mean, rstd = x.mean(axis=0), (1 / np.sqrt(x.var(axis=0) + 1e-3)).astype(np.float32)
    first = launcher(batchnorm, "backward", implementation)(dy, x, gamma, beta, mean, rstd, True)
    for _ in range(2):
        again = launcher(batchnorm, "backward", implementation)(dy, x, gamma, beta, mean, rstd, True)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)


# --- dropout -----------------------------------------------------------------

DROPOUT_CASES = [case[:3] for case in cases.upto(cases.DROPOUT, 1)]  # (shape, rate, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,rate,seed", DROPOUT_CASES)
def test_dropout_mask_and_values_are_bit_identical_to_reference(shape, rate, seed, dtype, implementation):
    rng = np.random.default_rng(len(shape) + seed % 1000)
    x = rng.standard_normal(shape).astype(dtype)
    y = launcher(dropout, "dropout", implementation)(x, rate, seed)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(y, dropout.dropout(x, rate, seed))
    assert np.array_equal(y != 0, dropout.keep_mask(shape, rate, seed))
    dy = rng.standard_normal(shape).astype(dtype)
    relu_y = launcher(dropout, "dropout_relu", implementation)(x, rate, seed)
    assert np.array_equal(relu_y, dropout.dropout_relu(x, rate, seed))
    assert np.array_equal(launcher(dropout, "dropout_relu_backward", implementation)(dy, x, rate, seed),
                          dropout.dropout_relu_backward(dy, x, rate, seed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index,call", [(0, 0), (4, 123), (2**32 - 1, 2**32 + 1)])
def test_dropout_key_derived_on_the_device_from_the_seed_counter_matches_reference(index, call, dtype,
                                                                                   implementation):
    rng = np.random.default_rng([index % 1000, call % 1000])
    x, dy = (rng.standard_normal((19, 67)).astype(dtype) for _ in range(2))
    seed, seed_counter = 2**63 + 99, np.array([index, call], dtype=np.int64)
    y = launcher(dropout, "dropout", implementation)(x, 0.4, seed, seed_counter)
    assert np.array_equal(y, dropout.dropout(x, 0.4, dropout.derived_key(seed, seed_counter)))
    assert np.array_equal(y, dropout.dropout(x, 0.4, seed, seed_counter))
    assert np.array_equal(launcher(dropout, "dropout_relu", implementation)(x, 0.4, seed, seed_counter),
                          dropout.dropout_relu(x, 0.4, seed, seed_counter))
    assert np.array_equal(launcher(dropout, "dropout_relu_backward", implementation)(dy, x, 0.4, seed, seed_counter),
                          dropout.dropout_relu_backward(dy, x, 0.4, seed, seed_counter))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed_counter", [None, np.array([3, 2**32 + 5], dtype=np.int64)], ids=["seed", "counter"])
def test_dropout_with_an_offset_draws_exactly_those_rows_of_the_whole_mask(seed_counter, dtype, implementation):
    """A data-parallel process's rows [first, first + rows) of a (9, 7) global batch (offset =
    first * 7: the first counter's lanes before it are not its own, offset % 4 = 0 to 3): every
    op gives exactly those rows of the whole array's result and of the NumPy reference's."""
    rng = np.random.default_rng(len(DTYPES) + np.dtype(dtype).itemsize)
    x, dy = (rng.standard_normal((9, 7)).astype(dtype) for _ in range(2))
    columns = [rng.standard_normal(7).astype(dtype) for _ in range(4)]
    columns[1] = np.abs(columns[1])  # rstd
    seed, rate = 2**63 + 17, 0.4
    arrays = {"dropout": lambda rows: (x[rows],), "dropout_relu": lambda rows: (x[rows],),
              "dropout_relu_backward": lambda rows: (dy[rows], x[rows]),
              "normalize_dropout_relu": lambda rows: (x[rows], *columns)}
    for name, arguments in arrays.items():
        kernel, reference = launcher(dropout, name, implementation), getattr(dropout, name)
        whole = kernel(*arguments(slice(None)), rate, seed, seed_counter)
        assert np.array_equal(whole, reference(*arguments(slice(None)), rate, seed, seed_counter)), name
        for first, rows in ((0, 4), (4, 5), (3, 1), (1, 8), (9, 0)):
            part = [np.ascontiguousarray(a) for a in arguments(slice(first, first + rows))]
            got = kernel(*part, rate, seed, seed_counter, first * 7)
            assert np.array_equal(got, whole[first:first + rows]), (name, first, rows)
            assert np.array_equal(got, reference(*part, rate, seed, seed_counter, first * 7)), (name, first, rows)


@pytest.mark.parametrize("offset", [cases.DROPOUT_OFFSET, 2**40 + 1])
def test_dropout_with_a_large_offset_matches_the_reference_across_the_counters_high_word(offset, implementation):
    x = np.random.default_rng(offset % 1000).standard_normal((5, 6))
    seed_counter = np.array([1, 2], dtype=np.int64)
    for name in ("dropout", "dropout_relu"):
        got = launcher(dropout, name, implementation)(x, 0.5, 12345, seed_counter, offset)
        assert np.array_equal(got, getattr(dropout, name)(x, 0.5, 12345, seed_counter, offset)), name
    # the NumPy reference itself: the same elements as seen from an offset 3 elements earlier
    assert np.array_equal(dropout.keep_mask((33,), 0.5, 12345, seed_counter, offset - 3)[3:],
                          dropout.keep_mask((30,), 0.5, 12345, seed_counter, offset))


def test_dropout_refuses_a_negative_or_fractional_offset(implementation):
    x = np.ones((2, 3), np.float32)
    for offset in (-1, 2.5, True):
        with pytest.raises(ValueError, match=r"`offset`.*\[0, 2\*\*62\)"):
            launcher(dropout, "dropout", implementation)(x, 0.5, 0, None, offset)


def test_dropout_keeps_a_word_equal_to_the_threshold_and_drops_one_below(implementation):
    # Philox4x32-10 at counter 0, key 0 (Random123 known answer): word 3 is 0x9b00dbd8
    words = (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    x = np.ones(4, np.float32)
    at_threshold = launcher(dropout, "dropout", implementation)(x, 0x9B00DBD8 / 2**32, 0)
    above_threshold = launcher(dropout, "dropout", implementation)(x, (0x9B00DBD8 + 1) / 2**32, 0)
    assert [bool(v) for v in at_threshold] == [w >= 0x9B00DBD8 for w in words] == [False, True, True, True]
    assert [bool(v) for v in above_threshold] == [False, True, True, False]


# --- softmax cross-entropy ---------------------------------------------------

SOFTMAX_CASES = [case[:3] for case in cases.upto(cases.SOFTMAX, 1)]  # (m, C, logit scale)


def one_hot_and_soft_labels(rng, m, C, dtype):
    index = rng.integers(0, C, m)
    soft = rng.random((m, C)).astype(dtype)
    soft /= soft.sum(axis=1, keepdims=True)
    return index, soft


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("epsilon", [0.0, 1e-7], ids=["exact", "clipped"])
@pytest.mark.parametrize("m,C,scale", SOFTMAX_CASES)
def test_softmax_cross_entropy_matches_reference_for_index_and_soft_labels(m, C, scale, epsilon, dtype,
                                                                           implementation):
    rng = np.random.default_rng([m, C])
    logits = (scale * rng.standard_normal((m, C))).astype(dtype)
    index, soft = one_hot_and_soft_labels(rng, m, C, dtype)
    index[0] = logits[0].argmin()  # confidently wrong when the logits spread wide: clipped at epsilon
    for labels in (index, index.astype(np.int32), soft):
        loss, dz = softmax_cross_entropy.softmax_cross_entropy(logits, labels, epsilon=epsilon)
        loss2, dz2 = launcher(softmax_cross_entropy, "softmax_cross_entropy", implementation)(logits, labels,
                                                                                              epsilon=epsilon)
        assert isinstance(loss2, np.ndarray) and loss2.shape == () and loss2.dtype == np.float64
        eps = float(np.finfo(dtype).eps)
        assert float(loss2) == pytest.approx(float(loss), rel=64 * eps, abs=64 * eps)
        assert_close(dz2 * m, dz * m, dtype, ulps=64)
    probabilities = launcher(softmax_cross_entropy, "softmax", implementation)(logits)
    assert_close(probabilities, softmax_cross_entropy.softmax(logits), dtype, ulps=64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_in_place_over_logits_matches_out_of_place(dtype, implementation):
    rng = np.random.default_rng(11)
    logits = (5 * rng.standard_normal((6, 4099))).astype(dtype)
    index, soft = one_hot_and_soft_labels(rng, 6, 4099, dtype)
    fused = launcher(softmax_cross_entropy, "softmax_cross_entropy", implementation)
    for labels in (index, soft):
        for epsilon in (0.0, 1e-7):
            loss, dz = fused(logits, labels, epsilon=epsilon)
            overwritten = logits.copy()
            loss2, dz2 = fused(overwritten, labels, overwritten, epsilon=epsilon)
            assert dz2 is overwritten
            assert loss2 == loss and np.array_equal(dz2, dz)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clipped_softmax_cross_entropy_gives_keras_value_and_no_gradient_for_confident_rows(dtype, implementation):
    """Row 0 confidently wrong (a_label ~ e^-200 clipped up to 1e-7: loss -log 1e-7 = 16.118),
    row 1 confidently right (a_label rounds to 1, clipped down), row 2 ordinary: only row 2 has
    a gradient, and the exact form gives row 0 its true loss of 200."""
    logits = np.array([[100.0, -100.0, 0.0], [100.0, -100.0, 0.0], [0.5, -0.5, 0.0]], dtype)
    labels = np.array([1, 0, 2])
    fused = launcher(softmax_cross_entropy, "softmax_cross_entropy", implementation)
    loss, dz = fused(logits, labels, epsilon=1e-7)
    low, high = dtype(1e-7), dtype(1 - 1e-7)
    p = np.exp(logits[2].astype(np.float64) - logits[2].max())
    p /= p.sum()
    expected = (-np.log(low) - np.log(high) - np.log(p[2])) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert not dz[:2].any()
    np.testing.assert_allclose(dz[2], (p - np.eye(3)[2]) / 3, rtol=1e-6)
    exact, _ = fused(logits, labels)
    assert float(exact) == pytest.approx((200 + np.log1p(np.exp(-100) + np.exp(-200)) - np.log(p[2])) / 3, rel=1e-6)


def test_out_of_range_label_gives_a_nan_row_loss_in_the_kernel_not_a_bad_read(implementation):
    """On a device the launchers skip the host check of the label range (it would read
    back every step); the kernels guard the read and give that row's loss NaN."""
    rng = np.random.default_rng(12)
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    labels = np.array([0, 1, 3, -1])
    if implementation == "cupy":  # device arrays: no host check
        row_loss = softmax_cross_entropy._launch_cupy(logits, labels, np.empty_like(logits),
                                                      softmax_cross_entropy.INDEX_LABELS)
    else:  # host arrays are checked by the launcher: call past it to reach the kernel
        row_loss = softmax_cross_entropy._launch_triton(logits, labels, np.empty_like(logits),
                                                        softmax_cross_entropy.INDEX_LABELS)
    expected, _ = softmax_cross_entropy.softmax_cross_entropy(logits[:2], labels[:2])
    assert np.isnan(row_loss[2:]).all()
    clipped = (softmax_cross_entropy._launch_cupy if implementation == "cupy" else softmax_cross_entropy._launch_triton)(
        logits, labels, np.empty_like(logits), softmax_cross_entropy.INDEX_LABELS, 1e-7)
    assert np.isnan(clipped[2:]).all()
    assert float(row_loss[:2].mean(dtype=np.float64)) == pytest.approx(float(expected), rel=1e-6)


# --- optimizer updates -------------------------------------------------------

OPTIMIZER_SIZES = [n for n, tier in cases.OPTIMIZER_SIZES if tier <= 1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", OPTIMIZER_SIZES)
@pytest.mark.parametrize("step", cases.OPTIMIZER_STEPS)
@pytest.mark.parametrize("case", cases.OPTIMIZER, ids=str)
def test_optimizer_update_matches_reference_in_place(case, step, n, dtype, implementation):
    rng = np.random.default_rng([n, case.buffers, len(case.constants), case.first_step])
    expected = cases.optimizer_inputs(rng, case, n, dtype)  # every third gradient tiny, second moments >= 0
    actual = [b.copy() for b in expected]
    step_table, step_counter = cases.optimizer_step_table(case), np.array([step], dtype=np.int64)
    getattr(optimizer_updates, case.rule)(*expected, step_table, step_counter, *case.constants)
    launcher(optimizer_updates, case.rule, implementation)(*actual, step_table, step_counter, *case.constants)
    for a, e in zip(actual, expected):
        assert np.array_equal(a, e)  # the interpreter rounds as NumPy does, operation by operation


# --- launcher checks and the op table ----------------------------------------


def test_launchers_refuse_bad_arguments_before_launching(implementation):
    x = np.ones((4, 3), np.float32)
    c = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        launcher(batchnorm, "forward_infer", implementation)(np.ones((3, 4), np.float32).T, c, c, c, c, 1e-3)
    with pytest.raises(ValueError, match="dtype"):
        launcher(batchnorm, "forward_infer", implementation)(x, c.astype(np.float64), c, c, c, 1e-3)
    with pytest.raises(ValueError, match="shape"):
        launcher(batchnorm, "forward_train", implementation)(x, c, c, np.ones(4, np.float32), c, 0.9, 1e-3)
    with pytest.raises(ValueError, match="float32 or float64"):
        launcher(dropout, "dropout", implementation)(np.ones(4, np.float16), 0.5, 0)
    with pytest.raises(ValueError, match="rate"):
        launcher(dropout, "dropout", implementation)(x, 1.0, 0)
    if implementation == "triton":  # host arrays: labels are checked on the host (not on a device)
        with pytest.raises(ValueError, match=r"\[0, 3\)"):
            launcher(softmax_cross_entropy, "softmax_cross_entropy", implementation)(x, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="shape"):
        launcher(softmax_cross_entropy, "softmax_cross_entropy", implementation)(x, np.zeros((4, 2), np.float32))
    step_counter = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match=r"`step_table` must be a float64 array of shape \(rows >= 1, 3\)"):
        launcher(optimizer_updates, "adam", implementation)(c, c, c, c, np.ones((2, 1)), step_counter, 0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match="step_table"):
        launcher(optimizer_updates, "sgd", implementation)(c, c, np.ones((0, 1)), step_counter)
    with pytest.raises(ValueError, match=r"`step_counter` must be an int64 array of shape \(1,\)"):
        launcher(optimizer_updates, "sgd", implementation)(c, c, np.ones((2, 1)), np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="shape"):
        launcher(optimizer_updates, "sgd", implementation)(c, np.ones(4, np.float32), np.ones((1, 1)), step_counter)
    with pytest.raises(ValueError, match=r"`seed_counter` must be an int64 array of shape \(2,\)"):
        launcher(dropout, "dropout", implementation)(x, 0.5, 0, np.zeros(1, np.int64))


def train_small_model_on(backend_name):
    import gpudl
    from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

    gpudl.set_backend(backend_name)
    try:
        gpudl.utils.set_random_seed(7)
        rng = np.random.default_rng(7)
        x = rng.normal(size=(40, 5)).astype(np.float32)
        y = rng.integers(0, 3, 40)
        model = gpudl.Sequential([gpudl.Input((5,)), Dense(6, use_bias=False), BatchNormalization(), ReLU(), Dropout(0.25),
                                  Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return history.history["loss"], model.get_weights()
    finally:
        gpudl.set_backend("numpy")


def test_whole_training_run_on_the_triton_backend_matches_numpy():
    """The frontend drives the Triton op table (interpreted here) to the numpy backend's
    result: same dropout masks by design, the rest to float32 rounding. (No bias before
    batch norm: its true gradient is zero, and Adam would turn round-off there into steps.)"""
    assert vars(backend.op_table("_triton")).keys() == vars(backend.op_table()).keys()
    assert vars(backend.op_table("_cupy")).keys() == vars(backend.op_table()).keys()
    numpy_loss, numpy_weights = train_small_model_on("numpy")
    triton_loss, triton_weights = train_small_model_on("triton")
    np.testing.assert_allclose(triton_loss, numpy_loss, rtol=1e-5)
    for ours, reference in zip(triton_weights, numpy_weights):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)
