"""GaussianDropout layer."""

import math

from gpudl.frontend.layers.noise_base import NoiseLayer, check_rate


class GaussianDropout(NoiseLayer):
    """Multiplies by Gaussian noise of mean 1 in training (Keras's formula):
        y = x * m,  m ~ N(1, rate / (1 - rate));   dx = dy * m.
    The identity at inference. Noise: see NoiseLayer.

    Args:
        rate: float in [0, 1], the drop probability of the equivalent dropout.
        seed: optional int.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate, f"GaussianDropout '{self.name}'")

    def forward(self, x, training=False):
        self._multiplier = None
        if not (self._noisy(training) and self.rate > 0):
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = self._draw(lambda rng, shape: rng.standard_normal(shape), x.shape)
        self._multiplier = self._to_backend(1.0 + stddev * noise, x.dtype)
        return x * self._multiplier

    def backward(self, dy):
        return dy if self._multiplier is None else dy * self._multiplier

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
