"""Weight and activity penalties with Keras semantics, added to the loss.

    L1(l1=0.01):          penalty l1 * sum|W|          gradient l1 * sign(W)
    L2(l2=0.01):          penalty l2 * sum W^2         gradient 2 * l2 * W   (course: l2 = lambda / (2 m))
    L1L2(l1=0.0, l2=0.0)  both.
`l1`, `l2`, `l1_l2` are the same classes under Keras's lower-case names. On a weight
the penalty joins the loss as is; as an activity regularizer it is divided by the
batch size (Keras 3's Layer does so).
"""

import numpy as np

from gpudl.backend import get_backend
from gpudl.errors import invalid_value
from gpudl.frontend.initializers import deserialize_object, lookup, object_table, serialize_object


class Regularizer:
    """penalty = l1 * sum|W| + l2 * sum W^2 (a host float), with its gradient."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not float(value) >= 0:
                raise invalid_value(name, "a non-negative float", value, type(self).__name__)
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weights):
        xp = get_backend().xp
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(xp.abs(weights).sum())
        if self.l2:
            penalty += self.l2 * float(xp.square(weights).sum())
        return penalty

    def gradient(self, weights):
        grad = 0.0
        if self.l1:
            grad = grad + weights.dtype.type(self.l1) * get_backend().xp.sign(weights)
        if self.l2:
            grad = grad + weights.dtype.type(2.0 * self.l2) * weights
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1(Regularizer):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    pass


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's lower-case aliases (the classes themselves)

REGULARIZERS = object_table((L1, L2, L1L2))


def get(identifier):
    """A Regularizer from a name ("l2", "L2"), a Keras dict, a class or an instance; None stays None.
    A plain function is refused: gpudl has no autodiff, so a penalty needs its gradient too."""
    if callable(identifier) and not isinstance(identifier, (type, Regularizer)):
        raise ValueError(f"Regularizer {getattr(identifier, '__name__', identifier)!r} is a plain function, but gpudl "
                         f"has no autodiff: subclass gpudl.regularizers.Regularizer and define __call__(weights) "
                         f"(the penalty) and gradient(weights) (its derivative).")
    return lookup(identifier, REGULARIZERS, "regularizer", Regularizer)


def serialize(regularizer):
    return serialize_object(regularizer, "keras.regularizers")


def deserialize(config):
    return deserialize_object(config, REGULARIZERS, "regularizer")
