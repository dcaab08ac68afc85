"""Collectives of a data-parallel run, over torch.distributed (gloo on the CPU, NCCL on GPUs).

gpudl.distribution (frontend/distribution.py) starts the process group and makes a
DataParallel distribution current; this module is what the rest of the library asks:

    active()                      a distribution is current and has more than one process
    rank(), world_size()          this process's place (0 and 1 without a distribution)
    all_reduce(array, op="sum")   in place on a NumPy or CuPy array, every process the same shape
    broadcast(array, src=0)       in place
    all_gather_rows(array, rows)  the (rows[0] + rows[1] + ...) rows of every process, in rank order
    barrier()

Arrays are handed to torch without a copy: NumPy through torch.from_numpy, CuPy through
DLPack (the collective runs on torch's current stream, which the GPU backends share).
`shard()` is the current batch's place in the global batch (first row, rows, global rows),
set by the data adapter while fit or evaluate runs: batch normalization and dropout read it.
"""

from collections import namedtuple

import numpy as np

Shard = namedtuple("Shard", ["first_row", "rows", "global_rows"])
Shard.__doc__ = "This process's rows [first_row, first_row + rows) of a global batch of global_rows rows."

_state = {"active": False, "shard": None}


def _dist():
    import torch.distributed as dist

    return dist


def active():
    """Whether collectives run: a DataParallel distribution is current over more than one process."""
    return _state["active"]


def set_active(value):
    """Turned on and off by gpudl.distribution.set_distribution."""
    _state["active"] = bool(value)
    if not value:
        _state["shard"] = None


def rank():
    """This process's rank (0 without an active distribution)."""
    return _dist().get_rank() if _state["active"] else 0


def world_size():
    """The number of processes (1 without an active distribution)."""
    return _dist().get_world_size() if _state["active"] else 1


def is_rank_zero():
    """True on the process that writes files and prints (always, without a distribution)."""
    return rank() == 0


def shard():
    """The current batch's Shard, or None outside a sharded batch."""
    return _state["shard"] if _state["active"] else None


def set_shard(value):
    """Set by the data adapter before each sharded batch (None when the epoch ends)."""
    _state["shard"] = value


def split(n, parts):
    """Boundaries 0 = b0 <= b1 <= ... <= b_parts = n of `parts` near-equal contiguous parts
    (the first parts are the smaller ones, so a 1-row batch lands on the last process)."""
    return [n * i // parts for i in range(parts + 1)]


def shard_of(global_rows):
    """This process's Shard of a global batch of `global_rows` rows."""
    bounds = split(global_rows, world_size())
    first, stop = bounds[rank()], bounds[rank() + 1]
    return Shard(first, stop - first, global_rows)


def as_tensor(array):
    """A torch tensor sharing `array`'s memory: torch.from_numpy, or DLPack for a CuPy array."""
    import torch

    if isinstance(array, np.ndarray):
        if not array.flags.c_contiguous:
            raise ValueError(f"gpudl.collectives: a collective needs a C-contiguous array; received one of shape "
                             f"{array.shape} with strides {array.strides}.")
        return torch.from_numpy(array)
    return torch.from_dlpack(array)


def _op(op):
    dist = _dist()
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    if op not in ops:
        raise ValueError(f"Invalid value received for argument `op`. Expected one of {sorted(ops)}. Received: op={op!r}")
    return ops[op]


def all_reduce(array, op="sum"):
    """array <- op over the processes of array, in place (a no-op without an active distribution).
    Returns `array`."""
    if _state["active"] and array.size:
        _dist().all_reduce(as_tensor(array), op=_op(op))
    return array


def average(array):
    """array <- the mean over the processes of array, in place (a custom training loop's gradients,
    each of its process's equal share of the global batch). Returns `array`."""
    if _state["active"] and array.size:
        all_reduce(array)
        array /= array.dtype.type(world_size())
    return array


def broadcast(array, src=0):
    """array <- process `src`'s array, in place (a no-op without an active distribution). Returns `array`."""
    if _state["active"] and array.size:
        _dist().broadcast(as_tensor(array), src=src)
    return array


def broadcast_int(value, src=0):
    """Process `src`'s Python int (64-bit signed range) on every process."""
    return int(broadcast(np.array([value], dtype=np.int64), src)[0])


def _xp_of(array):
    if isinstance(array, np.ndarray):
        return np
    import cupy

    return cupy


def all_gather_rows(array, rows):
    """Concatenate every process's `array` along axis 0, in rank order; `rows[r]` is process r's
    number of rows (known everywhere, so no sizes are exchanged). Each process sends its rows
    padded to the largest count; the padding is dropped."""
    if not _state["active"]:
        return array
    xp = _xp_of(array)
    padded = xp.zeros((max(rows), *array.shape[1:]), dtype=array.dtype)
    padded[:len(array)] = array
    parts = [xp.empty_like(padded) for _ in rows]
    _dist().all_gather([as_tensor(part) for part in parts], as_tensor(padded))  # written through the views
    return xp.concatenate([part[:count] for part, count in zip(parts, rows)])


def barrier():
    """Wait until every process gets here (a no-op without an active distribution)."""
    if _state["active"]:
        _dist().barrier()
