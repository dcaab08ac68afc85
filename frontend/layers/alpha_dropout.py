"""AlphaDropout layer (for SELU networks)."""

from gpudl.frontend.activations import SELU_ALPHA, SELU_SCALE
from gpudl.frontend.layers.noise_base import NoiseLayer, check_rate


class AlphaDropout(NoiseLayer):
    """Dropout that keeps SELU's mean and variance (Klambauer et al. 2017; Keras's formula):
        kept = U(0, 1) >= rate   (drawn in `noise_shape`, broadcast over x)
        alpha_p = -SELU_ALPHA * SELU_SCALE
        a = ((1 - rate) * (1 + rate * alpha_p^2))^-1/2,   b = -a * alpha_p * rate
        y = a * (x * kept + alpha_p * (1 - kept)) + b;     dx = dy * a * kept
    The identity at inference. Noise: see NoiseLayer.

    Args:
        rate: float in [0, 1], drop probability.
        noise_shape: optional shape of the keep mask, batch axis included (None entries
            take the input's size), e.g. (None, 1) to drop whole samples.
        seed: optional int.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate, f"AlphaDropout '{self.name}'")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def forward(self, x, training=False):
        self._kept = None
        if not (self._noisy(training) and self.rate > 0):
            return x
        shape = x.shape if self.noise_shape is None else tuple(
            size if wanted is None else wanted for size, wanted in zip(x.shape, self.noise_shape))
        kept = self._draw(lambda rng, s: rng.uniform(size=s), shape) >= self.rate
        alpha_p = -SELU_ALPHA * SELU_SCALE
        self._a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        b = -self._a * alpha_p * self.rate
        self._kept = self._to_backend(kept, x.dtype)
        dtype = x.dtype.type
        return dtype(self._a) * (x * self._kept + dtype(alpha_p) * (1 - self._kept)) + dtype(b)

    def backward(self, dy):
        return dy if self._kept is None else dy * (dy.dtype.type(self._a) * self._kept)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}
