"""The fusion plan of a built model: consecutive BatchNormalization -> ReLU [-> Dropout]
layers run on the GPU backends as one elementwise pass forward and one backward; a Dense
not followed by batch-norm folds its bias add and ReLU [and the Dropout after it] into
one pass each way (gpudl.frontend.layers.fused_block).

    forward   statistics reduction, then ONE pass:  y = dropout(relu(gamma * x_hat + beta))
    backward  ONE reduction of (dy', dy' * x_hat), then ONE pass for dx, where
              dy' = where(y > 0, dy / (1 - rate), 0)
Every element of y that is > 0 is a kept, positive one, so the block's output is the gate
of its backward: no mask is stored and none is drawn again. The head (the batch-norm
layer) calls the fused op with forward_arguments / backward_arguments; the ReLU and the
Dropout of an active block pass their input through (inside_active_block). The layers stay
separate objects (summary, weights, configs and saving are unchanged), and the NumPy backend
keeps the unfused reference path. Blocks are planned only in a chain of layers (a Sequential
model): in a graph another layer might read the batch-norm's own output.
"""

from gpudl.frontend.layers.activation import Activation
from gpudl.frontend.layers.batch_normalization import BatchNormalization
from gpudl.frontend.layers.dense import Dense
from gpudl.frontend.layers.dropout import Dropout
from gpudl.frontend.layers.fused_block import FusedBlock
from gpudl.frontend.layers.relu import ReLU


def is_default_relu(layer):
    """ReLU() with default arguments, or Activation("relu") (exactly those classes)."""
    return type(layer) in (ReLU, Activation) and layer.activation == "relu"


def plan(leaves, chained=True, previous=()):
    """Mark the fusable runs of `leaves` (a model's layers in order) as FusedBlocks; returns
    them. The marks of `leaves` and of the `previous` plan's layers (one popped since) are
    cleared first."""
    for layer in [*leaves, *(layer for block in previous for layer in block.layers)]:
        layer.fused_block = None
    blocks, index = [], 0
    while chained and index < len(leaves):
        head, rest = leaves[index], leaves[index + 1:]
        block = _batch_norm_block(head, rest) or _dense_block(head, rest)
        if block is None:
            index += 1
            continue
        for layer in block.layers:
            layer.fused_block = block
        blocks.append(block)
        index += len(block.layers)
    return blocks


def _dropout(rest):
    return rest[0] if rest and type(rest[0]) is Dropout else None


def _batch_norm_block(head, rest):
    """BatchNormalization -> default ReLU [-> Dropout]."""
    if type(head) is BatchNormalization and rest and is_default_relu(rest[0]):
        return FusedBlock(head, rest[0], _dropout(rest[1:]))
    return None


def _dense_block(head, rest):
    """Dense(activation="relu") [-> Dropout], or a linear Dense -> default ReLU [-> Dropout], where
    no batch-norm follows the Dense (there the batch-norm block takes the ReLU)."""
    if type(head) is not Dense or head.activity_regularizer is not None:
        return None
    if head.activation == "relu" and not (rest and type(rest[0]) is BatchNormalization):
        return FusedBlock(head, None, _dropout(rest))
    if head.activation == "linear" and rest and is_default_relu(rest[0]):
        return FusedBlock(head, rest[0], _dropout(rest[1:]))
    return None
