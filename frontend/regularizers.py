"""Weight and activity penalties with Keras semantics, added to the loss.

    L1(l1=0.01):          penalty l1 * sum|W|          gradient l1 * sign(W)
    L2(l2=0.01):          penalty l2 * sum W^2         gradient 2 * l2 * W   (course: l2 = lambda / (2 m))
    L1L2(l1=0.0, l2=0.0)  both.
    OrthogonalRegularizer(factor=0.01, mode="rows"): factor * mean over pairs i != j of
        |n_i . n_j|, n_i the rows (columns) of W scaled to unit norm (see the class).
`l1`, `l2`, `l1_l2`, `orthogonal_regularizer` are the same classes under Keras's lower-case names. On a weight
the penalty joins the loss as is; as an activity regularizer it is divided by the
batch size (Keras 3's Layer does so).
"""

import numpy as np

from gpudl.backend import get_backend
from gpudl.errors import invalid_value
from gpudl.frontend.initializers import deserialize_object, lookup, object_table, serialize_object


def add_up(terms):
    """The sum of `terms` left to right, leaving out Python zeros: on a GPU each `0.0 + array`
    would be a launch of its own, and adding an exact zero changes no value."""
    kept = [term for term in terms if not (isinstance(term, (int, float)) and term == 0)]
    total = kept[0] if kept else 0.0
    for term in kept[1:]:
        total = total + term
    return total


class Regularizer:
    """penalty = l1 * sum|W| + l2 * sum W^2 (a 0-d float64 backend array: fit adds it to the
    loss on the device, with no host read per step), with its gradient."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not float(value) >= 0:
                raise invalid_value(name, "a non-negative float", value, type(self).__name__)
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weights):
        xp = get_backend().xp
        terms = []  # each sum in the weights' dtype, then float64, as float() of it would give
        if self.l1:
            terms.append(self.l1 * xp.abs(weights).sum().astype(np.float64))
        if self.l2:
            terms.append(self.l2 * xp.square(weights).sum().astype(np.float64))
        return add_up(terms) if terms else xp.zeros((), dtype=np.float64)

    def gradient(self, weights):
        terms = []
        if self.l1:
            terms.append(weights.dtype.type(self.l1) * get_backend().xp.sign(weights))
        if self.l2:
            terms.append(weights.dtype.type(2.0 * self.l2) * weights)
        return add_up(terms)

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


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (mode="rows") or columns (mode="columns") of a 2-D weight towards
    orthogonality (Keras's formula). With W's rows w_1..w_n (columns for "columns"):
        n_i = w_i * r_i,   r_i = min(1 / ||w_i||, 1e7)          (ops.normalize, epsilon 1e-7)
        P = N N^T,   penalty = factor * 0.5 * sum_{i != j} |P_ij| / (n (n - 1) / 2)
    gradient, with G = factor / (n (n - 1)) * sign(P) off the diagonal (0 on it):
        dN = 2 G N,   dw_i = r_i * (dn_i - n_i (n_i . dn_i))   (dw_i = r_i dn_i where ||w_i|| <= 1e-7)

    Args:
        factor: non-negative float.
        mode: "rows" or "columns".
    """

    def __init__(self, factor=0.01, mode="rows"):
        if (isinstance(factor, bool) or not isinstance(factor, (int, float, np.number))
                or not np.isfinite(factor) or factor < 0):
            raise invalid_value("factor", "a non-negative float", factor, "OrthogonalRegularizer")
        if mode not in ("rows", "columns"):
            raise invalid_value("mode", 'one of {"rows", "columns"}', mode, "OrthogonalRegularizer")
        self.factor, self.mode = float(factor), mode

    def _unit_vectors(self, weights):
        """(N, r): the vectors as rows, scaled to unit norm, and their scales."""
        if weights.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape="
                             f"{tuple(weights.shape)}")
        vectors = weights if self.mode == "rows" else weights.T
        if vectors.shape[0] < 2:
            raise ValueError(f"OrthogonalRegularizer(mode={self.mode!r}) needs at least 2 {self.mode} to compare; "
                             f"received a weight of shape {tuple(weights.shape)} (Keras's penalty is then 0 / 0).")
        xp = get_backend().xp
        scale = xp.minimum(1 / xp.sqrt(xp.square(vectors).sum(axis=1, keepdims=True)), vectors.dtype.type(1e7))
        return vectors * scale, scale

    def _pair_weight(self, count):
        return self.factor / (count * (count - 1))

    def __call__(self, weights):
        xp = get_backend().xp
        with np.errstate(divide="ignore"):
            unit, _ = self._unit_vectors(weights)
        product = unit @ unit.T
        off_diagonal = (xp.abs(product).sum() - xp.abs(xp.diagonal(product)).sum()).astype(np.float64)
        return self._pair_weight(unit.shape[0]) * off_diagonal  # a 0-d device array: no host read

    def gradient(self, weights):
        xp = get_backend().xp
        with np.errstate(divide="ignore"):
            unit, scale = self._unit_vectors(weights)
        signs = xp.sign(unit @ unit.T)
        xp.fill_diagonal(signs, 0)
        d_unit = unit.dtype.type(2 * self._pair_weight(unit.shape[0])) * (signs @ unit)
        floored = scale == scale.dtype.type(1e7)  # a zero-length vector: the scale is a constant
        d_vectors = scale * (d_unit - xp.where(floored, 0, unit * (unit * d_unit).sum(axis=1, keepdims=True)))
        return d_vectors if self.mode == "rows" else d_vectors.T

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's lower-case aliases (the classes themselves)
orthogonal_regularizer = OrthogonalRegularizer

REGULARIZERS = object_table("regularizer", (L1, L2, L1L2, OrthogonalRegularizer))


class FunctionRegularizer(Regularizer):
    """A penalty given as a function of the weights (Keras takes any callable, usually written with
    keras.ops): its value on the arrays, its gradient by autograd (gpudl.frontend.autodiff)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __call__(self, weights):
        return get_backend().xp.asarray(self.fn(weights), dtype=np.float64)

    def gradient(self, weights):
        from gpudl.frontend import autodiff

        return autodiff.vjp(self.fn, weights, np.ones((), dtype=weights.dtype))

    def get_config(self):
        return {"fn": getattr(self.fn, "__name__", repr(self.fn))}


def get(identifier):
    """A Regularizer from a name ("l2", "L2"), a Keras dict, a class or an instance; None stays None.
    A plain function of the weights becomes a FunctionRegularizer (its gradient by autograd)."""
    if callable(identifier) and not isinstance(identifier, (type, Regularizer)):
        return FunctionRegularizer(identifier)
    return lookup(identifier, REGULARIZERS, "regularizer", Regularizer)


def serialize(regularizer):
    return serialize_object(regularizer, "keras.regularizers")


def deserialize(config):
    return deserialize_object(config, REGULARIZERS, "regularizer")
