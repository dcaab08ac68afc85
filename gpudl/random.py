"""Seeds. Initial weights come from one seeded host generator; everything drawn
during training (shuffles, dropout masks) is counter-based: a pure function of
(model seed, what, step), so a run resumed at any epoch redraws the same numbers.
"""

import contextlib
import random

import numpy as np


_state = {"generator": np.random.default_rng()}


def generator():
    """The host generator behind initializers and new model seeds."""
    return _state["generator"]


def set_random_seed(seed):
    """Seed Python's random, NumPy's global RNG and gpudl's generator: the same
    seed gives bit-identical training runs."""
    random.seed(seed)
    np.random.seed(seed)
    _state["generator"] = np.random.default_rng(seed)


@contextlib.contextmanager
def seeded(seed):
    """set_random_seed(seed) inside the block; the caller's generators are restored after it."""
    saved = random.getstate(), np.random.get_state(), _state["generator"]
    set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        _state["generator"] = saved[2]


def new_seed():
    """A fresh 63-bit seed from the generator (for a new model)."""
    return int(generator().integers(0, 2**63 - 1))
