"""Initializers and regularizers with Keras 3's names, arguments and formulas: each
distribution checked by its moments and by a Kolmogorov-Smirnov test against the named
scipy.stats distribution; seeds reproduce; configs are Keras dicts."""

import math

import numpy as np
import pytest
from scipy import stats

import gpudl
from gpudl.frontend import initializers, regularizers

SHAPE = (200, 150)  # fan_in 200, fan_out 150: 30,000 draws
FAN_IN, FAN_OUT = SHAPE
TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) cut at +-2


def ks_pvalue(values, distribution):
    return stats.kstest(np.ravel(values).astype(np.float64), distribution.cdf).pvalue


@pytest.mark.parametrize("mode, fan", [("fan_in", FAN_IN), ("fan_out", FAN_OUT), ("fan_avg", (FAN_IN + FAN_OUT) / 2)])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_draws_the_named_distribution(distribution, mode, fan):
    scale = 2.0
    variance = scale / fan
    values = initializers.VarianceScaling(scale, mode, distribution, seed=11)(SHAPE, "float64")
    named = {
        "truncated_normal": stats.truncnorm(-2, 2, scale=math.sqrt(variance) / TRUNCATED_STD),
        "untruncated_normal": stats.norm(scale=math.sqrt(variance)),
        "uniform": stats.uniform(-math.sqrt(3 * variance), 2 * math.sqrt(3 * variance)),
    }
    assert values.shape == SHAPE and values.dtype == np.float64
    assert abs(values.mean()) < 4 * math.sqrt(variance / values.size)
    assert values.var() == pytest.approx(variance, rel=0.02)  # every distribution has the stated variance
    assert ks_pvalue(values, named[distribution]) > 1e-3
    others = [name for name in named if name != distribution]
    assert all(ks_pvalue(values, named[other]) < 1e-6 for other in others)  # the test tells them apart


def test_truncated_normal_is_cut_at_two_standard_deviations():
    stddev = math.sqrt(2.0 / FAN_IN) / TRUNCATED_STD
    he = initializers.HeNormal(seed=3)(SHAPE, "float64")
    assert np.abs(he).max() <= 2 * stddev and np.abs(he).max() > 1.99 * stddev
    plain = initializers.TruncatedNormal(mean=1.0, stddev=0.1, seed=3)(SHAPE, "float64")
    assert plain.min() >= 0.8 and plain.max() <= 1.2
    assert ks_pvalue(plain, stats.truncnorm(-2, 2, loc=1.0, scale=0.1)) > 1e-3


def test_course_he_initialization_is_untruncated_variance_scaling():
    """Course: W = randn(n, n_prev) * sqrt(2 / n_prev); Keras kernels are (n_prev, n)."""
    course_he = initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=5)
    expected = np.random.default_rng(5).standard_normal(SHAPE) * math.sqrt(2.0 / FAN_IN)
    np.testing.assert_allclose(course_he(SHAPE, "float64"), expected, rtol=1e-15)
    assert initializers.get("he_normal").distribution == "truncated_normal"


def test_variance_scaling_refuses_unknown_distribution_and_mode():
    with pytest.raises(ValueError, match="Invalid value received for argument `distribution`. Expected one of "
                                         "truncated_normal, untruncated_normal, uniform. Received: distribution='gauss'"):
        initializers.VarianceScaling(2.0, "fan_in", "gauss")
    with pytest.raises(ValueError, match="argument `mode`"):
        initializers.VarianceScaling(2.0, "fan_sum")
    with pytest.raises(ValueError, match="argument `scale`"):
        initializers.VarianceScaling(0.0)
    assert initializers.VarianceScaling(distribution="normal").distribution == "truncated_normal"  # Keras's alias


@pytest.mark.parametrize("name, scale, mode, distribution", [
    ("he_normal", 2.0, "fan_in", "truncated_normal"), ("he_uniform", 2.0, "fan_in", "uniform"),
    ("glorot_normal", 1.0, "fan_avg", "truncated_normal"), ("glorot_uniform", 1.0, "fan_avg", "uniform"),
    ("lecun_normal", 1.0, "fan_in", "truncated_normal"), ("lecun_uniform", 1.0, "fan_in", "uniform"),
])
def test_named_variance_scaling_initializers(name, scale, mode, distribution):
    init = initializers.get(name)
    assert (init.scale, init.mode, init.distribution) == (scale, mode, distribution)
    assert type(init) is type(initializers.get(type(init).__name__))  # "HeNormal" and "he_normal"


def test_random_normal_uniform_and_lecun_uniform_limits():
    normal = initializers.get("normal")  # Keras's alias: RandomNormal(0, 0.05)
    values = normal(SHAPE, "float64")
    assert ks_pvalue(values, stats.norm(scale=0.05)) > 1e-3
    uniform = initializers.RandomUniform(-0.2, 0.6, seed=1)(SHAPE, "float64")
    assert ks_pvalue(uniform, stats.uniform(-0.2, 0.8)) > 1e-3
    lecun = initializers.LecunUniform(seed=1)(SHAPE, "float64")
    limit = math.sqrt(3.0 / FAN_IN)
    assert -limit <= lecun.min() < -0.99 * limit and 0.99 * limit < lecun.max() <= limit


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 3, 5)])
def test_orthogonal_has_orthonormal_rows_or_columns_times_gain(shape):
    q = initializers.Orthogonal(gain=2.0, seed=4)(shape, "float64")
    flat = q.reshape(-1, shape[-1])
    small = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(small, 4.0 * np.eye(min(flat.shape)), atol=1e-12)
    with pytest.raises(ValueError, match="at least two-dimensional"):
        initializers.get("orthogonal")((5,))


def test_identity_constant_zeros_ones():
    np.testing.assert_array_equal(initializers.get("identity")((2, 3)), np.eye(2, 3, dtype=np.float32))
    np.testing.assert_array_equal(initializers.Identity(gain=3.0)((3, 3), "float64"), 3.0 * np.eye(3))
    with pytest.raises(ValueError, match="only be used for 2D matrices"):
        initializers.Identity()((2, 2, 2))
    np.testing.assert_array_equal(initializers.get("constant")((2,)), [0.0, 0.0])
    np.testing.assert_array_equal(initializers.Constant(0.7)((2, 2), "float64"), np.full((2, 2), 0.7))
    assert initializers.get("zeros")(3).tolist() == [0.0] * 3 and initializers.get("ones")((1, 2)).tolist() == [[1, 1]]


def test_call_takes_keras_shape_and_dtype_none_is_floatx():
    init = initializers.GlorotUniform(seed=1)
    assert init((3, 2)).dtype == np.float32 and init((3, 2), dtype=None).dtype == np.float32
    assert init((3, 2), "float64").dtype == np.float64


def test_seeded_initializer_repeats_and_unseeded_follows_set_random_seed():
    for cls in (initializers.RandomNormal, initializers.TruncatedNormal, initializers.RandomUniform,
                initializers.HeNormal, initializers.Orthogonal):
        np.testing.assert_array_equal(cls(seed=42)((5, 5)), cls(seed=42)((5, 5)))
        assert not np.array_equal(cls(seed=42)((5, 5)), cls(seed=43)((5, 5)))
    gpudl.utils.set_random_seed(7)
    first = [initializers.HeNormal()((4, 3)), gpudl.layers.Dense(3)(np.ones((1, 4)))]
    gpudl.utils.set_random_seed(7)
    second = [initializers.HeNormal()((4, 3)), gpudl.layers.Dense(3)(np.ones((1, 4)))]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="argument `seed`"):
        initializers.RandomNormal(seed="7")


def test_unknown_initializer_lists_the_known():
    with pytest.raises(ValueError, match="Unknown initializer: 'he'. Known initializers: .*he_normal.*variance_scaling"):
        initializers.get("he")


@pytest.mark.parametrize("init", [
    initializers.VarianceScaling(0.5, "fan_out", "untruncated_normal", seed=3), initializers.Orthogonal(1.5, seed=2),
    initializers.Constant(0.25), initializers.Identity(2.0), initializers.TruncatedNormal(0.1, 0.2, seed=1),
    initializers.RandomUniform(-1, 1), initializers.HeUniform(seed=9), initializers.Zeros(),
])
def test_initializer_serializes_as_a_keras_dict_and_back(init):
    config = initializers.serialize(init)
    assert set(config) == {"module", "class_name", "config", "registered_name"} and config["module"] == "keras.initializers"
    twin = initializers.deserialize(config)
    assert type(twin) is type(init) and twin.get_config() == init.get_config()
    assert type(initializers.get(config)) is type(init)


def test_regularizer_aliases_use_keras_default_factors():
    w = np.random.default_rng(0).normal(size=(4, 3))
    assert regularizers.l1()(w) == pytest.approx(0.01 * np.abs(w).sum(), rel=1e-12)
    assert regularizers.l2()(w) == pytest.approx(0.01 * (w ** 2).sum(), rel=1e-12)
    both = regularizers.l1_l2(l1=0.1, l2=0.2)
    assert both(w) == pytest.approx(0.1 * np.abs(w).sum() + 0.2 * (w ** 2).sum(), rel=1e-12)
    np.testing.assert_allclose(both.gradient(w), 0.1 * np.sign(w) + 0.4 * w, rtol=1e-14)
    assert regularizers.l1_l2().get_config() == {"l1": 0.0, "l2": 0.0}  # Keras's L1L2 defaults
    assert regularizers.serialize(regularizers.L2(0.1)) == {"module": "keras.regularizers", "class_name": "L2",
                                                            "config": {"l2": 0.1}, "registered_name": None}
    assert isinstance(regularizers.get("L1L2"), regularizers.L1L2)
    with pytest.raises(ValueError, match="Invalid value received for argument `l2`"):
        regularizers.L2(-1.0)
