"""The flat parameter arena: every trainable parameter of a model in one contiguous
1-D buffer, gradients in a twin, optimizer slots in more twins; parameters become
reshaped views. An optimizer step is then one update over the whole model."""

import numpy as np

from gpudl.backend import get_backend


class ParameterArena:
    """Lays out `parameters` (Parameter objects) in order and rebinds their `value`
    and `grad` to views of `params` and `grads`."""

    def __init__(self, parameters, dtype):
        xp = get_backend().xp
        self.parameters = list(parameters)
        sizes = [int(np.prod(p.shape)) for p in self.parameters]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.params = xp.zeros(int(self.offsets[-1]), dtype=dtype)
        self.grads = xp.zeros_like(self.params)
        for p, start, stop in zip(self.parameters, self.offsets[:-1], self.offsets[1:]):
            shape = p.shape
            self.params[start:stop] = xp.asarray(p.value, dtype=dtype).reshape(-1)
            p.value = self.params[start:stop].reshape(shape)
            p.grad = self.grads[start:stop].reshape(shape)
            p.arena = self  # so optimizer.apply(grads, model.trainable_weights) finds the arena

    @property
    def size(self):
        return int(self.offsets[-1])

    def new_twin(self):
        """A zeroed buffer shaped like the parameters (an optimizer slot)."""
        return get_backend().xp.zeros_like(self.params)

    def runs(self, selected):
        """Maximal contiguous [start, stop) ranges of the parameters with selected(p) true."""
        runs = []
        for p, start, stop in zip(self.parameters, self.offsets[:-1], self.offsets[1:]):
            if not selected(p):
                continue
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], int(stop))
            else:
                runs.append((int(start), int(stop)))
        return runs
