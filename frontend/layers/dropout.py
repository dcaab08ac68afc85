"""Inverted dropout (Keras's `rate`; the course's keep_prob is 1 - rate)."""

from gpudl import random as gpudl_random
from gpudl.errors import check_rate
from gpudl.frontend.layers.base import Layer


class Dropout(Layer):
    """Zeroes each input with probability `rate` and scales the rest by 1 / (1 - rate)
    during training; the identity at inference.

    The mask is Philox4x32-10 under a per-step seed derived from the layer's seed
    (`seed`, else the model's seed), its index in the model and the step number;
    backward regenerates it from that seed, so no mask is stored.

    Args:
        rate: float in [0, 1), fraction of inputs to drop.
        seed: optional int fixing this layer's masks.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate, f"Dropout '{self.name}'")
        self.seed = seed
        self.base_seed = seed  # the model sets it (its own seed when seed is None)
        self.index = 0         # position in the model, set by the model
        self.calls = 0         # training forward passes so far: the step number
        self.enabled = True    # gradient checking switches dropout off

    def forward(self, x, training=False):
        self._active = training and self.enabled and self.rate > 0
        if not self._active:
            return x
        self._step_seed = gpudl_random.derive_seed(self.base_seed, self.index, self.calls)
        self.calls += 1
        return self.ops.dropout(x, self.rate, self._step_seed)

    def backward(self, dy):
        if not self._active:
            return dy
        return self.ops.dropout(dy, self.rate, self._step_seed)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
