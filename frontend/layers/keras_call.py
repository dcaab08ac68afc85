"""KerasCall: how a layer written as in Keras, with `call(inputs, training=None)` and no
forward/backward of its own, runs in gpudl (Layer inherits it).

    forward(x, training)   training: call runs under PyTorch's autograd on tensors viewing x (an
                           autodiff.Piece, kept for backward); inference: call runs on the arrays
                           (keras.ops computes with xp, no engine)
    backward(dy)           autograd's J^T dy for the input; the weights' gradients (its own and its
                           sublayers') set in the arena
    add_loss(loss)         Keras's add_loss: joins the training loss and its gradient
Layers held in its attributes are its sublayers (Keras's tracking); called inside call on torch
tensors, a layer written with call runs its call, a built-in layer runs as one autograd node with
its fused forward and backward (autodiff.builtin_layer).
"""

import inspect

from gpudl.backend import floatx
from gpudl.frontend import autodiff


class KerasCall:
    """The call() path of Layer (see the module docstring)."""

    def uses_call(self):
        """True for a layer written with Keras's call() and no forward of its own."""
        cls = type(self)
        return cls.forward is KerasCall.forward and callable(getattr(cls, "call", None))

    def forward(self, x, training=False, logits=False):
        """A layer written with call(): in training, call runs under autograd (kept for backward);
        in inference, on the arrays alone."""
        if not self.uses_call():
            raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training) and "
                                      f"backward(dy), or Keras's call(inputs).")
        if not training:
            self._piece = None
            with autodiff.Tape(training=False, differentiates=False) as tape:
                output = self._run_call(x, False, {})
        else:
            self._piece = autodiff.Piece(lambda tensor: self._run_call(tensor, True, {}), [x],
                                         [self.input_gradient_needed], training=True)
            tape, output = self._piece.tape, self._piece.output
        self._activity_loss = tape.added_loss_value() if tape.added_losses else 0.0  # add_loss's, with the penalties
        return output

    def backward(self, dy):
        """A layer written with call(): autograd's J^T dy for the input; the weights' gradients
        (its own and its sublayers') are set, not added to."""
        if not self.uses_call():
            raise NotImplementedError(f"{type(self).__name__} must implement backward(dy)")
        if getattr(self, "_piece", None) is None:
            raise RuntimeError(f"Layer '{self.name}': backward needs a forward pass with training=True first.")
        for p in self.trainable_weights:
            p.grad[...] = 0
        return self._piece.backward(dy)[0]

    def _built_for(self, x):
        """Build from a batch's shape on first use; return it in the layer's dtype when floating."""
        if not self.built:
            self.build_for(tuple(x.shape[1:]), self.dtype or floatx())
        return x.astype(self.dtype, copy=False) if x.dtype.kind == "f" else x

    def _run_call(self, x, training, kwargs):
        """Keras's call, passing `training` only when call takes it."""
        if self._call_takes_training():
            kwargs = {**kwargs, "training": bool(training)}
        return self.call(x, **kwargs)

    def _call_takes_training(self):
        return "training" in inspect.signature(type(self).call).parameters

    def _call_traced(self, x, training, kwargs):
        tape = autodiff.current_tape()
        training = tape.training if training is None and tape is not None else bool(training)
        if not self.built:
            self.build_for(tuple(x.shape[1:]), self.dtype or floatx())
        if self.uses_call():
            return self._run_call(x, training, kwargs)
        return autodiff.builtin_layer(self, x, training)

    def add_loss(self, loss):
        """Keras's add_loss inside call: the loss (a scalar of ops) joins the training loss, and its
        gradient joins the backward pass."""
        if not autodiff.add_loss(loss):
            self._eager_losses = [*self.__dict__.get("_eager_losses", []), loss]



def tracked_layers(owner):
    """The layers held in `owner`'s attributes (alone or in lists and tuples), in the order they
    were set, each once (Keras's layer tracking)."""
    found, seen = [], {id(owner)}
    for value in vars(owner).values():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, KerasCall) and id(item) not in seen:
                seen.add(id(item))
                found.append(item)
    return found
