"""The NumPy fast path: the thread pool and scratch buffers (gpudl.threads), the stacked
Philox, the kept dropout mask, and the in-place batch-norm and optimizer references.

Each is checked against an independent computation: Philox from the paper on Python
ints, np.where / np.var written the plain way, float64 formulas, and the same kernel run
on one thread (splitting elementwise work must not change a bit)."""

import threading

import numpy as np
import pytest

import gpudl
from gpudl import threads
from gpudl.kernels import batchnorm, dropout, optimizer_updates
from test_kernel_references import philox_scalar  # Philox from the paper, on Python ints


@pytest.fixture
def many_threads(monkeypatch):
    """Four threads and tiny grains, so small arrays are split into several parts."""
    monkeypatch.setitem(threads._state, "threads", 4)
    monkeypatch.setattr(threads, "DEFAULT_GRAIN", 8)
    monkeypatch.setattr(dropout, "PHILOX_GRAIN", 3)


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setitem(threads._state, "threads", 1)


# --- gpudl.threads ----------------------------------------------------------------------

def test_parallel_for_covers_every_index_once_across_threads(many_threads):
    seen = np.zeros(1000, dtype=np.int64)
    parts = []

    def work(start, stop):
        parts.append((start, stop))
        seen[start:stop] += 1

    threads.parallel_for(work, 1000)
    assert np.array_equal(seen, np.ones(1000, dtype=np.int64))
    assert sorted(parts) == list(zip(threads.split(1000, 8)[:-1], threads.split(1000, 8)[1:]))


def test_parallel_for_small_work_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setitem(threads._state, "threads", 2)
    calls = []
    threads.parallel_for(lambda start, stop: calls.append((start, stop, threading.current_thread().name)), 100)
    assert calls == [(0, 100, threading.current_thread().name)]


def test_parallel_for_raises_a_part_error_after_all_parts_finish(many_threads):
    done = []

    def work(start, stop):
        if start == 0:
            raise KeyError("part zero")
        done.append(start)

    with pytest.raises(KeyError, match="part zero"):
        threads.parallel_for(work, 80)
    assert sorted(done) == threads.split(80, 8)[1:-1]  # every other part ran to the end


def test_split_gives_near_equal_contiguous_parts():
    assert threads.split(10, 4) == [0, 2, 5, 7, 10]
    assert threads.split(3, 3) == [0, 1, 2, 3]


def test_parallel_elementwise_writes_through_views_and_takes_strided_arrays_whole(many_threads):
    a = np.arange(100.0)
    threads.parallel_elementwise(lambda part: np.multiply(part, 2.0, out=part), a)
    assert np.array_equal(a, 2.0 * np.arange(100.0))
    strided = np.arange(200.0).reshape(10, 20).T  # not C-contiguous: one call, whole
    shapes = []
    threads.parallel_elementwise(lambda part: (shapes.append(part.shape), np.negative(part, out=part)), strided)
    assert shapes == [(20, 10)] and np.array_equal(strided, -np.arange(200.0).reshape(10, 20).T)


def test_scratch_like_is_reused_per_name_and_thread_and_grows():
    first = threads.scratch_like("test", np.empty((4, 5), np.float32))
    again = threads.scratch_like("test", np.empty(20, np.float32))
    assert first.shape == (4, 5) and first.dtype == np.float32 and np.shares_memory(first, again)
    assert not np.shares_memory(first, threads.scratch_like("other", np.empty(20, np.float32)))
    bigger = threads.scratch_like("test", np.empty(50, np.float32))
    assert bigger.shape == (50,)
    elsewhere = []
    worker = threading.Thread(target=lambda: elsewhere.append(threads.scratch_like("test", np.empty(50, np.float32))))
    worker.start()
    worker.join()
    assert not np.shares_memory(bigger, elsewhere[0])


def test_thread_count_reads_gpudl_num_threads(monkeypatch):
    monkeypatch.setitem(threads._state, "threads", None)
    monkeypatch.setenv("GPUDL_NUM_THREADS", "3")
    assert threads.thread_count() == 3
    monkeypatch.setitem(threads._state, "threads", None)
    monkeypatch.setenv("GPUDL_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="GPUDL_NUM_THREADS.*positive integer.*'zero'"):
        threads.thread_count()


@pytest.mark.parametrize("blas, expected", [(4, 1), (3, 2), (1, 4), (None, 1)])
def test_default_thread_count_takes_the_cores_blas_leaves_free(monkeypatch, blas, expected):
    monkeypatch.setitem(threads._state, "threads", None)
    monkeypatch.delenv("GPUDL_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "blas_threads", lambda: blas)
    assert threads.thread_count() == expected


def test_blas_threads_reads_numpys_blas_through_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert threads.blas_threads() == 1


# --- dropout ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5, 13, 64, 101])
def test_threaded_philox_words_match_the_scalar_reference(many_threads, n):
    seed = int(np.random.default_rng().integers(0, 2**64, dtype=np.uint64))
    words = dropout.random_words(n, seed)
    expected = [philox_scalar((i // 4, 0, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))[i % 4] for i in range(n)]
    assert words.dtype == np.uint32 and words.tolist() == expected


def test_philox_broadcasts_scalar_and_array_counters():
    seed = 0xDEADBEEF_12345678
    c0, c1, c2, c3 = dropout.philox4x32_10(np.arange(3), 7, 0, [[1], [2]], seed)
    assert c0.shape == (2, 3)
    for row, high in enumerate((1, 2)):
        for col in range(3):
            expected = philox_scalar((col, 7, 0, high), (seed & 0xFFFFFFFF, seed >> 32))
            assert (int(c0[row, col]), int(c1[row, col]), int(c2[row, col]), int(c3[row, col])) == expected


def test_keep_mask_is_the_same_on_one_thread_and_many(monkeypatch):
    x_shape, rate, seed = (37, 29), 0.35, 2024
    monkeypatch.setitem(threads._state, "threads", 1)
    serial = dropout.keep_mask(x_shape, rate, seed)
    monkeypatch.setitem(threads._state, "threads", 4)
    monkeypatch.setattr(dropout, "PHILOX_GRAIN", 2)
    assert np.array_equal(dropout.keep_mask(x_shape, rate, seed), serial)
    words = np.array([philox_scalar((i // 4, 0, 0, 0), (seed, 0))[i % 4] for i in range(37 * 29)], np.int64)
    assert np.array_equal(serial.reshape(-1), words >= round(rate * 2**32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dropout_gives_exact_positive_zeros_where_dropped_even_for_inf_and_nan(dtype):
    x = np.array([-1.5, np.inf, -np.inf, np.nan, 2.0, -0.0, 3.0, -4.0] * 8, dtype=dtype)
    rate, seed = 0.5, 11
    keep = dropout.keep_mask(x.shape, rate, seed)
    assert keep.any() and not keep.all()
    with np.errstate(invalid="ignore"):
        expected = np.where(keep, x * dtype(1 / (1 - rate)), dtype(0))
    y = dropout.dropout(x, rate, seed)
    assert y.dtype == dtype and y.tobytes() == expected.tobytes()  # bits: +0, not -0 or NaN
    assert not np.signbit(y[~keep]).any()


def test_dropout_train_keeps_the_mask_that_backward_applies():
    rng = np.random.default_rng()
    x, dy = rng.standard_normal((2, 16, 33)).astype(np.float32)
    seed, seed_counter = 99, np.array([2, 41], dtype=np.int64)
    y, keep = dropout.dropout_train(x, 0.2, seed, seed_counter)
    key = dropout.derived_key(seed, seed_counter)
    assert keep.dtype == bool and np.array_equal(keep, dropout.keep_mask(x.shape, 0.2, key))
    assert np.array_equal(y, np.where(keep, x * np.float32(1.25), np.float32(0)))
    dx = dropout.dropout_backward(dy, keep, 0.2, seed, seed_counter)
    assert dx.tobytes() == dropout.dropout(dy, 0.2, seed, seed_counter).tobytes()


def test_dropout_layer_backward_uses_the_forward_mask_on_the_numpy_backend(monkeypatch):
    gpudl.set_backend("numpy")
    layer = gpudl.layers.Dropout(0.3, seed=5)
    layer.build_for((40,), "float32")
    layer.index = 2
    rng = np.random.default_rng()
    x, dy = rng.standard_normal((2, 8, 40)).astype(np.float32)
    y = layer.forward(x, training=True)
    key = dropout.derived_key(5, (2, 0))
    keep = dropout.keep_mask(x.shape, 0.3, key)
    assert np.array_equal(y, np.where(keep, x * np.float32(1 / 0.7), np.float32(0)))

    def no_second_draw(*args, **kwargs):
        raise AssertionError("the backward drew the mask again")

    monkeypatch.setattr(dropout, "keep_mask", no_second_draw)
    assert np.array_equal(layer.backward(dy), np.where(keep, dy * np.float32(1 / 0.7), np.float32(0)))


def test_gpu_op_tables_save_no_mask_and_draw_it_again_in_backward():
    pytest.importorskip("triton")
    ops = gpudl.backend.op_table("_triton")
    rng = np.random.default_rng()
    x, dy = rng.standard_normal((2, 6, 50)).astype(np.float32)
    seed_counter = np.array([1, 3], dtype=np.int64)
    y, saved = ops.dropout_train(x, 0.25, 8, seed_counter)
    assert saved is None
    assert np.array_equal(y, dropout.dropout(x, 0.25, 8, seed_counter))
    assert np.array_equal(ops.dropout_backward(dy, saved, 0.25, 8, seed_counter),
                          dropout.dropout(dy, 0.25, 8, seed_counter))


# --- batch-norm -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 3), (128, 64), (7, 513)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_forward_rounds_as_numpy_mean_and_var(shape, dtype):
    rng = np.random.default_rng()
    x = (rng.standard_normal(shape) * 4 + 3).astype(dtype)
    gamma, beta = rng.standard_normal((2, shape[1])).astype(dtype)
    running_mean, running_var = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    y, mean, rstd = batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.9, 1e-3)
    expected_rstd = 1.0 / np.sqrt(x.var(axis=0) + dtype(1e-3))
    assert mean.tobytes() == x.mean(axis=0).tobytes() and rstd.tobytes() == expected_rstd.tobytes()
    assert y.tobytes() == ((x - x.mean(axis=0)) * (expected_rstd * gamma) + beta).tobytes()
    assert running_var.tobytes() == (np.ones(shape[1], dtype) * 0.9 + (1.0 - 0.9) * x.var(axis=0)).tobytes()
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-3) * gamma + beta,
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)


def test_batchnorm_backward_matches_float64_formula_and_leaves_inputs_alone():
    rng = np.random.default_rng()
    x, dy = rng.standard_normal((2, 64, 30))
    gamma, beta = rng.standard_normal((2, 30))
    _, mean, rstd = batchnorm.forward_train(x, gamma, beta, np.zeros(30), np.ones(30), 0.9, 1e-3)
    x_before, dy_before = x.copy(), dy.copy()
    dx, dgamma, dbeta = batchnorm.backward(dy, x, gamma, beta, mean, rstd)
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    expected_dx = gamma / np.sqrt(x.var(0) + 1e-3) * (dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0))
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, (dy * x_hat).sum(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbeta, dy.sum(0), rtol=1e-12)
    assert np.array_equal(x, x_before) and np.array_equal(dy, dy_before)
    dx_again, _, _ = batchnorm.backward(dy, x, gamma, beta, mean, rstd)
    assert not np.shares_memory(dx, dx_again)  # a fresh output each call, scratch aside


# --- optimizer updates --------------------------------------------------------------

RULES = [("adam", 2, (0.9, 0.999, 1e-7), "adam"), ("adamw", 2, (0.9, 0.999, 1e-7), "adamw"),
         ("sgd", 0, (), "rate"), ("sgd_momentum", 1, (0.9,), "rate"), ("sgd_momentum", 1, (0.9, True), "rate"),
         ("ema_momentum", 1, (0.9,), "rate"), ("rmsprop", 1, (0.9, 1e-7), "rate")]


def _step(rule, slots, constants, table_kind, arrays):
    rates = [0.01, 0.02]
    if table_kind == "rate":
        table = np.array(rates).reshape(-1, 1)
    else:
        table = optimizer_updates.adam_step_table(rates, 0, 0.9, 0.999, weight_decay=0.05 * (table_kind == "adamw"))
    function = getattr(optimizer_updates, "adam" if rule == "adamw" else rule)
    function(arrays[0], arrays[1], *arrays[2:2 + slots], table, np.array([1]), *constants)


@pytest.mark.parametrize("rule, slots, constants, table_kind", RULES)
def test_optimizer_rules_split_across_threads_are_bit_identical_to_one_thread(monkeypatch, rule, slots, constants,
                                                                              table_kind):
    rng = np.random.default_rng()
    arrays = [rng.standard_normal(1001).astype(np.float32) for _ in range(2)]
    arrays += [np.abs(rng.standard_normal(1001)).astype(np.float32) for _ in range(2)]  # slots: v >= 0
    serial = [a.copy() for a in arrays]
    monkeypatch.setitem(threads._state, "threads", 1)
    _step(rule, slots, constants, table_kind, serial)
    monkeypatch.setitem(threads._state, "threads", 3)
    monkeypatch.setattr(threads, "DEFAULT_GRAIN", 16)
    split = [a.copy() for a in arrays]
    _step(rule, slots, constants, table_kind, split)
    for a, b in zip(serial, split):
        assert a.tobytes() == b.tobytes()


def test_adamw_matches_the_float64_formula_including_the_decay():
    rng = np.random.default_rng()
    param, grad, m, v = rng.standard_normal((4, 5000))
    v = np.abs(v)
    expected = param.copy()
    lr, wd, b1, b2, eps, t = 0.02, 0.05, 0.9, 0.999, 1e-7, 2
    expected *= 1 - lr * wd
    m_next, v_next = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad**2
    expected -= lr / (1 - b1**t) * m_next / (np.sqrt(v_next) / np.sqrt(1 - b2**t) + eps)
    _step("adamw", 2, (b1, b2, eps), "adamw", [param, grad, m, v])
    np.testing.assert_allclose(param, expected, rtol=1e-13, atol=1e-16)  # atol: where param - update cancels
    np.testing.assert_allclose(m, m_next, rtol=1e-14)
    np.testing.assert_allclose(v, v_next, rtol=1e-14)
