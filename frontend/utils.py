"""gpudl.utils, as keras.utils: set_random_seed, to_categorical, normalize, PyDataset,
split_dataset, Progbar, and the serialization helpers of gpudl.saving."""

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend.callbacks import Progbar
from gpudl.frontend.models.data_adapter import PyDataset
from gpudl.random import set_random_seed
from gpudl.saving import (CustomObjectScope, custom_object_scope, deserialize_keras_object, get_custom_objects,
                          register_keras_serializable, serialize_keras_object)


def to_categorical(x, num_classes=None):
    """One-hot rows of integer labels: to_categorical([0, 2], 3) = [[1, 0, 0], [0, 0, 1]]
    (float64, as Keras; a trailing axis of 1 is dropped first)."""
    labels = np.asarray(x)
    if labels.dtype.kind == "f" and np.any(labels != np.round(labels)):
        raise ValueError(f"to_categorical takes integer class labels; received non-integer values in {labels.dtype}.")
    labels = labels.astype(np.int64)
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    labels = labels.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical takes labels >= 0; received {labels.min()}.")
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.size and labels.max() >= classes:
        raise ValueError(f"to_categorical: label {labels.max()} is out of range for num_classes={classes}.")
    one_hot = np.zeros((labels.size, classes))
    one_hot[np.arange(labels.size), labels] = 1
    return one_hot.reshape(shape + (classes,))


def normalize(x, axis=-1, order=2):
    """x / ||x||_order along `axis` (rows of norm 0 are left as they are)."""
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split arrays (or a tuple of arrays of the same length) in two: sizes are fractions in
    (0, 1) or sample counts; the left part defaults to the rest of the right one. Returns
    (left, right) in the input's form (Keras returns tf.data Datasets; gpudl returns arrays)."""
    arrays = tuple(np.asarray(a) for a in dataset) if isinstance(dataset, (tuple, list)) else (np.asarray(dataset),)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"split_dataset: the arrays have different lengths {[len(a) for a in arrays]}.")
    if left_size is None and right_size is None:
        left_size = 0.5

    def count(size, argument):
        if size is None:
            return None
        if isinstance(size, float):
            if not 0 < size < 1:
                raise invalid_value(argument, "a float in (0, 1) or a positive int", size, "split_dataset")
            return int(round(size * n))
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 < size <= n:
            raise invalid_value(argument, f"a float in (0, 1) or an int in [1, {n}]", size, "split_dataset")
        return int(size)

    left, right = count(left_size, "left_size"), count(right_size, "right_size")
    left = n - right if left is None else left
    right = n - left if right is None else right
    if left + right > n or left < 1 or right < 1:
        raise ValueError(f"split_dataset: left_size={left_size} and right_size={right_size} do not split "
                         f"{n} samples into two non-empty parts.")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    parts = tuple(tuple(a[order[lo:hi]] for a in arrays) for lo, hi in ((0, left), (left, left + right)))
    return parts if isinstance(dataset, (tuple, list)) else (parts[0][0], parts[1][0])


__all__ = ["CustomObjectScope", "Progbar", "PyDataset", "custom_object_scope", "deserialize_keras_object",
           "get_custom_objects", "normalize", "register_keras_serializable", "serialize_keras_object",
           "set_random_seed", "split_dataset", "to_categorical"]
