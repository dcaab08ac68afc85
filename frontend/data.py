"""Data: train/dev/test splits, mini-batches, exponentially weighted averages, augmentation.

Arrays are (batch, ...) as in Keras: x is (m, features) or (m, H, W, C) images,
y is (m,) integer labels or (m, C) one-hot rows.
"""

import math

import numpy as np

from gpudl.errors import check_rate, invalid_value
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.gaussian_noise import GaussianNoise  # noqa: F401  (gpudl.data.GaussianNoise is the layer)

# -- splitting and batching ---------------------------------------------------------


def _invalid(argument, expected, received):
    """invalid_value's message shape, for a received value described in words (not a repr)."""
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {received}"
    )


def _check_examples(x, y):
    """x and y as arrays with the same number of examples along axis 0."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0:
        raise invalid_value("x", "an array of examples along axis 0", x)
    if y.ndim == 0 or len(y) != len(x):
        raise _invalid("y", f"an array with len(x) = {len(x)} rows", f"an array of shape {y.shape}")
    return x, y


def default_split_fractions(n):
    """(train, dev, test) fractions for n examples, from the course's size rule.

    dev = test = min(20%, max(1%, 10,000 / n)) of the examples:
        n <= 50,000             60 / 20 / 20  (the course: small data, under ~10,000 examples)
        50,000 to 1,000,000     10,000 examples each for dev and test, the rest for training
        n >= 1,000,000          98 / 1 / 1    (the course: very large data)
    The rule is continuous: 10,000 examples are 20% of 50,000 and 1% of 1,000,000.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise invalid_value("n", "a positive number of examples", n)
    held_out = min(0.20, max(0.01, 10_000 / n))
    return (1.0 - 2.0 * held_out, held_out, held_out)


def _check_fractions(fractions):
    fractions = tuple(fractions)
    if (
        len(fractions) != 3
        or not all(isinstance(f, (int, float, np.floating)) and 0.0 < f < 1.0 for f in fractions)
        or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9)
    ):
        expected = "three fractions (train, dev, test), each in (0, 1), summing to 1"
        raise invalid_value("fractions", expected, fractions)
    return tuple(float(f) for f in fractions)


def _class_labels(y):
    """Integer class of each example: y itself for labels, the argmax of one-hot rows."""
    if y.ndim == 1:
        return y
    if y.ndim == 2:
        return y[:, 0] if y.shape[1] == 1 else np.argmax(y, axis=1)
    expected = "integer labels (N,) or one-hot rows (N, C) to stratify"
    raise _invalid("y", expected, f"an array of shape {y.shape}")


def train_dev_test_split(x, y, fractions=None, stratify=False, shuffle=True, seed=0):
    """Split (x, y) into train, dev and test sets.

    Counts: dev = round(f_dev * m), test = round(f_test * m), train = the rest.
    With stratify=True each part keeps the class proportions of y (to within one
    example per class): each class, in shuffled order, is spread over the parts in
    the ratio of `fractions`.

    Args:
        x, y: arrays with the same number m of examples along axis 0.
        fractions: (train, dev, test), each in (0, 1), summing to 1;
            None for `default_split_fractions(m)`.
        stratify: keep class proportions; y holds integer labels or one-hot rows.
        shuffle: shuffle before splitting (dev and test then come from the same
            distribution as train); each part comes out in random order.
        seed: the same seed gives the same split.

    Returns:
        ((x_train, y_train), (x_dev, y_dev), (x_test, y_test))
    """
    x, y = _check_examples(x, y)
    m = len(x)
    fractions = default_split_fractions(m) if fractions is None else _check_fractions(fractions)
    dev_count, test_count = round(fractions[1] * m), round(fractions[2] * m)
    train_count = m - dev_count - test_count
    if min(train_count, dev_count, test_count) < 1:
        expected = f"enough examples for a non-empty part at each of the fractions {fractions}"
        raise _invalid("x", expected, f"{m} examples")

    rng = np.random.default_rng(seed)
    order = rng.permutation(m) if shuffle else np.arange(m)
    if stratify:
        # Place the j-th of the n_c examples of class c at position (j + 0.5) / n_c in
        # [0, 1] and sort: every stretch of the sorted order holds each class in proportion.
        labels = _class_labels(y)[order]
        position = np.empty(m)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            position[members] = (np.arange(len(members)) + 0.5) / len(members)
        order = order[np.argsort(position, kind="stable")]
    parts = np.split(order, [train_count, train_count + dev_count])
    if shuffle:
        parts = [rng.permutation(part) for part in parts]
    return tuple((x[part], y[part]) for part in parts)


def minibatches(x, y, batch_size=64, shuffle=True, seed=0):
    """Yield (x_batch, y_batch): the course's random_mini_batches.

    Shuffle the m examples (x and y alike), then cut them into floor(m / batch_size)
    full batches and, when batch_size does not divide m, a last batch of the
    m % batch_size remaining examples. Pass a different seed each epoch for a new order.

    Args:
        x, y: arrays with the same number m of examples along axis 0.
        batch_size: a positive integer (the course: a power of two, 64 to 512;
            the whole set up to about 2,000 examples).
        shuffle: shuffle before cutting; False keeps the original order.
        seed: seed of the shuffle; the same seed gives the same batches.
    """
    x, y = _check_examples(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise invalid_value("batch_size", "a positive integer", batch_size)
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else np.arange(len(x))
    batches = np.split(order, range(batch_size, len(x), batch_size))
    return ((x[batch], y[batch]) for batch in batches)


# -- exponentially weighted averages ------------------------------------------------


class ExponentialMovingAverage:
    """v_t = beta * v_{t-1} + (1 - beta) * theta_t, v_0 = 0; with bias correction
    the value is v_t / (1 - beta**t), so the first values are not pulled towards 0.

    It averages over about window = 1 / (1 - beta) values (0.9: 10, 0.98: 50, 0.5: 2).
    theta may be a number or an array (averaged elementwise).

    Args:
        beta: in [0, 1).
        bias_correction: divide by 1 - beta**t.
    """

    def __init__(self, beta, bias_correction=True):
        self.beta = check_rate("beta", beta)
        self.bias_correction = bool(bias_correction)
        self.biased_value = 0.0  # v_t
        self.step = 0  # t, the number of updates

    @property
    def window(self):
        return 1.0 / (1.0 - self.beta)

    @property
    def value(self):
        """The current average: v_t / (1 - beta**t) with bias correction, else v_t (0 before any update)."""
        if self.bias_correction and self.step > 0:
            return self.biased_value / (1.0 - self.beta**self.step)
        return self.biased_value

    def update(self, theta):
        """Fold in theta_t and return the current value."""
        self.step += 1
        self.biased_value = self.beta * self.biased_value + (1.0 - self.beta) * theta
        return self.value


# -- image augmentation -------------------------------------------------------------
# Each geometric augmentation is a gather: output pixel (n, r, c) reads the input pixel
# (n, rows[n, r, c], cols[n, r, c]) of a "source map", or `fill` where that lies outside.


def _check_images(images, argument):
    images = np.asarray(images)
    if images.ndim != 4:
        raise _invalid(argument, "a 4-D array of shape (N, H, W, C)", f"an array of shape {images.shape}")
    return images


def _check_factor(argument, value, upper):
    """A number in [0, upper], as a float."""
    expected = "a number >= 0" if upper == math.inf else f"a number in [0, {upper}]"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise invalid_value(argument, expected, value)
    if not 0.0 <= value <= upper:
        raise invalid_value(argument, expected, value)
    return float(value)


def _sample(images, rows, cols, fill):
    """out[n, r, c] = images[n, rows[n, r, c], cols[n, r, c]], or fill outside the image."""
    n, height, width, _ = images.shape
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    batch = np.arange(n)[:, None, None]
    out = images[batch, np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)]
    out[~inside] = fill
    return out


def _sample_backward(dy, rows, cols):
    """The adjoint of _sample: each output gradient is added to the pixel it was read from."""
    n, height, width, _ = dy.shape
    batch, rows, cols = np.broadcast_arrays(np.arange(n)[:, None, None], rows, cols)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    dx = np.zeros_like(dy)
    np.add.at(dx, (batch[inside], rows[inside], cols[inside]), dy[inside])
    return dx


def _grid(shape):
    """Row and column index of each output pixel, shaped to broadcast to (N, H, W)."""
    return np.arange(shape[1])[None, :, None], np.arange(shape[2])[None, None, :]


def _flip_source(shape, flip_rows, flip_cols):
    rows, cols = _grid(shape)
    rows = np.where(flip_rows[:, None, None], shape[1] - 1 - rows, rows)
    cols = np.where(flip_cols[:, None, None], shape[2] - 1 - cols, cols)
    return rows, cols


def _shift_source(shape, row_shifts, col_shifts):
    rows, cols = _grid(shape)
    return rows - row_shifts[:, None, None], cols - col_shifts[:, None, None]


def _rotation_source(shape, degrees):
    """Nearest source pixel of a counter-clockwise rotation by `degrees` about the centre:
    (x_src, y_src) = (x cos(a) - y sin(a), x sin(a) + y cos(a)), y pointing down the rows."""
    rows, cols = _grid(shape)
    y, x = rows - (shape[1] - 1) / 2, cols - (shape[2] - 1) / 2
    angle = np.deg2rad(degrees)[:, None, None]
    source_x = x * np.cos(angle) - y * np.sin(angle)
    source_y = x * np.sin(angle) + y * np.cos(angle)
    source_rows = np.rint(source_y + (shape[1] - 1) / 2).astype(np.int64)
    source_cols = np.rint(source_x + (shape[2] - 1) / 2).astype(np.int64)
    return source_rows, source_cols


def _per_image(argument, values, n, integer):
    values = np.asarray(values)
    kinds = "iu" if integer else "iuf"
    if values.dtype.kind not in kinds or values.ndim > 1 or values.size not in (1, n):
        kind = "integers" if integer else "numbers"
        raise invalid_value(argument, f"{kind}: one for all {n} images or one per image", values)
    return np.broadcast_to(values.ravel(), (n,))


def translate(images, row_shifts, col_shifts, fill=0.0):
    """out[n, r, c] = images[n, r - row_shifts[n], c - col_shifts[n]], `fill` where that is outside.

    Positive row_shifts move the content down, positive col_shifts to the right.
    Shifts are integers, one for all images or one per image.
    """
    images = _check_images(images, "images")
    row_shifts = _per_image("row_shifts", row_shifts, len(images), integer=True)
    col_shifts = _per_image("col_shifts", col_shifts, len(images), integer=True)
    return _sample(images, *_shift_source(images.shape, row_shifts, col_shifts), fill)


def rotate(images, degrees, fill=0.0):
    """Rotate each image counter-clockwise by `degrees` about its centre (nearest pixel),
    `fill` where the source lies outside. degrees: one for all images or one per image."""
    images = _check_images(images, "images")
    degrees = _per_image("degrees", degrees, len(images), integer=False)
    return _sample(images, *_rotation_source(images.shape, degrees), fill)


def _random_flip_source(shape, rng, horizontal, vertical):
    flip_cols = (rng.random(shape[0]) < 0.5) & bool(horizontal)
    flip_rows = (rng.random(shape[0]) < 0.5) & bool(vertical)
    return _flip_source(shape, flip_rows, flip_cols)


def _random_shift_source(shape, rng, height_factor, width_factor):
    row_shifts = np.rint(rng.uniform(-height_factor, height_factor, shape[0]) * shape[1]).astype(np.int64)
    col_shifts = np.rint(rng.uniform(-width_factor, width_factor, shape[0]) * shape[2]).astype(np.int64)
    return _shift_source(shape, row_shifts, col_shifts)


def _random_rotation_source(shape, rng, max_degrees):
    return _rotation_source(shape, rng.uniform(-max_degrees, max_degrees, shape[0]))


def random_flip(images, rng, horizontal=True, vertical=False):
    """Flip each image left-right with probability 1/2 (if horizontal) and, independently,
    upside down with probability 1/2 (if vertical). rng: a numpy Generator or a seed."""
    images = _check_images(images, "images")
    source = _random_flip_source(images.shape, np.random.default_rng(rng), horizontal, vertical)
    return _sample(images, *source, 0)


def random_translation(images, rng, height_factor, width_factor, fill=0.0):
    """Shift each image by whole pixels: rows by round(u * H), u ~ U[-height_factor, height_factor],
    columns by round(v * W), v ~ U[-width_factor, width_factor]; `fill` the uncovered pixels."""
    images = _check_images(images, "images")
    height_factor = _check_factor("height_factor", height_factor, 1)
    width_factor = _check_factor("width_factor", width_factor, 1)
    source = _random_shift_source(images.shape, np.random.default_rng(rng), height_factor, width_factor)
    return _sample(images, *source, fill)


def random_rotation(images, rng, max_degrees, fill=0.0):
    """Rotate each image by an angle ~ U[-max_degrees, max_degrees] (counter-clockwise when
    positive) about its centre, nearest pixel; `fill` where the source lies outside."""
    images = _check_images(images, "images")
    max_degrees = _check_factor("max_degrees", max_degrees, 180)
    source = _random_rotation_source(images.shape, np.random.default_rng(rng), max_degrees)
    return _sample(images, *source, fill)


def gaussian_noise(images, rng, stddev):
    """images + noise, noise ~ N(0, stddev**2) drawn for every element (any shape)."""
    images = np.asarray(images)
    stddev = _check_factor("stddev", stddev, math.inf)
    noise_dtype = images.dtype if images.dtype.kind == "f" else np.float32
    return images + np.random.default_rng(rng).normal(0.0, stddev, images.shape).astype(noise_dtype)


# -- augmentation layers --------------------------------------------------------------


def _to_host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


class _GeometricAugmentation(Layer):
    """A random gather at training time, the identity at inference; no parameters.

    The augmentation runs in NumPy on the host. backward(dy) is the exact adjoint
    of the last forward (each gradient goes back to the pixel it was read from),
    so the layer may sit anywhere, though it belongs at the input.
    """

    fill_value = 0.0

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.source = None  # the source map of the last training forward

    def draw_source(self, shape):
        raise NotImplementedError

    def forward(self, x, training=False):
        if getattr(x, "ndim", None) != 4:
            _check_images(_to_host(x), "x")
        self.source = None
        if not training:
            return x
        images = _to_host(x)
        self.source = self.draw_source(images.shape)
        return self.xp.asarray(_sample(images, *self.source, self.fill_value))

    def backward(self, dy):
        if self.source is None:
            return dy
        return self.xp.asarray(_sample_backward(_to_host(dy), *self.source))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(_GeometricAugmentation):
    """Randomly flips images during training (Keras RandomFlip); identity at inference.

    Args:
        mode: "horizontal" (left-right), "vertical" (upside down) or
            "horizontal_and_vertical" (each independently, Keras's default).
        seed: seed of the layer's numpy Generator.

    Call arguments:
        x: images (N, H, W, C).
        training: flip only when True.
    """

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        if mode not in self.MODES:
            raise invalid_value("mode", f"one of {self.MODES}", mode)
        super().__init__(seed=seed, **kwargs)
        self.mode = mode

    def draw_source(self, shape):
        return _random_flip_source(shape, self.rng, "horizontal" in self.mode, "vertical" in self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class RandomTranslation(_GeometricAugmentation):
    """Randomly shifts images by whole pixels during training (Keras RandomTranslation,
    constant fill only); identity at inference. Each image moves round(u * H) rows,
    u ~ U[-height_factor, height_factor], and round(v * W) columns, v ~ U[-width_factor, width_factor].

    Args:
        height_factor, width_factor: fractions of the height and width, in [0, 1].
        fill_value: value of the uncovered pixels.
        seed: seed of the layer's numpy Generator.

    Call arguments:
        x: images (N, H, W, C).
        training: shift only when True.
    """

    def __init__(self, height_factor, width_factor, fill_value=0.0, seed=None, **kwargs):
        self.height_factor = _check_factor("height_factor", height_factor, 1)
        self.width_factor = _check_factor("width_factor", width_factor, 1)
        super().__init__(seed=seed, **kwargs)
        self.fill_value = float(fill_value)

    def draw_source(self, shape):
        return _random_shift_source(shape, self.rng, self.height_factor, self.width_factor)

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": self.height_factor,
            "width_factor": self.width_factor,
            "fill_value": self.fill_value,
        }


class RandomRotation(_GeometricAugmentation):
    """Randomly rotates images about their centre during training (Keras RandomRotation,
    nearest pixel, constant fill); identity at inference. As in Keras, `factor` is a
    fraction of a full turn: the angle is ~ U[-factor * 360, factor * 360] degrees
    (factor=0.05: up to 18 degrees), counter-clockwise when positive.

    Args:
        factor: in [0, 0.5].
        fill_value: value of pixels whose source lies outside the image.
        seed: seed of the layer's numpy Generator.

    Call arguments:
        x: images (N, H, W, C).
        training: rotate only when True.
    """

    def __init__(self, factor, fill_value=0.0, seed=None, **kwargs):
        self.factor = _check_factor("factor", factor, 0.5)
        super().__init__(seed=seed, **kwargs)
        self.fill_value = float(fill_value)

    def draw_source(self, shape):
        return _random_rotation_source(shape, self.rng, self.factor * 360.0)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "fill_value": self.fill_value}
