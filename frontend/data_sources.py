"""Where fit/evaluate/predict take their batches from: arrays, a `PyDataset`, or a
Python generator, each turned into one iterable of (x, y, sample_weight) batches.

    arrays     x, y, sample_weight sliced by `batch_size` (shuffled per epoch by fit)
    PyDataset  len(ds) batches, ds[i] -> (x, y) or (x, y, sample_weight); on_epoch_end()
    generator  next(gen) -> (x, y) or (x, y, sample_weight), `steps` batches per epoch
"""

import inspect

import numpy as np


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
    or until the generator is exhausted)."""

    def __init__(self, source, steps=None, where="x"):
        self.source, self.where = source, where
        self.is_dataset = not (inspect.isgenerator(source) or hasattr(source, "__next__"))
        if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 1):
            raise ValueError(f"Invalid value received for argument `steps_per_epoch`. Expected a positive "
                             f"integer. Received: steps_per_epoch={steps!r}")
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

    def end_epoch(self):
        if self.is_dataset:
            self.source.on_epoch_end()


class ArrayBatches:
    """Batches of host arrays x, y and optional per-sample weights w, moved to the device
    once and sliced by `batch_size` in `order` (fit's shuffle)."""

    def __init__(self, x, y, w, batch_size, steps=None):
        self.x, self.y, self.w, self.batch_size, self.max_steps = x, y, w, batch_size, steps
        self.on_device = None  # (x, y, w) uploaded once, at the first epoch

    @property
    def steps(self):
        steps = -(-len(self.x) // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def split(self, fraction):
        """Keras's validation_split: hand back the last `fraction` of the samples (before any
        shuffling) as (x, y, w) and keep the rest."""
        n = len(self.x)
        at = int(np.floor(n * (1.0 - fraction)))
        if at == 0 or at == n:
            raise ValueError(f"validation_split={fraction} leaves an empty training or validation set "
                             f"for {n} samples.")
        held_out = (self.x[at:], self.y[at:], None if self.w is None else self.w[at:])
        self.x, self.y, self.w = self.x[:at], self.y[:at], None if self.w is None else self.w[:at]
        return held_out

    def epoch(self, backend, order=None):
        """Yield device batches (x, y, w) in `order` (None: as stored)."""
        if self.on_device is None:
            self.on_device = (backend.asarray(self.x), backend.asarray(self.y),
                              None if self.w is None else backend.asarray(self.w))
        x, y, w = self.on_device
        for step in range(self.steps):
            part = (slice(step * self.batch_size, (step + 1) * self.batch_size) if order is None
                    else order[step * self.batch_size:(step + 1) * self.batch_size])
            yield x[part], y[part], None if w is None else w[part]

    def end_epoch(self):
        pass
