"""Fused ops: one module per op, each holding its NumPy reference (the spec)
and, where written, its Triton and CuPy kernels with the same contract.

OPS is the one list of them. The backend's op table (`get_backend().ops.<name>`), `gpudl
selftest`, `gpudl bench` and the kernel tests read it, so adding a fused op is its module
here, one row below and its checks. The op table also has `dropout_train` and
`dropout_backward`, made by gpudl.backend from `dropout` (the NumPy path keeps the mask
for the backward, the GPU kernels draw it again).
"""

import importlib
from collections.abc import Callable
from typing import NamedTuple


class Op(NamedTuple):
    name: str  # its name in the op table: get_backend().ops.<name>
    module: str  # gpudl.kernels.<module>
    function: str  # the NumPy reference there; the GPU kernels are <function>_triton and <function>_cupy
    bench: str | None = None  # its row in `gpudl bench`; None: not timed on its own
    floor_elements: Callable | None = None  # bench: fewest elements one call reads plus writes, by shape


OPS = (
    Op("batchnorm_forward_train", "batchnorm", "forward_train",
       "batchnorm_forward", lambda N, C: 2 * N * C),  # read x, write y (the C-vectors are negligible)
    Op("batchnorm_forward_infer", "batchnorm", "forward_infer"),
    Op("batchnorm_backward", "batchnorm", "backward",
       "batchnorm_backward", lambda N, C: 3 * N * C),  # read x and dy, write dx
    Op("dropout", "dropout", "dropout",
       "dropout", lambda N, C: 2 * N * C),  # read x, write y; the mask is regenerated, never stored
    Op("dropout_relu", "dropout", "dropout_relu"),
    Op("dropout_relu_backward", "dropout", "dropout_relu_backward"),
    Op("normalize_dropout_relu", "dropout", "normalize_dropout_relu"),  # batch-norm's apply + ReLU + dropout
    Op("softmax", "softmax_cross_entropy", "softmax"),
    Op("softmax_cross_entropy", "softmax_cross_entropy", "softmax_cross_entropy",
       "softmax_cross_entropy", lambda m, C: 2 * m * C),  # read Z, write dZ
    Op("sgd", "optimizer_updates", "sgd"),
    Op("sgd_momentum", "optimizer_updates", "sgd_momentum"),
    Op("ema_momentum", "optimizer_updates", "ema_momentum"),
    Op("rmsprop", "optimizer_updates", "rmsprop"),
    Op("adam", "optimizer_updates", "adam",
       "adam", lambda n: 7 * n),  # read w, g, m, v; write w, m, v
)

MODULES = tuple(dict.fromkeys(op.module for op in OPS))  # in the order of OPS


def find(name):
    """The row of OPS named `name`."""
    for op in OPS:
        if op.name == name:
            return op
    raise KeyError(f"no fused op named {name!r} in gpudl.kernels.OPS")


def implementation(op, suffix=""):
    """The function of `op` (a row or its name): suffix "" for the NumPy reference,
    "_triton" or "_cupy" for a GPU kernel (the same signature)."""
    op = find(op) if isinstance(op, str) else op
    return getattr(importlib.import_module(f"{__name__}.{op.module}"), op.function + suffix)
