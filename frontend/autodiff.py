"""User code differentiated by PyTorch's autograd, one piece at a time, sharing memory with gpudl's arrays.

Built-in layers and losses keep their hand-written fused forward and backward. A piece of the user's
code (a layer's `call`, a loss's `call` or plain function, a custom activation or regularizer) runs
on torch tensors that share memory with the backend's arrays (`torch.from_numpy` on the host, DLPack
for CuPy), so no copy is made; autograd records it, and its vector-Jacobian product
    dL/d input = J(input)^T dL/d output          (torch.autograd.grad with grad_outputs=dL/d output)
goes back into gpudl's backward pass (the input gradient to the layer below, the weight gradients
into the parameter arena).

While a piece runs, a `Tape` is active: each weight the user's code reads (a Parameter, through
`keras.ops` or an operator) becomes a leaf tensor on first use, viewing the arena; built-in layers
called inside the piece run as `BuiltinLayer` nodes, their fused forward and backward wrapped for
autograd. torch is the optional extra `pip install "gpudl[autodiff]"`.
"""

import sys
import threading

import numpy as np

from gpudl.backend import get_backend

INSTALL_HINT = 'pip install "gpudl[autodiff]"'
_local = threading.local()


def torch_module(purpose="differentiate user code"):
    """The torch module, or an ImportError naming the extra to install."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch
    try:
        import torch
    except ImportError:
        raise ImportError(f"gpudl needs PyTorch to {purpose} (keras.ops code, a layer's call(), a custom loss, "
                          f"activation or regularizer): {INSTALL_HINT}. Built-in layers and losses need no "
                          f"extra.") from None
    return torch


def is_tensor(x):
    """True for a torch tensor (only possible once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_torch(array):
    """A torch tensor sharing memory with a backend array (DLPack for device arrays)."""
    torch = torch_module()
    if isinstance(array, np.ndarray):
        if not array.flags.writeable:  # torch wants writeable memory; a read-only view is copied once
            array = array.copy()
        return torch.from_numpy(array)
    if isinstance(array, np.generic):
        return torch.from_numpy(np.asarray(array))
    return torch.from_dlpack(array)


def to_array(tensor):
    """The backend array sharing memory with a torch tensor (no copy; detached)."""
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        return tensor.numpy()
    return get_backend().xp.from_dlpack(tensor)


class Tape:
    """What one run of user code reads and adds: when it `differentiates`, weights become leaf
    tensors on first use (`leaves`, in order); losses the code adds (`add_loss`) are kept (summed to
    a scalar each); `training` is the mode it runs in."""

    def __init__(self, training, differentiates=True):
        self.training, self.differentiates = training, differentiates
        self.leaves = {}  # id(Parameter) -> (Parameter, leaf tensor)
        self.added_losses = []

    def __enter__(self):
        self.outer = current_tape()
        _local.tape = self
        return self

    def __exit__(self, *exc_info):
        _local.tape = self.outer

    def added_loss_value(self):
        """The sum of the added losses, a 0-d float64 backend array."""
        xp = get_backend().xp
        total = xp.zeros((), dtype=np.float64)
        for loss in self.added_losses:
            total = total + (to_array(loss.detach().double()) if is_tensor(loss) else xp.asarray(loss, dtype=np.float64))
        return total

    def leaf(self, param):
        entry = self.leaves.get(id(param))
        if entry is None:
            tensor = to_torch(param.value)
            tensor.requires_grad_(bool(param.trainable) and tensor.is_floating_point())
            entry = self.leaves[id(param)] = (param, tensor)
        return entry[1]


def current_tape():
    return getattr(_local, "tape", None)


def unwrap(x):
    """A variable (a Parameter or a metric Variable: `is_variable`) as what code computes with: its
    leaf tensor while a piece runs (so autograd sees the weight), else its array."""
    if getattr(type(x), "is_variable", False):
        tape = current_tape()
        if tape is not None and tape.differentiates and hasattr(x, "trainable"):
            return tape.leaf(x)
        return x.value
    return x


class Piece:
    """One run of user code `fn(*inputs)` under autograd: `output` (a backend array) now, and
    `backward(d_output)` -> the input gradients (None where not wanted) later; the weights read
    get their gradients added into `param.grad`, and losses added with add_loss join with
    gradient 1 (they are part of the total loss)."""

    def __init__(self, fn, inputs, wants_grad, training=False):
        torch = torch_module()
        self.tape = Tape(training)
        self.inputs = [to_torch(a).requires_grad_(bool(w)) if a is not None else None
                       for a, w in zip(inputs, wants_grad)]
        with self.tape, torch.enable_grad():
            out = fn(*self.inputs)
        self.output_tensor = as_tensor(out)
        self.output = to_array(self.output_tensor)
        self.added_losses = self.tape.added_losses

    def backward(self, d_output):
        torch = torch_module()
        roots, grads = [], []
        if self.output_tensor.requires_grad:
            roots.append(self.output_tensor)
            grads.append(to_torch(d_output).to(self.output_tensor.dtype))
        for loss in self.added_losses:
            if loss.requires_grad:
                roots.append(loss)
                grads.append(torch.ones_like(loss))
        wanted = [t for t in self.inputs if t is not None and t.requires_grad]
        params = [(p, t) for p, t in self.tape.leaves.values() if t.requires_grad]
        targets = wanted + [t for _, t in params]
        if not roots or not targets:
            return [None for _ in self.inputs]
        found = torch.autograd.grad(roots, targets, grads, allow_unused=True)
        for (param, _), grad in zip(params, found[len(wanted):]):
            if grad is not None and param.grad is not None:
                param.grad += to_array(grad).astype(param.grad.dtype, copy=False)
        input_grads = iter(found[:len(wanted)])
        result = []
        for tensor in self.inputs:
            if tensor is None or not tensor.requires_grad:
                result.append(None)
            else:
                grad = next(input_grads)
                result.append(get_backend().xp.zeros(tuple(tensor.shape), dtype=_numpy_dtype(tensor)) if grad is None
                              else to_array(grad))
        return result


def _numpy_dtype(tensor):
    return str(tensor.dtype).replace("torch.", "")


def as_tensor(value):
    """A piece's output as a torch tensor (user code may return an array it did not differentiate)."""
    if is_tensor(value):
        return value
    return to_torch(get_backend().xp.asarray(value))


def vjp(fn, x, d_output):
    """J^T d_output of an elementwise or array function fn at x (a custom activation's backward)."""
    piece = Piece(fn, [x], [True])
    return piece.backward(d_output)[0]


def add_loss(loss):
    """Keras's layer.add_loss inside a differentiated piece: the loss joins the total."""
    tape = current_tape()
    if tape is None:
        return False
    if tape.differentiates:
        tape.added_losses.append(as_tensor(loss).sum())
    else:
        tape.added_losses.append(get_backend().xp.asarray(to_array(loss) if is_tensor(loss) else loss).sum())
    return True


def builtin_layer(layer, x, training):
    """A built-in layer (fused forward and backward) called on a torch tensor inside a piece: a node of
    autograd's graph whose backward is the layer's own backward (weight gradients into the arena)."""
    global _BuiltinLayer
    if _BuiltinLayer is None:
        _BuiltinLayer = _builtin_layer_function(torch_module())
    return _BuiltinLayer.apply(x, layer, training)


_BuiltinLayer = None


def _builtin_layer_function(torch):
    """The torch.autograd.Function running a built-in layer's forward and backward (made once)."""

    class BuiltinLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, tensor, layer, training):
            layer.input_gradient_needed = bool(ctx.needs_input_grad[0])
            y = layer.forward(to_array(tensor), training=training)
            ctx.layer, ctx.cache = layer, dict(layer.__dict__)  # the layer may run again before this backward
            return to_torch(y)

        @staticmethod
        def backward(ctx, d_output):
            layer = ctx.layer
            layer.__dict__.update(ctx.cache)
            earlier = [p.grad.copy() for p in layer.trainable_weights]
            dx = layer.backward(get_backend().xp.ascontiguousarray(to_array(d_output)))
            for p, grad in zip(layer.trainable_weights, earlier):  # this call's gradient adds to the others'
                p.grad += grad
            return None if dx is None else to_torch(dx), None, None

    return BuiltinLayer
