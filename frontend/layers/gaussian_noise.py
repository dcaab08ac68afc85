"""GaussianNoise layer."""

import numpy as np

from gpudl.errors import invalid_value
from gpudl.frontend.layers.noise_base import NoiseLayer


class GaussianNoise(NoiseLayer):
    """Adds zero-mean Gaussian noise in training: y = x + stddev * n, n ~ N(0, 1);
    dx = dy. The identity at inference. Noise: see NoiseLayer.

    Args:
        stddev: float in [0, 1], standard deviation of the noise.
        seed: optional int.
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.number)) or not 0 <= stddev <= 1:
            raise invalid_value("stddev", "a float value between 0 and 1", stddev, f"GaussianNoise '{self.name}'")
        self.stddev = stddev

    def forward(self, x, training=False):
        if not (self._noisy(training) and self.stddev > 0):
            return x
        noise = self._draw(lambda rng, shape: rng.standard_normal(shape), x.shape) * self.stddev
        return x + self._to_backend(noise, x.dtype)

    def backward(self, dy):
        return dy

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
