"""NoiseLayer: the base of GaussianNoise, GaussianDropout and AlphaDropout."""

import numpy as np

from gpudl import collectives
from gpudl import random as gpudl_random
from gpudl.backend import get_backend
from gpudl.errors import invalid_value
from gpudl.frontend.layers.base import Layer


class NoiseLayer(Layer):
    """A layer that draws fresh noise on each training forward pass (identity at inference).

    The draw of the c-th training call is a pure function of (seed, c) — gpudl's
    counter rule (gpudl/random.py), the one the model's epoch shuffles follow:
    `numpy.random.default_rng([seed, c])`. It is drawn on the host, so every backend
    sees the same noise, and moved to the backend; backward reuses it. `seed=None`
    takes a seed from gpudl's generator, so gpudl.utils.set_random_seed fixes it.

    Args:
        seed: optional int.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise invalid_value("seed", "an integer or None", seed, f"{type(self).__name__} '{self.name}'")
        self.seed = seed
        self.noise_seed = gpudl_random.new_seed() if seed is None else int(seed)
        self.calls = 0  # training forward passes so far
        self.enabled = True  # gradient checking switches the noise off, as it does dropout

    def _noisy(self, training):
        """Whether this forward pass draws noise."""
        return training and self.enabled

    def _next_generator(self):
        """The generator of this training call; advances the call count."""
        rng = np.random.default_rng([self.noise_seed, self.calls])
        self.calls += 1
        return rng

    def _draw(self, sample, shape):
        """sample(generator, shape) for this training call. In a data-parallel step, the global
        batch's array is drawn and this process's rows are kept, so R processes draw the noise
        of one process on the global batch."""
        shard = collectives.shard()
        if shard is None or shape[0] != shard.rows:
            return sample(self._next_generator(), shape)
        whole = sample(self._next_generator(), (shard.global_rows, *shape[1:]))
        return whole[shard.first_row:shard.first_row + shard.rows]

    def _to_backend(self, host_array, dtype):
        return get_backend().asarray(host_array.astype(dtype))


def check_rate(rate, where):
    """Keras's rule for these layers: a float in [0, 1]."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)) or not 0 <= rate <= 1:
        raise invalid_value("rate", "a float value between 0 and 1", rate, where)
    return float(rate)
