"""A fused block at run time (gpudl.frontend.layers.fusion makes the plan): the arguments
its head passes to the fused ops, and whether its ReLU and Dropout pass their input through.

    BatchNormalization -> ReLU [-> Dropout]     batchnorm_forward_train(relu, dropout_rate, ...)
                                                batchnorm_backward(gate=output, gate_scale=...)
    Dense(relu) [-> Dropout], Dense -> ReLU [-> Dropout]   (not followed by batch-norm)
        forward   a = normalize_dropout_relu(x W, 0, 1, 1, bias): the bias add, ReLU and dropout
                  in one pass (with mean 0 and rstd * gamma = 1 the apply pass is z + bias exactly)
        backward  dz = dropout_relu_backward(da, a): ReLU and dropout gates in one pass
        Under DataParallel both take the element offset of the process's rows (first row *
        width), so the mask is those rows of the global batch's, as the Dropout layer draws it.
        A batch-norm head is not fused under DataParallel (its statistics are the global batch's).
"""

from gpudl import collectives
from gpudl.backend import get_backend


class FusedBlock:
    """One planned run: its head (a BatchNormalization or a Dense), then an optional ReLU
    layer and Dropout; `active` while the head's last forward ran fused."""

    def __init__(self, head, relu, dropout=None):
        self.head, self.relu, self.dropout = head, relu, dropout
        self.active, self.rate = False, 0.0
        self.key = None  # a Dense head's (seed, seed_counter, offset) of its last fused forward
        self.columns = None  # a Dense head's (zeros, ones) per column: mean 0, rstd 1, gamma 1

    @property
    def layers(self):
        return [layer for layer in (self.head, self.relu, self.dropout) if layer is not None]

    def dropout_arguments(self, training):
        """Sets `rate` (0: no dropout this call) and returns the dropout arguments of the fused op,
        advancing the Dropout's key counter on the device as its forward would."""
        dropout = self.dropout
        self.rate = dropout.rate if training and dropout is not None and dropout.enabled and dropout.rate > 0 else 0.0
        if not self.rate:
            return {}
        counter = dropout.seed_counter
        get_backend().xp.add(counter[1:], 1, out=counter[1:])  # one launch, on the device
        return {"dropout_rate": self.rate, "seed": dropout.base_seed, "seed_counter": counter}


def _block_headed_by(layer):
    block = getattr(layer, "fused_block", None)
    return block if block is not None and block.head is layer else None


def forward_arguments(layer, training):
    """The fused op's extra arguments for a batch-norm head's batchnorm_forward_train ({}: run
    unfused). Called by the batch-norm layer each forward, training or not (it decides `active`)."""
    block = _block_headed_by(layer)
    if block is None:
        return {}
    block.active = bool(training) and get_backend().fuses_passes
    return {"relu": True, **block.dropout_arguments(training)} if block.active else {}


def backward_arguments(layer, output):
    """The fused op's extra arguments for batchnorm_backward: gate on the block's output."""
    block = _block_headed_by(layer)
    if block is None or not block.active:
        return {}
    return {"gate": output, "gate_scale": 1.0 / (1.0 - block.rate)}


def dense_forward(layer, product, training):
    """A Dense head's output relu(x W + bias) [dropped] in one pass from product = x W, or None
    (run unfused)."""
    block = _block_headed_by(layer)
    if block is None:
        return None
    block.active = get_backend().fuses_passes
    if not block.active:
        return None
    arguments = block.dropout_arguments(training)
    rate = arguments.get("dropout_rate", 0.0)
    xp, width = get_backend().xp, product.shape[1]
    shard = collectives.shard()  # data parallel: this process's rows of the global batch's mask
    offset = 0 if shard is None else shard.first_row * width
    block.key = (arguments.get("seed", 0), arguments.get("seed_counter"), offset)
    if block.columns is None or block.columns[0].shape[0] != width:
        block.columns = (xp.zeros(width, product.dtype), xp.ones(width, product.dtype))
    zeros, ones = block.columns
    bias = layer.bias.value if layer.use_bias else zeros
    return layer.ops.normalize_dropout_relu(product, zeros, ones, ones, bias, rate, *block.key)


def dense_backward(layer, da, output):
    """dL/dz of a Dense head whose forward ran fused (the ReLU and dropout gates), or None."""
    block = _block_headed_by(layer)
    if block is None or not block.active:
        return None
    return layer.ops.dropout_relu_backward(da, output, block.rate, *block.key)


def inside_active_block(layer):
    """True for the ReLU or Dropout of a block whose last forward ran fused (pass through)."""
    block = getattr(layer, "fused_block", None)
    return block is not None and block.active and layer is not block.head
