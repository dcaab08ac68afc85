"""Inverted dropout (Keras's `rate`; the course's keep_prob is 1 - rate)."""

import numpy as np

from gpudl import collectives
from gpudl import random as gpudl_random
from gpudl.backend import get_backend
from gpudl.errors import check_rate, invalid_value
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.fused_block import inside_active_block


class Dropout(Layer):
    """Zeroes each input with probability `rate` and scales the rest by 1 / (1 - rate)
    during training; the identity at inference.

    The mask is Philox4x32-10 under a per-call key that the kernel derives on the
    device from the layer's seed (`seed`, else the model's seed) and `seed_counter`,
    the device array [index in the model, number of this training call]. Forward
    advances the call number on the device before drawing, so no host work is done per
    step (a captured CUDA graph replays it). For the backward, the GPU kernels draw the
    same mask again from that number (no mask memory); the NumPy backend keeps the
    forward's mask, a byte per element (the op table's dropout_train / dropout_backward).

    Args:
        rate: float in [0, 1), fraction of inputs to drop.
        noise_shape: None (Keras's default: an independent mask entry per input). A
            mask shared across axes is not supported and is refused.
        seed: optional int fixing this layer's masks.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate, f"Dropout '{self.name}'")
        if noise_shape is not None:
            raise invalid_value("noise_shape", "None (gpudl draws one mask entry per input; a mask broadcast "
                                "across axes is not supported)", noise_shape, f"Dropout '{self.name}'")
        self.noise_shape = noise_shape
        self.seed = seed
        # called on its own: a seed from gpudl's generator; in a model: the model's seed when seed is None
        self.base_seed = seed if seed is not None else gpudl_random.new_seed()
        # [index in the model, number of the latest training call (-1: none yet)], on the device
        self.seed_counter = get_backend().asarray(np.array([0, -1], dtype=np.int64))
        self.enabled = True    # gradient checking switches dropout off

    @property
    def index(self):
        """Position in the model (the model sets it)."""
        return int(get_backend().to_numpy(self.seed_counter)[0])

    @index.setter
    def index(self, value):
        self.seed_counter[0] = int(value)

    @property
    def calls(self):
        """Training forward passes so far (read back from the device)."""
        return int(get_backend().to_numpy(self.seed_counter)[1]) + 1

    @calls.setter
    def calls(self, value):
        self.seed_counter[1] = int(value) - 1

    def forward(self, x, training=False):
        # inside an active fused block its batch-norm drew the mask (gpudl.frontend.layers.fusion)
        self._active = training and self.enabled and self.rate > 0 and not inside_active_block(self)
        if not self._active:
            return x
        self.seed_counter[1:] += 1  # on the device
        shard = collectives.shard()  # data parallel: this process's rows of the global batch's mask
        self._offset = 0 if shard is None else shard.first_row * (x.size // max(x.shape[0], 1))
        y, self._saved_mask = self.ops.dropout_train(x, self.rate, self.base_seed, self.seed_counter, self._offset)
        return y

    def backward(self, dy):
        if not self._active:
            return dy
        return self.ops.dropout_backward(dy, self._saved_mask, self.rate, self.base_seed, self.seed_counter,
                                         self._offset)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}
