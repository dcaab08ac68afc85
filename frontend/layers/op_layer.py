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
        self.slots = [i for i, a in enumerate(self.args) if isinstance(a, KerasTensor)]
        self.takes_list = True

    def _apply(self, *tensors):
        args = list(self.args)
        for slot, tensor in zip(self.slots, tensors):
            args[slot] = tensor
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


def symbolic_call(fn, args, kwargs):
    """The symbolic output of `fn` applied to KerasTensors (a new node of the graph)."""
    layer = OpLayer(fn, args, kwargs)
    return layer([args[i] for i in layer.slots])
