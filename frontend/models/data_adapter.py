"""What fit/evaluate/predict read: the checks of x, y and sample weights, and where the batches
come from (arrays, a `PyDataset`, or a Python generator), each turned into one iterable of
(x, y, sample_weight) device batches.

    arrays     x, y, sample_weight sliced by `batch_size` (shuffled per epoch by fit)
    PyDataset  len(ds) batches, ds[i] -> (x, y) or (x, y, sample_weight); on_epoch_end()
    generator  next(gen) -> (x, y) or (x, y, sample_weight), `steps` batches per epoch

Data flows one way: the trainer checks x (this module), builds the model for x's shape, then
checks y against the built model's output (this module again), then takes batches. The module
knows nothing of models: the trainer hands it shapes, dtypes and its `check_xy`.
"""

import inspect

import numpy as np

from gpudl import collectives
from gpudl.errors import check_count, check_finite_array, invalid_value

DEFAULT_BATCH_SIZE = 32


# -- one array, or a list of them (a model with several inputs or outputs) --------------------
def first(arrays):
    """The array itself, or the first of a list."""
    return arrays[0] if isinstance(arrays, list) else arrays


def rows(arrays):
    """Samples in an array (or in each array of a list)."""
    return len(first(arrays))


def take(arrays, part):
    """The rows `part` (a slice or indices) of an array, or of each array of a list (None stays None)."""
    if isinstance(arrays, list):
        return [None if a is None else a[part] for a in arrays]
    return None if arrays is None else arrays[part]


def to_device(backend, arrays):
    """An array (or each of a list) on the backend's device."""
    if isinstance(arrays, list):
        return [None if a is None else backend.asarray(a) for a in arrays]
    return None if arrays is None else backend.asarray(arrays)


def to_host(backend, arrays):
    """A device array (or each of a list) as host NumPy."""
    return [backend.to_numpy(a) for a in arrays] if isinstance(arrays, list) else backend.to_numpy(arrays)


def concatenate(batches):
    """Batches of arrays (or of lists of arrays) joined along the batch axis."""
    if isinstance(batches[0], list):
        return [np.concatenate(parts) for parts in zip(*batches)]
    return np.concatenate(batches)


def check_batch_size(batch_size):
    """None -> 32 (Keras's default); otherwise a positive integer."""
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise invalid_value("batch_size", "a positive integer", batch_size)
    return int(batch_size)


def as_array(value, where):
    """np.asarray(value), or an error naming `where` when it is no rectangular array (a ragged
    list: rows of different lengths)."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"Invalid value received for argument `{where}`. Expected an array-like of one shape "
                         f"(N, features...), every row of the same length. Received: {where} that NumPy cannot "
                         f"make one array of ({error})") from None


def converted(array, dtype, where):
    """`array` as a C-contiguous array of `dtype`, refusing finite values that the conversion would
    turn into inf (1e39 in a float32 model), naming the first one's index and the dtype's max."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        result = np.ascontiguousarray(array, dtype=dtype)
    if dtype.kind == "f" and array.dtype.kind == "f" and not np.isfinite(result).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(result))[0])
        raise invalid_value(where, f"values that fit the model's dtype {dtype.name}, at most "
                                   f"{np.finfo(dtype).max:.6g} in magnitude; the value at index {index} would "
                                   f"become inf", array[index].item())
    return result


def check_fits(array, dtype, where):
    """Refuse (as `converted` does) float values of `array` beyond `dtype`'s range, keeping its dtype:
    targets, which the loss casts to the model's dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and array.dtype.kind == "f" and array.dtype.itemsize > dtype.itemsize:
        converted(array, dtype, where)


def check_x(x, feature_shape, dtype, where, owner):
    """Any array-like (NumPy of any layout, a list, a torch CPU tensor) as one C-contiguous
    array of `dtype`, after checking its dtype, its shape against `feature_shape` (the input
    shape without the batch axis, None when not known yet) and its values (finite, and within
    `dtype`'s range). `owner` names the layer and model in the shape error ("Layer 'dense' of
    model 'sequential'")."""
    x = as_array(x, where)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"`{where}` must be a numeric array; received dtype {x.dtype}.")
    if x.ndim == 1 and feature_shape == (1,):  # Keras expands rank-1 x for a (None, 1) input
        x = x.reshape(-1, 1)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"`{where}` must be a non-empty array of shape (N, features...); "
                         f"received shape {x.shape}.")
    if feature_shape is not None and tuple(x.shape[1:]) != tuple(feature_shape):
        raise ValueError(f"{owner} expected `{where}` of shape (None, {', '.join(map(str, feature_shape))}); "
                         f"received shape {x.shape}.")
    check_finite_array(where, x)
    return converted(x, dtype, where)


def check_y(y, rows, where_x, where_y):
    """y as a real numeric array with `rows` samples and finite values (the loss then shapes it)."""
    if y is None:
        raise ValueError(f"`{where_y}` is required: gpudl's losses need targets.")
    y = as_array(y, where_y)
    if y.dtype.kind not in "biuf":  # strings ("1.0"), complex (the imaginary part would be dropped), objects
        raise invalid_value(where_y, "numeric real targets (a float, integer or bool array)",
                            f"an array of dtype {y.dtype}")
    if y.shape[:1] != (rows,):
        raise ValueError(f"`{where_x}` and `{where_y}` must have the same number of samples; "
                         f"received {rows} and {y.shape[0] if y.ndim else 'a scalar'}.")
    check_finite_array(where_y, y)
    return y


def check_sample_weight(sample_weight, n, dtype, where="sample_weight"):
    """None, or a finite non-negative float array of shape (n,) in `dtype`."""
    if sample_weight is None:
        return None
    weights = as_array(sample_weight, where)
    if weights.dtype.kind not in "biuf":
        raise invalid_value(where, "real numbers (a float or integer array)", f"an array of dtype {weights.dtype}")
    weights = weights.astype(np.float64)
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (n,):
        raise ValueError(f"`{where}` must have shape ({n},), one weight per sample; received shape "
                         f"{weights.shape}.")
    check_finite_array(where, weights)
    if (weights < 0).any():
        raise ValueError(f"`{where}` must be non-negative; found {weights.min()} at index "
                         f"{int(np.argmin(weights))}.")
    return converted(weights, dtype, where)


def class_sample_weights(class_weight, y, dtype):
    """Keras's class_weight -> sample_weight: each sample weighs class_weight[its class]."""
    if not isinstance(class_weight, dict):
        raise invalid_value("class_weight", "a dict {class index: weight}", class_weight, "fit")
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.round(y.reshape(len(y))).astype(int)
    missing = sorted(set(np.unique(labels).tolist()) - {int(k) for k in class_weight})
    if missing:
        raise ValueError(f"`class_weight` has no weight for class {missing[0]}, which is present in `y` "
                         f"(classes in y without a weight: {missing}). Give every class a weight.")
    table = {int(k): float(v) for k, v in class_weight.items()}
    return check_sample_weight([table[int(c)] for c in labels], len(labels), dtype, "class_weight")


def sample_weights(sample_weight, class_weight, y, dtype, where="sample_weight"):
    """The per-sample weights of a batch or array: from `class_weight`, else `sample_weight`. With
    several outputs (y a list): None, one array for every output, or a list with one per output."""
    if isinstance(y, list):
        if class_weight is not None:
            raise ValueError(f"`class_weight` is only supported for Models with a single output (this one has "
                             f"{len(y)}); pass `sample_weight` with one array per output instead.")
        if sample_weight is None:
            return None
        if not isinstance(sample_weight, (list, tuple)):
            sample_weight = [sample_weight] * len(y)
        if len(sample_weight) != len(y):
            raise ValueError(f"`{where}` is a list of {len(sample_weight)}, but the model has {len(y)} outputs: give "
                             f"one array (or None) per output.")
        return [check_sample_weight(w, rows(y), dtype, f"{where}[{i}]") for i, w in enumerate(sample_weight)]
    if class_weight is not None:
        return class_sample_weights(class_weight, y, dtype)
    return check_sample_weight(sample_weight, len(y), dtype)


def training_batches(x, y, sample_weight, class_weight, batch_size, steps_per_epoch, check_xy, dtype):
    """fit's batches: ArrayBatches of checked arrays, or SourceBatches of a PyDataset or
    generator (whose batches are checked as they come, with `class_weight`)."""
    if steps_per_epoch is not None:
        steps_per_epoch = check_count("steps_per_epoch", steps_per_epoch, "fit", minimum=1)
    if is_batch_source(x):
        if y is not None:
            raise ValueError("fit: `y` must be None when `x` is a PyDataset or a generator (it yields "
                             "(x, y) batches).")
        return SourceBatches(x, steps_per_epoch, "x", check_xy, class_weight, dtype)
    x, y = check_xy(x, y)
    return ArrayBatches(x, y, sample_weights(sample_weight, class_weight, y, dtype), batch_size, steps_per_epoch)


def evaluation_batches(data, batch_size, steps, where, check_xy, dtype, names=None):
    """Batches for evaluation: ArrayBatches of (x, y[, w]), or SourceBatches of a PyDataset/generator.
    `names`: what errors call x, y and w (default: where[0], where[1], where[2])."""
    if steps is not None:
        steps = check_count("steps", steps, where, minimum=1)
    if is_batch_source(data):
        return SourceBatches(data, steps, where, check_xy, None, dtype)
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise invalid_value(where, "a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)",
                            type(data).__name__, "fit")
    name_x, name_y, name_w = names or (f"{where}[0]", f"{where}[1]", f"{where}[2]")
    x, y = check_xy(data[0], data[1], name_x, name_y)
    weights = sample_weights(data[2] if len(data) == 3 else None, None, y, dtype, name_w)
    return ArrayBatches(x, y, weights, batch_size, steps)


class PyDataset:
    """Keras's batch source: subclass it with `__len__` (batches per epoch) and
    `__getitem__(index)` returning one batch `(x, y)` or `(x, y, sample_weight)`;
    `on_epoch_end()` is called after every epoch (reshuffle there).

    Args:
        workers, use_multiprocessing, max_queue_size: accepted for Keras scripts;
            gpudl reads batches in the training thread.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (number of batches).")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index) -> (x, y).")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_end(self):
        """Called by fit after each epoch."""


def is_batch_source(x):
    """True for a PyDataset (or any object with __len__/__getitem__ batches) or a generator."""
    return isinstance(x, PyDataset) or inspect.isgenerator(x) or (
        hasattr(x, "__next__") and not isinstance(x, np.ndarray))


def split_batch(batch, where):
    """(x, y, sample_weight) from a batch tuple of length 1, 2 or 3."""
    if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 3:
        raise ValueError(f"{where} must yield tuples (x, y) or (x, y, sample_weight); received "
                         f"{type(batch).__name__}{'' if not hasattr(batch, '__len__') else f' of length {len(batch)}'}.")
    x, y, sample_weight = (list(batch) + [None, None])[:3]
    return x, y, sample_weight


class SourceBatches:
    """Batches of a PyDataset or a generator, `steps` per epoch (None: the whole dataset,
    or until the generator is exhausted). With `check_xy`, `batches` checks each one and moves
    it to the device."""

    def __init__(self, source, steps=None, where="x", check_xy=None, class_weight=None, dtype=None):
        self.source, self.where = source, where
        self.check_xy, self.class_weight, self.dtype = check_xy, class_weight, dtype
        self.is_dataset = not (inspect.isgenerator(source) or hasattr(source, "__next__"))
        if steps is not None:
            steps = check_count("steps_per_epoch", steps, minimum=1)
        if self.is_dataset:
            self.steps = len(source) if steps is None else min(int(steps), len(source))
        else:
            self.steps = None if steps is None else int(steps)
        self.exhausted = False

    def epoch(self, order=None):
        """Yield (x, y, sample_weight) for one epoch; `order` permutes a PyDataset's batches."""
        if self.is_dataset:
            indices = range(self.steps) if order is None else order[:self.steps]
            for index in indices:
                yield split_batch(self.source[int(index)], f"{type(self.source).__name__}[{index}]")
            return
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(self.source)
            except StopIteration:
                self.exhausted = True
                return
            yield split_batch(batch, "the generator")
            count += 1

    def batches(self, backend, order=None):
        """One epoch of checked device batches (x, y, w); in a data-parallel run, this process's
        rows of each (see sharded)."""
        def checked():
            for xb, yb, wb in self.epoch(order):
                xb, yb = self.check_xy(xb, yb, f"{self.where} batch x", f"{self.where} batch y")
                yield xb, yb, sample_weights(wb, self.class_weight, yb, self.dtype)
        for xb, yb, wb in sharded(checked()):
            yield to_device(backend, xb), to_device(backend, yb), to_device(backend, wb)

    @property
    def length(self):
        """The samples a shuffle permutes: a PyDataset's batches (None for a generator)."""
        return len(self.source) if self.is_dataset else None

    def end_epoch(self):
        if self.is_dataset:
            self.source.on_epoch_end()


def sharded(batches):
    """Data parallel (gpudl.distribution.DataParallel): each global batch (x, y, w) cut to this
    process's rows, its place set as the current gpudl.collectives.Shard while it is used;
    without a distribution, the batches as they come."""
    if not collectives.active():
        yield from batches
        return
    for xb, yb, wb in batches:
        shard = collectives.shard_of(rows(xb))
        part = slice(shard.first_row, shard.first_row + shard.rows)
        collectives.set_shard(shard)
        yield take(xb, part), take(yb, part), take(wb, part)
    collectives.set_shard(None)


class ArrayBatches:
    """Batches of host arrays x, y and optional per-sample weights w, moved to the device
    once and sliced by `batch_size` in `order` (fit's shuffle)."""

    def __init__(self, x, y, w, batch_size, steps=None):
        self.x, self.y, self.w, self.batch_size, self.max_steps = x, y, w, batch_size, steps
        self.on_device = None  # (x, y, w) uploaded once, at the first epoch

    @property
    def steps(self):
        steps = -(-rows(self.x) // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def split(self, fraction):
        """Keras's validation_split: hand back the last `fraction` of the samples (before any
        shuffling) as (x, y, w) and keep the rest."""
        n = rows(self.x)
        at = int(np.floor(n * (1.0 - fraction)))
        if at == 0 or at == n:
            raise ValueError(f"validation_split={fraction} leaves an empty training or validation set "
                             f"for {n} samples.")
        held_out = (take(self.x, slice(at, None)), take(self.y, slice(at, None)), take(self.w, slice(at, None)))
        self.x, self.y, self.w = take(self.x, slice(at)), take(self.y, slice(at)), take(self.w, slice(at))
        return held_out

    @property
    def length(self):
        """The samples a shuffle permutes."""
        return rows(self.x)

    def batches(self, backend, order=None):
        """Yield device batches (x, y, w) in `order` (None: as stored)."""
        if self.on_device is None:
            self.on_device = (to_device(backend, self.x), to_device(backend, self.y), to_device(backend, self.w))
        x, y, w = self.on_device
        for step in range(self.steps):
            start, stop = step * self.batch_size, min((step + 1) * self.batch_size, rows(self.x))
            shard = collectives.shard_of(stop - start) if collectives.active() else None
            if shard is not None:  # this process's rows of the global batch
                start, stop = start + shard.first_row, start + shard.first_row + shard.rows
            part = slice(start, stop) if order is None else order[start:stop]
            collectives.set_shard(shard)
            yield take(x, part), take(y, part), take(w, part)
        collectives.set_shard(None)

    def end_epoch(self):
        pass
