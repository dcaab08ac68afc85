"""Merge layers: combine a list of same-batch inputs into one output (Keras's layers/merging/).

Each is a forward over the list and a backward giving one gradient per input:

    Add        y = sum_i x_i                 dx_i = dy
    Subtract   y = x_0 - x_1                 dx_0 = dy, dx_1 = -dy
    Multiply   y = prod_i x_i                dx_i = dy * prod_{j != i} x_j
    Average    y = sum_i x_i / n             dx_i = dy / n
    Maximum    y = max_i x_i                 dx_i = dy where x_i is the first maximum, else 0
    Minimum    y = min_i x_i                 dx_i = dy where x_i is the first minimum, else 0
    Concatenate y = [x_0, x_1, ...] on axis  dx_i = the slice of dy that x_i filled
    Dot        y = sum_k x_0[:, k] x_1[:, k] (axes=1; normalize: cosine)   dx_0 = dy x_1, dx_1 = dy x_0
"""

import numpy as np

from gpudl.backend import floatx, get_backend
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.node import is_symbolic


class Merge(Layer):
    """Base of the merge layers: a list of at least two inputs of one shape (batch axis excluded)."""

    takes_list = True
    min_inputs = 2

    def build_for(self, input_shapes, dtype):
        shapes = [tuple(shape) for shape in input_shapes]
        if len(shapes) < self.min_inputs:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) should be called on a list of at least "
                             f"{self.min_inputs} inputs. Received: {len(shapes)} inputs.")
        if not self.built:
            self.dtype = self.dtype or dtype
            self.built = True
            self.input_shape = shapes
        return self.output_feature_shape(shapes)

    def output_feature_shape(self, shapes):
        if len({tuple(shape) for shape in shapes}) != 1:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) needs inputs of one shape; received "
                             f"shapes {', '.join(str((None, *shape)) for shape in shapes)}.")
        return tuple(shapes[0])

    def __call__(self, inputs, training=False):
        """On a list of symbolic tensors: a node of a functional graph; on a list of arrays: the
        merged array (host NumPy)."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) should be called on a list of inputs; "
                             f"received {type(inputs).__name__}.")
        if is_symbolic(inputs):
            return super().__call__(inputs, training=training)
        backend = get_backend()
        arrays = [backend.asarray(x if hasattr(x, "shape") else np.asarray(x)) for x in inputs]
        self.build_for([tuple(a.shape[1:]) for a in arrays], self.dtype or floatx())
        return backend.to_numpy(self.forward([a.astype(self.dtype, copy=False) for a in arrays], training=training))


class Add(Merge):
    """Elementwise sum of the inputs."""

    def forward(self, inputs, training=False):
        self._count = len(inputs)
        total = inputs[0] + inputs[1]
        for x in inputs[2:]:
            total = total + x
        return total

    def backward(self, dy):
        return [dy] * self._count


class Subtract(Merge):
    """inputs[0] - inputs[1] (exactly two inputs)."""

    def build_for(self, input_shapes, dtype):
        if len(input_shapes) != 2:
            raise ValueError(f"Layer '{self.name}' (Subtract) should be called on exactly 2 inputs. Received: "
                             f"{len(input_shapes)} inputs.")
        return super().build_for(input_shapes, dtype)

    def forward(self, inputs, training=False):
        return inputs[0] - inputs[1]

    def backward(self, dy):
        return [dy, -dy]


class Multiply(Merge):
    """Elementwise product of the inputs."""

    def forward(self, inputs, training=False):
        self._inputs = list(inputs)
        product = inputs[0] * inputs[1]
        for x in inputs[2:]:
            product = product * x
        return product

    def backward(self, dy):
        grads = []
        for i in range(len(self._inputs)):
            others = [x for j, x in enumerate(self._inputs) if j != i]
            grad = dy * others[0]
            for x in others[1:]:
                grad = grad * x
            grads.append(grad)
        return grads


class Average(Merge):
    """Elementwise mean of the inputs."""

    def forward(self, inputs, training=False):
        self._count = len(inputs)
        total = inputs[0] + inputs[1]
        for x in inputs[2:]:
            total = total + x
        return total / len(inputs)

    def backward(self, dy):
        return [dy / self._count] * self._count


class _Extremum(Merge):
    """Elementwise maximum (or minimum) of the inputs; the gradient goes to the first input that
    holds the extremum, as an argmax picks it."""

    pick = None  # "argmax" or "argmin"

    def forward(self, inputs, training=False):
        stacked = self.xp.stack(inputs)
        self._winner = getattr(stacked, self.pick)(axis=0)
        self._count = len(inputs)
        return stacked.max(axis=0) if self.pick == "argmax" else stacked.min(axis=0)

    def backward(self, dy):
        zero = dy.dtype.type(0)
        return [self.xp.where(self._winner == i, dy, zero) for i in range(self._count)]


class Maximum(_Extremum):
    """Elementwise maximum of the inputs."""

    pick = "argmax"


class Minimum(_Extremum):
    """Elementwise minimum of the inputs."""

    pick = "argmin"


class Concatenate(Merge):
    """The inputs joined along `axis` (default -1, the features); the other axes must agree.

    Args:
        axis: the axis to join along (the batch axis cannot be joined).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def output_feature_shape(self, shapes):
        rank = len(shapes[0]) + 1
        axis = self.axis % rank
        if axis == 0 or any(len(shape) + 1 != rank for shape in shapes) or any(
                tuple(s[:axis - 1] + s[axis:]) != tuple(shapes[0][:axis - 1] + shapes[0][axis:]) for s in shapes):
            raise ValueError(f"Layer '{self.name}' (Concatenate) requires inputs with matching shapes except for "
                             f"the concatenation axis {self.axis}. Received: input_shape="
                             f"{[(None, *shape) for shape in shapes]}")
        joined = list(shapes[0])
        joined[axis - 1] = sum(shape[axis - 1] for shape in shapes)
        return tuple(joined)

    def forward(self, inputs, training=False):
        self._sizes = [x.shape[self.axis] for x in inputs]
        return self.xp.concatenate(inputs, axis=self.axis)

    def backward(self, dy):
        splits = [sum(self._sizes[:i + 1]) for i in range(len(self._sizes) - 1)]
        return self.xp.split(dy, splits, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(Merge):
    """Dot product of two (N, d) inputs over their features: (N, 1); with `normalize`, of their
    L2-normalized forms (cosine similarity).

    Args:
        axes: 1 or -1 (the feature axis of 2-D inputs).
        normalize: L2-normalize each input first.
    """

    def __init__(self, axes=-1, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if axes not in (1, -1, (1, 1), (-1, -1), [1, 1], [-1, -1]):
            raise ValueError(f"Layer '{self.name}' (Dot): gpudl dots 2-D inputs over their features: axes=1 or "
                             f"-1. Received: axes={axes}")
        self.axes, self.normalize = axes, bool(normalize)

    def output_feature_shape(self, shapes):
        if len(shapes) != 2 or len(shapes[0]) != 1 or tuple(shapes[0]) != tuple(shapes[1]):
            raise ValueError(f"Layer '{self.name}' (Dot) needs two inputs of shape (None, d); received "
                             f"{[(None, *shape) for shape in shapes]}.")
        return (1,)

    def forward(self, inputs, training=False):
        a, b = inputs
        if self.normalize:
            self._norms = [self.xp.maximum(self.xp.sqrt((x * x).sum(axis=1, keepdims=True)), 1e-12) for x in (a, b)]
            a, b = a / self._norms[0], b / self._norms[1]
        self._unit = (a, b)
        return (a * b).sum(axis=1, keepdims=True)

    def backward(self, dy):
        a, b = self._unit
        da, db = dy * b, dy * a
        if self.normalize:  # d(x/|x|) = (g - u (u . g)) / |x|
            da = (da - a * (a * da).sum(axis=1, keepdims=True)) / self._norms[0]
            db = (db - b * (b * db).sum(axis=1, keepdims=True)) / self._norms[1]
        return [da, db]

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def add(inputs, **kwargs):
    """Functional form of Add: `add([x1, x2])`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
