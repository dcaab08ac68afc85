"""Weight initializers (Keras names and formulas). Shapes are Dense's (fan_in, fan_out).

    he_normal       truncated N(0, 2 / fan_in)              (course: ReLU)
    he_uniform      U(-sqrt(6 / fan_in), +)
    glorot_normal   truncated N(0, 2 / (fan_in + fan_out))  (Xavier)
    glorot_uniform  U(-sqrt(6 / (fan_in + fan_out)), +)
    lecun_normal    truncated N(0, 1 / fan_in)              (course: Xavier for tanh)
Truncated normals are cut at 2 standard deviations and rescaled so that the
variance is the stated one (Keras's VarianceScaling). Values are drawn on the
host from gpudl's seeded generator (or the initializer's own seed), so every
backend starts from the same weights.
"""

import numpy as np

from gpudl import random as gpudl_random
from gpudl.errors import unknown_name

TRUNCATED_NORMAL_STDDEV = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def fans(shape):
    """(fan_in, fan_out) of a weight shape; kernels are (..., in, out)."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Callable(shape, dtype) -> host NumPy array."""

    def __init__(self, seed=None):
        self.seed = seed

    def generator(self):
        return np.random.default_rng(self.seed) if self.seed is not None else gpudl_random.generator()

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self.sample(tuple(shape), self.generator()), dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}


class Zeros(Initializer):
    def sample(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__()
        self.value = value

    def sample(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Variance scale / fan, fan = fan_in, fan_out or their mean; truncated normal or uniform."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=shape)
        return truncated_normal(rng, shape) * (np.sqrt(variance) / TRUNCATED_NORMAL_STDDEV)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def truncated_normal(rng, shape):
    """N(0, 1) samples redrawn until inside [-2, 2]."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values


def _variance_scaling(class_name, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    doc = f"VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})."
    return type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc})


HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")

INITIALIZERS = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "variance_scaling": VarianceScaling,
    "he_normal": HeNormal, "he_uniform": HeUniform,
    "glorot_normal": GlorotNormal, "glorot_uniform": GlorotUniform,
    "xavier_normal": GlorotNormal, "xavier_uniform": GlorotUniform,
    "lecun_normal": LecunNormal,
}


def get(identifier):
    """An Initializer from a name ("he_normal"), a class, or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str) and identifier in INITIALIZERS:
        return INITIALIZERS[identifier]()
    raise unknown_name("initializer", identifier, INITIALIZERS)


def serialize(initializer):
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config):
    classes = {cls.__name__: cls for cls in INITIALIZERS.values()}
    if config["class_name"] not in classes:
        raise unknown_name("initializer", config["class_name"], classes)
    return classes[config["class_name"]](**config["config"])
