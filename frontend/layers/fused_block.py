"""A fused BatchNormalization -> ReLU [-> Dropout] block at run time (see
gpudl.frontend.layers.fusion for the plan): the arguments its head passes to the fused ops,
and whether its ReLU and Dropout pass their input through."""

from gpudl.backend import get_backend


class FusedBlock:
    """One BatchNormalization -> ReLU [-> Dropout] run; `active` while its last forward ran fused."""

    def __init__(self, batch_norm, relu, dropout=None):
        self.batch_norm, self.relu, self.dropout = batch_norm, relu, dropout
        self.active, self.rate = False, 0.0

    @property
    def layers(self):
        return [layer for layer in (self.batch_norm, self.relu, self.dropout) if layer is not None]


def _block_headed_by(layer):
    block = getattr(layer, "fused_block", None)
    return block if block is not None and block.batch_norm is layer else None


def forward_arguments(layer, training):
    """The fused op's extra arguments for `layer`'s batchnorm_forward_train ({}: run unfused).
    Called by the batch-norm layer each forward, training or not (it decides `active`)."""
    block = _block_headed_by(layer)
    if block is None:
        return {}
    block.active = bool(training) and get_backend().fuses_passes
    if not block.active:
        return {}
    dropout = block.dropout
    block.rate = dropout.rate if dropout is not None and dropout.enabled and dropout.rate > 0 else 0.0
    if not block.rate:
        return {"relu": True}
    counter = dropout.seed_counter
    get_backend().xp.add(counter[1:], 1, out=counter[1:])  # Dropout.forward's advance, on the device
    return {"relu": True, "dropout_rate": block.rate, "seed": dropout.base_seed, "seed_counter": counter}


def backward_arguments(layer, output):
    """The fused op's extra arguments for batchnorm_backward: gate on the block's output."""
    block = _block_headed_by(layer)
    if block is None or not block.active:
        return {}
    return {"gate": output, "gate_scale": 1.0 / (1.0 - block.rate)}


def inside_active_block(layer):
    """True for the ReLU or Dropout of a block whose last forward ran fused (pass through)."""
    block = getattr(layer, "fused_block", None)
    return block is not None and block.active and layer is not block.batch_norm
