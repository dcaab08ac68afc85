"""Weight constraints (Keras 3's formulas): after each optimizer step the layer
projects each constrained weight in place (Layer.apply_constraints).

    norms = sqrt(sum(W^2, axis, keepdims))                   (axis=0: each unit's incoming weights)
    MaxNorm(max_value=2, axis=0)      W * clip(norms, 0, max_value) / (epsilon + norms)
    NonNeg()                          max(W, 0)
    UnitNorm(axis=0)                  W / (epsilon + norms)
    MinMaxNorm(min_value=0, max_value=1, rate=1, axis=0)
                                      W * (rate * clip(norms, min, max) + (1 - rate) * norms) / (epsilon + norms)
epsilon is Keras's backend epsilon, 1e-7.
"""

from gpudl.backend import get_backend
from gpudl.frontend.initializers import deserialize_object, lookup, object_table, serialize_object

EPSILON = 1e-7  # keras.config.epsilon()


def _norms(w, axis):
    return get_backend().xp.sqrt((w * w).sum(axis=axis, keepdims=True))


class Constraint:
    """Callable(W) -> projected W; the identity here."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = get_backend().xp.clip(norms, 0, self.max_value)
        return w * (desired / (w.dtype.type(EPSILON) + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return get_backend().xp.maximum(w, 0)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return w / (w.dtype.type(EPSILON) + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * get_backend().xp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (w.dtype.type(EPSILON) + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm  # Keras's aliases

CONSTRAINTS = object_table("constraint", (MaxNorm, NonNeg, UnitNorm, MinMaxNorm))


def get(identifier):
    """A Constraint from a name ("max_norm", "MaxNorm"), a Keras dict, a class or an instance; None stays None."""
    return lookup(identifier, CONSTRAINTS, "constraint", Constraint)


def serialize(constraint):
    return serialize_object(constraint, "keras.constraints")


def deserialize(config):
    return deserialize_object(config, CONSTRAINTS, "constraint")
