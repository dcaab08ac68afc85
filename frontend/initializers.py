"""Weight initializers: Keras 3's names, arguments and formulas. Dense kernels are
(fan_in, fan_out).

    VarianceScaling(scale, mode, distribution): variance = scale / max(1, fan), fan =
        fan_in, fan_out or (fan_in + fan_out) / 2, drawn as
        "truncated_normal"    N(0, s^2) cut at 2 s, s = sqrt(variance) / 0.87962566103423978
                              (the std of N(0, 1) cut at +-2), so the variance is the stated one
        "untruncated_normal"  N(0, variance)
        "uniform"             U(-sqrt(3 variance), +sqrt(3 variance))
    he_normal       VarianceScaling(2, "fan_in", "truncated_normal")   (Keras's He)
    course's He     VarianceScaling(2, "fan_in", "untruncated_normal")  randn * sqrt(2 / n_prev)
    he_uniform      VarianceScaling(2, "fan_in", "uniform")
    glorot_normal   VarianceScaling(1, "fan_avg", "truncated_normal")  (Xavier)
    glorot_uniform  VarianceScaling(1, "fan_avg", "uniform")
    lecun_normal    VarianceScaling(1, "fan_in", "truncated_normal")   (course: Xavier for tanh)
    lecun_uniform   VarianceScaling(1, "fan_in", "uniform")
    orthogonal      Q of the QR decomposition of a normal matrix, signs fixed by diag(R), times gain
    identity        gain * eye;  constant, zeros, ones;  random_normal/normal, random_uniform/uniform,
    truncated_normal (N(mean, stddev^2) redrawn beyond 2 stddev)

`init(shape, dtype=None)` returns a host NumPy array (dtype None: gpudl.floatx()).
Determinism (gpudl/random.py): with `seed=None` the values come from gpudl's seeded
host generator (gpudl.utils.set_random_seed fixes them); with an integer `seed` every
call returns the same values, as Keras's seeded initializers do.
"""

import math

import numpy as np

from gpudl import random as gpudl_random
from gpudl import registry
from gpudl.backend import floatx
from gpudl.errors import invalid_value, unknown_name

TRUNCATED_NORMAL_STDDEV = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")
MODES = ("fan_in", "fan_out", "fan_avg")


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) of a weight shape (Keras's rule): kernels are (..., in, out)."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (int(np.prod([shape[a] for a in input_axes])), int(np.prod([shape[a] for a in output_axes])))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _check_seed(seed, where):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise invalid_value("seed", "an integer or None", seed, where)
    return None if seed is None else int(seed)


class Initializer:
    """Callable(shape, dtype=None) -> host NumPy array. Subclasses implement
    sample(shape, rng) in float64; __call__ casts to the dtype."""

    def __init__(self, seed=None):
        self.seed = _check_seed(seed, type(self).__name__)

    def generator(self):
        return np.random.default_rng(self.seed) if self.seed is not None else gpudl_random.generator()

    def __call__(self, shape, dtype=None):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        return np.asarray(self.sample(shape, self.generator()), dtype=dtype or floatx())

    def sample(self, shape, rng):
        raise NotImplementedError(f"{type(self).__name__} must implement sample(shape, rng) or __call__")

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())


class Zeros(Initializer):
    def __init__(self):
        super().__init__()

    def sample(self, shape, rng):
        return np.zeros(shape)

    def get_config(self):
        return {}


class Ones(Initializer):
    def __init__(self):
        super().__init__()

    def sample(self, shape, rng):
        return np.ones(shape)

    def get_config(self):
        return {}


class Constant(Initializer):
    """Every value is `value`."""

    def __init__(self, value=0.0):
        super().__init__()
        self.value = value

    def sample(self, shape, rng):
        return np.full(shape, self.value, dtype=np.float64)

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """gain * eye(rows, cols) for a 2-D shape."""

    def __init__(self, gain=1.0):
        super().__init__()
        self.gain = gain

    def sample(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer can only be used for 2D matrices. Received: shape={shape} "
                             f"of rank {len(shape)}.")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


class RandomNormal(Initializer):
    """N(mean, stddev^2)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """N(mean, stddev^2), values beyond 2 stddev from the mean redrawn."""

    def sample(self, shape, rng):
        return self.mean + self.stddev * truncated_normal(rng, shape)


class RandomUniform(Initializer):
    """U(minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Variance scale / max(1, fan) in the named distribution (see the module docstring).

    Args:
        scale: positive float.  mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "truncated_normal" ("normal" is Keras's alias of it),
            "untruncated_normal" or "uniform".
        seed: optional int.  input_axes, output_axes: optional axes that make the fans.
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        super().__init__(seed)
        where = type(self).__name__
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) or not scale > 0:
            raise invalid_value("scale", "a positive float", scale, where)
        if mode not in MODES:
            raise invalid_value("mode", f"one of {', '.join(MODES)}", mode, where)
        if not isinstance(distribution, str) or distribution.lower() not in DISTRIBUTIONS + ("normal",):
            raise invalid_value("distribution", f"one of {', '.join(DISTRIBUTIONS)}", distribution, where)
        distribution = distribution.lower()
        self.scale, self.mode = scale, mode
        self.distribution = "truncated_normal" if distribution == "normal" else distribution
        self.input_axes, self.output_axes = input_axes, output_axes

    def sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return truncated_normal(rng, shape) * (math.sqrt(variance) / TRUNCATED_NORMAL_STDDEV)
        if self.distribution == "untruncated_normal":
            return rng.standard_normal(shape) * math.sqrt(variance)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, size=shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def truncated_normal(rng, shape):
    """N(0, 1) samples redrawn until inside [-2, 2]."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values


def _variance_scaling(class_name, scale, mode, distribution):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    doc = f"VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})."
    return type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc,
                                                 "__module__": __name__})


HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")


class Orthogonal(Initializer):
    """gain * Q, Q from the QR decomposition of a (max(r, c), min(r, c)) normal matrix,
    columns signed by diag(R) (rows = product of all but the last axis, c = last axis)."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def sample(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"The tensor to initialize must be at least two-dimensional. Received: "
                             f"shape={shape} of rank {len(shape)}.")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


CLASSES = (Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
           HeNormal, HeUniform, GlorotNormal, GlorotUniform, LecunNormal, LecunUniform, Orthogonal)
ALIASES = {"normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
           "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal,
           "xavier_normal": GlorotNormal, "xavier_uniform": GlorotUniform}


def object_table(kind, classes, aliases=None):
    """Register `classes` of `kind` (gpudl.registry) and return Keras's lookup table: each class
    by its name and its snake_case name, plus aliases."""
    return registry.register(kind, classes, aliases, snake_case_names=True)


INITIALIZERS = object_table("initializer", CLASSES, ALIASES)


def lookup(identifier, table, kind, base):
    """An instance of `base` from a name, a Keras config dict, a class or an instance
    (Keras's `get`); None stays None."""
    if identifier is None or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return deserialize_object(identifier, table, kind)
    if isinstance(identifier, str) and identifier in table:
        return table[identifier]()
    raise unknown_name(kind, identifier, table)


def serialize_object(obj, module):
    """Keras's dict for an initializer/regularizer/constraint: module, class_name, config."""
    if obj is None:
        return None
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(), "registered_name": None}


def deserialize_object(config, table, kind):
    """The object a Keras dict (or a bare name) describes."""
    if config is None:
        return None
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if config.get("class_name") not in table:
        raise unknown_name(kind, config.get("class_name"), table)
    return table[config["class_name"]].from_config(dict(config.get("config") or {}))


def get(identifier):
    """An Initializer from a name ("he_normal", "HeNormal"), a Keras dict, a class or an
    instance; None stays None (add_weight then uses glorot_uniform, as Keras does)."""
    return lookup(identifier, INITIALIZERS, "initializer", Initializer)


def serialize(initializer):
    return serialize_object(initializer, "keras.initializers")


def deserialize(config):
    return deserialize_object(config, INITIALIZERS, "initializer")
