"""Symbolic tensors and the nodes that connect them: how `layer(keras.Input(...))` records a graph.

A KerasTensor stands for an array not yet computed: its Keras shape (batch axis first, None), dtype
and name, and the Node that makes it (None for a model input). A Node is one call of a layer on
symbolic tensors: the layer, the tensors it read, and the tensor it gave. A functional model walks
the nodes from its outputs back to its inputs (gpudl.frontend.models.functional).
"""

import numpy as np

OPERATORS = {}  # keras.ops fills it (add, multiply, getitem...): `x * 2` on a KerasTensor records an op node


def _operator(name, swap=False):
    def operator(self, other=None):
        if name in ("negative",):
            return OPERATORS[name](self)
        return OPERATORS[name](other, self) if swap else OPERATORS[name](self, other)

    return operator


class KerasTensor:
    """A symbolic tensor: `.shape` (None, features...), `.dtype`, `.name`, and the node making it."""

    def __init__(self, shape, dtype=None, name=None, node=None):
        self.shape = tuple(shape)
        self.dtype = None if dtype is None else np.dtype(dtype).name
        self.name = name
        self.node = node

    @property
    def ndim(self):
        return len(self.shape)

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values until the model runs. Build a keras.Model("
                        f"inputs, outputs) and call fit or predict, or call the layer on an array.")

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    __add__, __radd__ = _operator("add"), _operator("add", swap=True)
    __sub__, __rsub__ = _operator("subtract"), _operator("subtract", swap=True)
    __mul__, __rmul__ = _operator("multiply"), _operator("multiply", swap=True)
    __truediv__, __rtruediv__ = _operator("divide"), _operator("divide", swap=True)
    __pow__, __rpow__ = _operator("power"), _operator("power", swap=True)
    __matmul__, __rmatmul__ = _operator("matmul"), _operator("matmul", swap=True)
    __neg__, __getitem__ = _operator("negative"), _operator("getitem")


class Node:
    """One call of `layer` on the symbolic `inputs`, giving `output` (a KerasTensor)."""

    def __init__(self, layer, inputs, output_feature_shape, dtype):
        self.layer, self.inputs = layer, list(inputs)
        self.output = KerasTensor((None, *output_feature_shape), dtype, name=layer.name, node=self)


def is_symbolic(x):
    """True for a KerasTensor, or a list/tuple of them (a merge layer's inputs)."""
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(t, KerasTensor) for t in x)
    return isinstance(x, KerasTensor)
