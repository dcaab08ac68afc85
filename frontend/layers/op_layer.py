"""OpLayer: a keras.ops call on symbolic tensors, as a node of a functional graph.

`ops.relu(x)` or `ops.add(a, b)` on KerasTensors records a node whose layer is an OpLayer holding
the op and its other (constant) arguments; when the model runs, the op runs on the arrays, and in
training under PyTorch's autograd, whose vector-Jacobian product is the node's backward
(gpudl.frontend.autodiff). It has no weights.
"""

from gpudl.frontend import autodiff
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.node import KerasTensor


class OpLayer(Layer):
    """One op call: `fn(*args, **kwargs)` with the KerasTensors among args taken from the graph."""

    def __init__(self, fn, args, kwargs):
        super().__init__(name=fn.__name__)
        self.fn, self.args, self.kwargs = fn, list(args), dict(kwargs)
        self.slots = symbolic_slots(self.args)
        self.takes_list = True

    def _apply(self, *tensors):
        args = list(self.args)
        for i in {i for i, j in self.slots if j is not None}:  # a list holding tensors (concatenate)
            args[i] = list(args[i])
        for (i, j), tensor in zip(self.slots, tensors):
            if j is None:
                args[i] = tensor
            else:
                args[i][j] = tensor
        return self.fn(*args, **self.kwargs)

    def output_feature_shape(self, feature_shapes):
        probes = [self.xp.zeros((1, *shape), dtype=self.dtype) for shape in feature_shapes]
        return tuple(self._apply(*probes).shape[1:])

    def forward(self, inputs, training=False, logits=False):
        if not training:
            self._piece = None
            return self._apply(*inputs)
        self._piece = autodiff.Piece(self._apply, inputs, [self.input_gradient_needed] * len(inputs), training=True)
        return self._piece.output

    def backward(self, dy):
        return self._piece.backward(dy)

    def get_config(self):
        raise NotImplementedError(f"OpLayer '{self.name}': a functional model with ops is not saved by config in "
                                  f"gpudl; save its weights.")


def symbolic_slots(args):
    """Where the KerasTensors are among args: (i, None) for args[i], (i, j) for args[i][j] (a list
    of tensors, as concatenate takes)."""
    slots = []
    for i, arg in enumerate(args):
        if isinstance(arg, KerasTensor):
            slots.append((i, None))
        elif isinstance(arg, (list, tuple)):
            slots.extend((i, j) for j, item in enumerate(arg) if isinstance(item, KerasTensor))
    return slots


def symbolic_call(fn, args, kwargs):
    """The symbolic output of `fn` applied to KerasTensors (a new node of the graph)."""
    layer = OpLayer(fn, args, kwargs)
    return layer([args[i] if j is None else args[i][j] for i, j in layer.slots])
