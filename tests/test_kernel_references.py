"""The NumPy references of the fused ops (the spec the GPU kernels are tested against),
checked against independent numbers: Random123's known answer, a scalar Philox written
here from the paper, float64 recomputations and the course's worked examples."""

import inspect
import math

import numpy as np
import pytest

from gpudl import backend, kernels
from gpudl.kernels import batchnorm, dropout, optimizer_updates, softmax_cross_entropy


def philox_scalar(counter, key):
    """Philox4x32-10 on Python ints, straight from Salmon et al. (2011)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        a, b = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (b >> 32) ^ c1 ^ k0, b & 0xFFFFFFFF, (a >> 32) ^ c3 ^ k1, a & 0xFFFFFFFF
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c0, c1, c2, c3


def test_philox_random123_known_answer():
    words = dropout.philox4x32_10([0], [0], [0], [0], 0)
    assert [int(w[0]) for w in words] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


def test_philox_vectorized_matches_scalar_reference_with_high_words():
    rng = np.random.default_rng()
    counters = rng.integers(0, 2**32, size=(4, 9), dtype=np.uint64).astype(np.uint32)
    seed = int(rng.integers(0, 2**63))
    ours = dropout.philox4x32_10(*counters, seed)
    for j in range(9):
        expected = philox_scalar([int(c[j]) for c in counters], (seed & 0xFFFFFFFF, seed >> 32))
        assert tuple(int(w[j]) for w in ours) == expected


def test_dropout_words_are_four_per_counter_in_lane_order():
    seed = 0x1234_5678_9ABC_DEF0
    words = dropout.random_words(10, seed)
    for i in (0, 1, 2, 3, 4, 9):
        expected = philox_scalar((i // 4, 0, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))[i % 4]
        assert int(words[i]) == expected


def test_dropout_keeps_exactly_the_words_at_or_above_the_integer_threshold():
    seed, rate = 77, 0.3
    words = dropout.random_words(1000, seed)
    mask = dropout.keep_mask((10, 100), rate, seed).reshape(-1)
    threshold = round(rate * 2**32)
    assert np.array_equal(mask, words.astype(np.int64) >= threshold)


def test_dropout_key_derived_from_the_seed_counter_is_philox_of_index_and_call():
    rng = np.random.default_rng()
    seed = int(rng.integers(0, 2**63))
    x = rng.standard_normal(1001)
    for index, call in ((0, 0), (3, 17), (2**32 - 1, 2**32 + 5)):
        seed_counter = np.array([index, call], dtype=np.int64)
        c0, c1, _, _ = philox_scalar((index & 0xFFFFFFFF, call & 0xFFFFFFFF, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))
        key = c0 | c1 << 32
        assert dropout.derived_key(seed, seed_counter) == key
        assert np.array_equal(dropout.dropout(x, 0.4, seed, seed_counter), dropout.dropout(x, 0.4, key))


def test_course_inverted_dropout_example():
    """a = [0.5, 0.6, 0.9, 0.3, 0.5], mask [1, 1, 0, 1, 1], keep_prob 0.8 -> [0.625, 0.75, 0, 0.375, 0.625]."""
    a = np.array([0.5, 0.6, 0.9, 0.3, 0.5], dtype=np.float32)
    seed = next(s for s in range(10_000)
                if dropout.keep_mask((5,), 0.2, s).tolist() == [True, True, False, True, True])
    np.testing.assert_allclose(dropout.dropout(a, 0.2, seed), [0.625, 0.75, 0.0, 0.375, 0.625], rtol=1e-7)


def test_dropout_drops_rate_and_keeps_the_mean():
    x = np.full((400, 500), 2.0)
    y = dropout.dropout(x, 0.25, 123)
    assert abs((y == 0).mean() - 0.25) < 0.005
    assert abs(y.mean() - 2.0) < 0.02


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 5), (37, 3), (64, 130)])
def test_batchnorm_forward_and_running_statistics_match_float64(shape, dtype):
    rng = np.random.default_rng()
    x = (rng.normal(size=shape) * 3 + 10).astype(dtype)
    gamma, beta = rng.normal(size=shape[1]).astype(dtype), rng.normal(size=shape[1]).astype(dtype)
    running_mean, running_var = rng.normal(size=shape[1]).astype(dtype), rng.uniform(1, 2, shape[1]).astype(dtype)
    old_mean, old_var = running_mean.astype(np.float64), running_var.astype(np.float64)
    y, mean, rstd = batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.9, 1e-3)
    x64 = x.astype(np.float64)
    mu, var = x64.sum(0) / shape[0], ((x64 - x64.sum(0) / shape[0]) ** 2).sum(0) / shape[0]
    expected = gamma * (x64 - mu) / np.sqrt(var + 1e-3) + beta
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(running_mean, 0.9 * old_mean + 0.1 * mu, rtol=tol, atol=tol)
    np.testing.assert_allclose(running_var, 0.9 * old_var + 0.1 * var, rtol=tol, atol=tol)
    assert y.dtype == dtype and mean.dtype == dtype


def test_course_batchnorm_with_gamma_sqrt_var_and_beta_mu_is_identity():
    x = np.random.default_rng().normal(size=(20, 4)) * 5 + 3
    eps = 1e-3
    gamma, beta = np.sqrt(x.var(0) + eps), x.mean(0)
    y, _, _ = batchnorm.forward_train(x, gamma, beta, np.zeros(4), np.ones(4), 0.99, eps)
    np.testing.assert_allclose(y, x, rtol=1e-12)


@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_backward_matches_two_sided_differences(relu):
    rng = np.random.default_rng()
    x, dy = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    gamma, beta = rng.normal(size=3), rng.normal(size=3)

    def objective(x_, gamma_, beta_):
        y, _, _ = batchnorm.forward_train(x_, gamma_, beta_, np.zeros(3), np.ones(3), 0.9, 1e-3, relu)
        return float((y * dy).sum())

    _, mean, rstd = batchnorm.forward_train(x, gamma, beta, np.zeros(3), np.ones(3), 0.9, 1e-3, relu)
    dx, dgamma, dbeta = batchnorm.backward(dy, x, gamma, beta, mean, rstd, relu)
    for array, analytic in ((x, dx), (gamma, dgamma), (beta, dbeta)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            old = array[index]
            array[index] = old + 1e-6
            plus = objective(x, gamma, beta)
            array[index] = old - 1e-6
            minus = objective(x, gamma, beta)
            array[index] = old
            numeric[index] = (plus - minus) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_course_softmax_example():
    z = np.array([[5.0, 2.0, -1.0, 3.0]])
    np.testing.assert_allclose(softmax_cross_entropy.softmax(z), [[0.84203, 0.04192, 0.00209, 0.11396]], atol=5e-6)
    np.testing.assert_allclose(np.exp(z).sum(), 176.2556, atol=1e-4)


def test_two_class_softmax_is_sigmoid_of_logit_difference():
    z = np.random.default_rng().normal(size=(10, 2)) * 4
    np.testing.assert_allclose(softmax_cross_entropy.softmax(z)[:, 0], 1 / (1 + np.exp(-(z[:, 0] - z[:, 1]))),
                               rtol=1e-12)


@pytest.mark.parametrize("labels_kind", ["int", "one_hot", "soft"])
def test_softmax_cross_entropy_loss_and_gradient_a_minus_y_over_m(labels_kind):
    rng = np.random.default_rng()
    m, c = 9, 6
    z = rng.normal(size=(m, c)) * 30  # large logits: the max-subtraction must hold
    classes = rng.integers(0, c, m)
    soft = rng.dirichlet(np.ones(c), size=m)
    y = {"int": classes, "one_hot": np.eye(c)[classes], "soft": soft}[labels_kind]
    y_dense = np.eye(c)[classes] if labels_kind == "int" else y
    loss, dz = softmax_cross_entropy.softmax_cross_entropy(z, y)
    log_softmax = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    assert loss == pytest.approx(-(y_dense * log_softmax).sum() / m, rel=1e-12)
    np.testing.assert_allclose(dz, (np.exp(log_softmax) - y_dense) / m, rtol=1e-10, atol=1e-15)


def test_softmax_cross_entropy_can_write_the_gradient_over_the_logits():
    z = np.random.default_rng().normal(size=(4, 3))
    expected = softmax_cross_entropy.softmax_cross_entropy(z.copy(), np.array([0, 1, 2, 0]))
    loss, dz = softmax_cross_entropy.softmax_cross_entropy(z, np.array([0, 1, 2, 0]), dlogits=z)
    assert dz is z and loss == expected[0]
    np.testing.assert_array_equal(z, expected[1])


@pytest.mark.parametrize("gradient, ratio", [(1e-6, 1e-6 / (1e-6 + 1e-8)), (0.1, 0.1 / (0.1 + 1e-8))])
def test_course_adam_first_step_size_with_epsilon_outside_the_root(gradient, ratio):
    """First step moves each weight by alpha * g / (|g| + eps): 0.990099 alpha for g = 1e-6."""
    w = np.zeros(5)
    m, v = np.zeros(5), np.zeros(5)
    table, step_counter = optimizer_updates.adam_step_table([0.01], 0, 0.9, 0.999), np.zeros(1, np.int64)
    optimizer_updates.adam(w, np.full(5, gradient), m, v, table, step_counter, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(-w, 0.01 * ratio, rtol=1e-12)
    if gradient == 1e-6:
        assert -w[0] / 0.01 == pytest.approx(0.990099, abs=1e-6)


def assert_equal_to_rounding(actual, expected, *terms):
    """|actual - expected| within a few float64 roundings of the terms summed (a sum that
    cancels to near 0 has no relative accuracy, only this absolute one)."""
    bound = 8 * np.finfo(np.float64).eps * sum(np.abs(term) for term in terms)
    assert np.all(np.abs(np.asarray(actual) - expected) <= bound), (actual, expected)


def test_rmsprop_and_momentum_updates_match_float64_formulas():
    rng = np.random.default_rng()
    g = rng.normal(size=7)
    w, s = rng.normal(size=7), rng.uniform(size=7)
    w0, s0 = w.copy(), s.copy()
    optimizer_updates.rmsprop(w, g, s, np.array([[0.01]]), np.zeros(1, np.int64), 0.9, 1e-8)
    s_expected = 0.9 * s0 + 0.1 * g * g
    np.testing.assert_allclose(s, s_expected, rtol=1e-14)
    step = 0.01 * g / (np.sqrt(s_expected) + 1e-8)
    assert_equal_to_rounding(w, w0 - step, w0, step)
    w, v = w0.copy(), s0.copy()
    optimizer_updates.ema_momentum(w, g, v, np.array([[0.1]]), np.zeros(1, np.int64), 0.9)
    v_expected = 0.9 * s0 + 0.1 * g
    assert_equal_to_rounding(v, v_expected, 0.9 * s0, 0.1 * g)
    assert_equal_to_rounding(w, w0 - 0.1 * v_expected, w0, 0.1 * (0.9 * np.abs(s0) + 0.1 * np.abs(g)))


def test_adam_step_table_rows_are_the_float64_bias_corrected_scalars():
    rates = [0.01, 0.02, 0.005]
    table = optimizer_updates.adam_step_table(rates, 4, 0.9, 0.999, weight_decay=0.1)
    for row, lr, t in zip(table, rates, (5, 6, 7)):
        assert list(row) == [1 - lr * 0.1, lr / (1 - 0.9**t), math.sqrt(1 - 0.999**t)]


def test_update_reads_row_step_mod_rows_of_the_step_table():
    """Step 7 of a 5-row table reads row 2: the table is a ring of the coming steps."""
    rng = np.random.default_rng()
    w, g = rng.normal(size=6), rng.normal(size=6)
    expected = w - 0.3 * g
    optimizer_updates.sgd(w, g, np.array([[np.nan], [np.nan], [0.3], [np.nan], [np.nan]]), np.array([7]))
    np.testing.assert_array_equal(w, expected)


# --- the op list ----------------------------------------------------------------------

@pytest.mark.parametrize("op", kernels.OPS, ids=lambda op: op.name)
def test_every_listed_op_has_a_reference_and_both_gpu_kernels_with_its_signature(op):
    reference = kernels.implementation(op)
    for suffix in ("_triton", "_cupy"):
        assert inspect.signature(kernels.implementation(op, suffix)) == inspect.signature(reference), suffix


def test_the_op_table_is_the_op_list_plus_the_training_dropout_pair():
    table = vars(backend.op_table())
    assert set(table) == {op.name for op in kernels.OPS} | {"dropout_train", "dropout_backward"}
    assert table["batchnorm_forward_train"] is batchnorm.forward_train
    assert table["dropout_train"] is dropout.dropout_train
    assert kernels.MODULES == ("batchnorm", "dropout", "softmax_cross_entropy", "optimizer_updates")
