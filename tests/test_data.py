"""Splits, mini-batches, exponentially weighted averages and image augmentation."""

import numpy as np
import pytest

import gpudl
from gpudl.frontend.data import (
    ExponentialMovingAverage,
    GaussianNoise,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    default_split_fractions,
    gaussian_noise,
    minibatches,
    random_flip,
    random_rotation,
    random_translation,
    rotate,
    train_dev_test_split,
    translate,
)

# -- splits ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 1_000, 9_999])
def test_default_fractions_small_data_is_60_20_20(n):
    assert default_split_fractions(n) == pytest.approx((0.6, 0.2, 0.2), abs=1e-12)


@pytest.mark.parametrize("n", [1_000_000, 5_000_000])
def test_default_fractions_very_large_data_is_98_1_1(n):
    assert default_split_fractions(n) == pytest.approx((0.98, 0.01, 0.01), abs=1e-12)


def test_default_fractions_between_hold_out_10000_examples_each():
    train, dev, test = default_split_fractions(200_000)
    assert dev * 200_000 == pytest.approx(10_000) and test * 200_000 == pytest.approx(10_000)
    assert train == pytest.approx(0.9)


def test_default_fractions_hold_out_share_never_grows_with_n():
    sizes = [10, 9_999, 10_000, 50_000, 50_001, 123_456, 999_999, 1_000_000, 10**8]
    held_out = [default_split_fractions(n)[1] for n in sizes]
    assert all(a >= b for a, b in zip(held_out, held_out[1:]))


def test_split_default_is_60_20_20_and_partitions_the_examples():
    x = np.arange(1000).reshape(500, 2)
    y = np.arange(500)
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = train_dev_test_split(x, y)
    assert (len(y_train), len(y_dev), len(y_test)) == (300, 100, 100)
    assert np.array_equal(np.sort(np.concatenate([y_train, y_dev, y_test])), np.arange(500))
    for x_part, y_part in [(x_train, y_train), (x_dev, y_dev), (x_test, y_test)]:
        assert np.array_equal(x_part[:, 0], 2 * y_part)  # rows stay paired with labels


def test_split_same_seed_same_split_other_seed_other_split():
    x = np.random.default_rng(1).normal(size=(100, 3))
    y = np.arange(100)
    first = train_dev_test_split(x, y, seed=7)
    second = train_dev_test_split(x, y, seed=7)
    other = train_dev_test_split(x, y, seed=8)
    for a, b in zip(first, second):
        assert np.array_equal(a[1], b[1])
    assert not np.array_equal(first[1][1], other[1][1])


def test_split_without_shuffle_keeps_order():
    y = np.arange(10)
    (_, y_train), (_, y_dev), (_, y_test) = train_dev_test_split(y, y, (0.6, 0.2, 0.2), shuffle=False)
    assert list(y_train) == [0, 1, 2, 3, 4, 5] and list(y_dev) == [6, 7] and list(y_test) == [8, 9]


def test_stratified_split_keeps_class_proportions_exactly_when_divisible():
    # 900 of class 0, 100 of class 1: 60/20/20 gives 540/60, 180/20, 180/20
    y = np.array([0] * 900 + [1] * 100)
    x = np.arange(1000)
    parts = train_dev_test_split(x, y, (0.6, 0.2, 0.2), stratify=True, seed=3)
    counts = [(int(np.sum(y_part == 0)), int(np.sum(y_part == 1))) for _, y_part in parts]
    assert counts == [(540, 60), (180, 20), (180, 20)]


def test_stratified_split_with_one_hot_labels_within_one_example():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat([0, 1, 2], [37, 211, 52]))
    y = np.eye(3)[labels]
    parts = train_dev_test_split(np.zeros((300, 4)), y, (0.5, 0.3, 0.2), stratify=True, seed=1)
    for (_, y_part), fraction in zip(parts, (0.5, 0.3, 0.2)):
        counts = y_part.sum(axis=0)
        assert np.all(np.abs(counts - fraction * np.array([37, 211, 52])) <= 1.0)


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.1), (0.6, 0.4, 0.0), (1.0, 0.5, -0.5), (0.5, 0.5)])
def test_split_bad_fractions_raise(fractions):
    with pytest.raises(ValueError, match="argument `fractions`"):
        train_dev_test_split(np.zeros(10), np.zeros(10), fractions)


def test_split_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="argument `y`"):
        train_dev_test_split(np.zeros(10), np.zeros(9))


# -- mini-batches ---------------------------------------------------------------------


def test_minibatches_sizes_keep_last_partial_batch():
    x = np.arange(148).reshape(74, 2)
    y = np.arange(74)
    batches = list(minibatches(x, y, batch_size=16, seed=0))
    assert [len(y_batch) for _, y_batch in batches] == [16, 16, 16, 16, 10]  # 74 = 4 * 16 + 10
    assert np.array_equal(np.sort(np.concatenate([b for _, b in batches])), y)
    for x_batch, y_batch in batches:
        assert np.array_equal(x_batch[:, 0], 2 * y_batch)


def test_minibatches_course_count_5000_steps_per_epoch():
    x = np.zeros((5_000_000, 1), dtype=np.float32)  # 5,000,000 examples in batches of 1,000
    assert sum(1 for _ in minibatches(x, x, batch_size=1000, shuffle=False)) == 5000


def test_minibatches_seeded_and_shuffled():
    y = np.arange(50)
    first = [b for _, b in minibatches(y, y, batch_size=8, seed=4)]
    second = [b for _, b in minibatches(y, y, batch_size=8, seed=4)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(np.concatenate(first), y)
    unshuffled = np.concatenate([b for _, b in minibatches(y, y, batch_size=8, shuffle=False)])
    assert np.array_equal(unshuffled, y)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5])
def test_minibatches_bad_batch_size_raises_at_call(batch_size):
    with pytest.raises(ValueError, match="argument `batch_size`"):
        minibatches(np.zeros(4), np.zeros(4), batch_size=batch_size)


# -- exponentially weighted averages ----------------------------------------------------


def test_ema_course_temperatures_with_bias_correction():
    average = ExponentialMovingAverage(0.98)
    assert average.update(40.0) == pytest.approx(40.0, rel=1e-14)  # corrected v1 = theta1
    v2 = (0.0196 * 40.0 + 0.02 * 49.0) / 0.0396
    assert average.update(49.0) == pytest.approx(v2, rel=1e-14)
    # v3: closed form (1 - b) * sum b**(3 - i) theta_i / (1 - b**3)
    v3 = 0.02 * (0.98**2 * 40 + 0.98 * 49 + 45) / (1 - 0.98**3)
    assert average.update(45.0) == pytest.approx(v3, rel=1e-14)
    assert average.value == pytest.approx(v3, rel=1e-14)


def test_ema_without_bias_correction_starts_near_zero():
    average = ExponentialMovingAverage(0.98, bias_correction=False)
    assert average.update(40.0) == pytest.approx(0.8, rel=1e-14)  # 0.02 * 40
    assert average.update(49.0) == pytest.approx(0.98 * 0.8 + 0.02 * 49, rel=1e-14)


@pytest.mark.parametrize("beta, window", [(0.9, 10), (0.98, 50), (0.5, 2)])
def test_ema_window(beta, window):
    assert ExponentialMovingAverage(beta).window == pytest.approx(window, rel=1e-12)


def test_ema_averages_arrays_elementwise():
    average = ExponentialMovingAverage(0.9)
    average.update(np.array([1.0, 2.0]))
    value = average.update(np.array([3.0, 4.0]))
    expected = (0.9 * 0.1 * np.array([1.0, 2.0]) + 0.1 * np.array([3.0, 4.0])) / (1 - 0.81)
    assert np.allclose(value, expected, rtol=1e-14)


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5])
def test_ema_bad_beta_raises(beta):
    with pytest.raises(ValueError, match="argument `beta`"):
        ExponentialMovingAverage(beta)


# -- augmentation functions -------------------------------------------------------------


def images(n=6, height=5, width=7, channels=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, height, width, channels))


def test_random_flip_gives_image_or_its_mirror_and_both_occur():
    x = images(n=40)
    out = random_flip(x, np.random.default_rng(0))
    mirrored = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    unchanged = [np.array_equal(o, xi) for o, xi in zip(out, x)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert any(mirrored) and any(unchanged)


def test_random_flip_vertical_only_flips_rows():
    x = images(n=40)
    out = random_flip(x, 1, horizontal=False, vertical=True)
    flipped = [np.array_equal(o, xi[::-1]) for o, xi in zip(out, x)]
    assert all(f or np.array_equal(o, xi) for f, o, xi in zip(flipped, out, x)) and any(flipped)


def shifted(image, dy, dx, fill):
    """Reference: content moves dy rows down and dx columns right."""
    height, width = image.shape[:2]
    out = np.full_like(image, fill)
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def test_translate_matches_slicing_reference():
    x = images(n=3)
    out = translate(x, [1, -2, 0], [3, 0, -1], fill=-7.0)
    for o, xi, dy, dx in zip(out, x, [1, -2, 0], [3, 0, -1]):
        assert np.array_equal(o, shifted(xi, dy, dx, -7.0))


def test_random_translation_is_a_whole_pixel_shift_within_the_factor():
    x = images(n=20, height=10, width=10)
    out = random_translation(x, np.random.default_rng(5), height_factor=0.2, width_factor=0.3)
    shifts_seen = set()
    for o, xi in zip(out, x):
        candidates = [(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4)]
        matches = [(dy, dx) for dy, dx in candidates if np.array_equal(o, shifted(xi, dy, dx, 0.0))]
        assert len(matches) == 1  # within +-0.2 * 10 rows and +-0.3 * 10 columns
        shifts_seen.add(matches[0])
    assert len(shifts_seen) > 1


def test_rotate_90_degrees_is_numpy_rot90_counter_clockwise():
    for height in (5, 6):  # odd and even sizes
        x = images(n=2, height=height, width=height)
        out = rotate(x, 90.0)
        assert np.array_equal(out, np.rot90(x, k=1, axes=(1, 2)))
        assert np.array_equal(rotate(x, 180.0), x[:, ::-1, ::-1])
        assert np.array_equal(rotate(x, 0.0), x)


def test_random_rotation_small_angle_keeps_centre_and_zero_is_identity():
    x = images(n=8, height=9, width=9)
    assert np.array_equal(random_rotation(x, 0, max_degrees=0), x)
    out = random_rotation(x, np.random.default_rng(2), max_degrees=15, fill=0.0)
    assert np.array_equal(out[:, 4, 4], x[:, 4, 4])  # the centre pixel does not move
    assert not np.array_equal(out, x)


def test_gaussian_noise_has_the_requested_spread():
    x = np.full((50, 8, 8, 3), 2.0, dtype=np.float32)
    out = gaussian_noise(x, np.random.default_rng(0), stddev=0.5)
    noise = (out - x).astype(np.float64)
    assert out.dtype == np.float32
    assert abs(noise.mean()) < 0.02  # 9600 draws: standard error 0.5 / sqrt(9600) = 0.005
    assert noise.std() == pytest.approx(0.5, rel=0.03)


@pytest.mark.parametrize(
    "augment",
    [
        lambda x: random_flip(x, 0),
        lambda x: random_translation(x, 0, 0.1, 0.1),
        lambda x: random_rotation(x, 0, 10),
        lambda x: translate(x, 1, 1),
        lambda x: rotate(x, 10),
    ],
)
def test_augmentations_reject_arrays_that_are_not_nhwc(augment):
    with pytest.raises(ValueError, match=r"argument `images`.*\(N, H, W, C\)"):
        augment(np.zeros((4, 5, 5)))


def test_bad_factors_raise_naming_the_argument():
    with pytest.raises(ValueError, match="argument `height_factor`"):
        random_translation(images(), 0, height_factor=1.5, width_factor=0.1)
    with pytest.raises(ValueError, match="argument `max_degrees`"):
        random_rotation(images(), 0, max_degrees=-5)
    with pytest.raises(ValueError, match="argument `stddev`"):
        gaussian_noise(images(), 0, stddev=-1.0)


# -- augmentation layers ----------------------------------------------------------------

LAYERS = [
    lambda: RandomFlip(seed=1),
    lambda: RandomTranslation(0.3, 0.3, seed=2),
    lambda: RandomRotation(0.1, seed=3),
]


def test_data_gaussian_noise_is_the_layer_with_the_requested_spread_and_counter_based_noise():
    assert GaussianNoise is gpudl.layers.GaussianNoise
    x = np.full((50, 8, 8, 3), 2.0, dtype=np.float32)
    layer = GaussianNoise(0.5, seed=0)
    assert layer.forward(x, training=False) is x  # no noise at inference
    first = layer.forward(x, training=True)
    noise = (first - x).astype(np.float64)
    assert first.dtype == np.float32
    assert abs(noise.mean()) < 0.02  # 9600 draws: standard error 0.5 / sqrt(9600) = 0.005
    assert noise.std() == pytest.approx(0.5, rel=0.03)
    # the noise of training call c is a pure function of (seed, c): a new layer with the same
    # seed draws the same first noise; the layer's second call draws other noise
    assert np.array_equal(GaussianNoise(0.5, seed=0).forward(x, training=True), first)
    assert not np.array_equal(layer.forward(x, training=True), first)


@pytest.mark.parametrize("make", LAYERS + [lambda: GaussianNoise(0.1, seed=4)])
def test_augmentation_layers_are_identity_at_inference(make):
    layer = make()
    x = images()
    assert layer.forward(x, training=False) is x
    assert layer.backward(x) is x


@pytest.mark.parametrize("make", LAYERS + [lambda: GaussianNoise(0.1, seed=4)])
def test_augmentation_layers_change_inputs_when_training(make):
    x = images(n=16)
    y = make().forward(x, training=True)
    assert y.shape == x.shape and not np.array_equal(y, x)


@pytest.mark.parametrize("make", LAYERS + [lambda: GaussianNoise(0.1, seed=4)])
def test_augmentation_layer_backward_is_the_adjoint_of_forward(make):
    # for y = A x (A the drawn transform, or x + noise with gradient dy): <dy, A x> = <A^T dy, x>
    layer = make()
    x = images(n=8)
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(9).normal(size=y.shape)
    dx = layer.backward(dy)
    if isinstance(layer, GaussianNoise):
        assert dx is dy
    else:
        assert np.sum(dy * y) == pytest.approx(np.sum(dx * x), rel=1e-12)


def test_same_seed_same_augmentation():
    x = images(n=8)
    first = RandomRotation(0.1, seed=11).forward(x, training=True)
    second = RandomRotation(0.1, seed=11).forward(x, training=True)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("make", LAYERS + [lambda: GaussianNoise(0.1, seed=4)])
def test_augmentation_layer_config_rebuilds_the_layer(make):
    layer = make()
    config = layer.get_config()
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config
    x = images()
    assert np.array_equal(rebuilt.forward(x, training=True), make().forward(x, training=True))


@pytest.mark.parametrize("make", LAYERS)
def test_augmentation_layers_reject_wrong_rank(make):
    with pytest.raises(ValueError, match=r"argument `x`.*\(N, H, W, C\)"):
        make().forward(np.zeros((4, 10)), training=True)


def test_augmentation_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match="argument `mode`"):
        RandomFlip(mode="diagonal")
    with pytest.raises(ValueError, match="argument `factor`"):
        RandomRotation(0.9)
    with pytest.raises(ValueError, match="argument `width_factor`"):
        RandomTranslation(0.1, -0.1)
    with pytest.raises(ValueError, match="argument `stddev`"):
        GaussianNoise(-0.5)
