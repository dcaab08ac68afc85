"""A bounds checker for the Triton interpreter, and NaN-filled launcher outputs.

`install()` (in a process where TRITON_INTERPRET=1) patches the interpreter so that every
active lane of every tl.load and tl.store must fall inside one of the launch's tensor
arguments (its first byte to its last); a lane outside raises SanitizerError naming the
kernel, the program, the lane and the argument it strayed from. On a GPU such a read
returns garbage or faults only sometimes; the plain interpreter reads it silently. It also
makes the CPU launchers' outputs start as NaN (gpudl.kernels._triton_util.cpu_namespace),
so an element a kernel never writes cannot pass.

`launch_ranges` is the checker's own record of the running launch, for the tests.
"""

import numpy as np


class SanitizerError(RuntimeError):
    """A load or store outside every tensor argument of the launch."""


class _Launch:
    """The running launch: kernel name and the byte range of each tensor argument."""
    kernel = None
    arguments = []  # [(name, start, stop, description)]
    starts = stops = np.zeros(0, np.int64)  # merged ranges, sorted


launch_ranges = _Launch()
_installed = False


def _tensor_range(name, tensor):
    start = tensor.data_ptr()
    span = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())) + 1
    stop = start + (span * tensor.element_size() if tensor.numel() else 0)
    return name, start, stop, f"`{name}` (shape {tuple(tensor.shape)}, {str(tensor.dtype).replace('torch.', '')})"


def _record(kernel, names, args, kwargs):
    """Record the tensor arguments of a launch (as the interpreter hands them to the kernel)."""
    arguments = [_tensor_range(name, a) for name, a in list(zip(names, args)) + list(kwargs.items())
                 if hasattr(a, "data_ptr") and hasattr(a, "element_size")]
    merged = []
    for _, start, stop, _ in sorted(arguments, key=lambda a: a[1]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    launch_ranges.kernel = kernel
    launch_ranges.arguments = arguments
    launch_ranges.starts = np.array([m[0] for m in merged], np.int64)
    launch_ranges.stops = np.array([m[1] for m in merged], np.int64)


def _nearest(address):
    """Where `address` lies relative to the argument nearest to it."""
    def distance(argument):
        _, start, stop, _ = argument
        return start - address if address < start else address - stop + 1

    if not launch_ranges.arguments:
        return f"address {address:#x} (the launch has no tensor arguments)"
    _, start, stop, description = min(launch_ranges.arguments, key=distance)
    if address < start:
        return f"{start - address} bytes before the start of {description}"
    return f"{address - stop} bytes past the end of {description}"


def check_access(kind, addresses, mask, itemsize, program):
    """Raise SanitizerError unless every active lane's `itemsize` bytes at its address lie in
    one tensor argument of the running launch. addresses: uint64 array; mask: bool, same shape."""
    addresses = np.asarray(addresses)
    active = np.broadcast_to(np.asarray(mask, bool), addresses.shape)
    lanes = addresses[active].astype(np.int64)
    if lanes.size == 0:
        return
    which = np.searchsorted(launch_ranges.starts, lanes, side="right") - 1
    inside = (which >= 0) & (lanes + itemsize <= launch_ranges.stops[np.maximum(which, 0)])
    if inside.all():
        return
    bad = int(np.flatnonzero(~inside)[0])
    lane = np.unravel_index(np.flatnonzero(active.reshape(-1))[bad], addresses.shape) if addresses.ndim else ()
    outside = int(np.count_nonzero(~inside))
    raise SanitizerError(f"{launch_ranges.kernel}: program {program}: tl.{kind} lane {tuple(int(i) for i in lane)} "
                         f"reads or writes {itemsize} bytes at {_nearest(int(lanes[bad]))} ({outside} of {lanes.size} "
                         f"active lanes outside every tensor argument)")


def install():
    """Patch this process's Triton interpreter (idempotent); turn on NaN-filled outputs."""
    global _installed
    from gpudl.kernels import _triton_util

    _triton_util.cpu_namespace = _triton_util.POISONED_NUMPY
    if _installed:
        return
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    plain_load, plain_store = builder.create_masked_load, builder.create_masked_store
    plain_init = interpreter.GridExecutor._init_args_hst

    def init_args_hst(self, args_dev, kwargs):
        args_hst, kwargs_hst = plain_init(self, args_dev, kwargs)
        _record(self.fn.__name__, self.arg_names, args_hst, kwargs_hst)
        return args_hst, kwargs_hst

    def masked_load(ptrs, mask, other, cache_policy, is_volatile):
        itemsize = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        check_access("load", ptrs.data, mask.data, itemsize, builder.grid_idx)
        return plain_load(ptrs, mask, other, cache_policy, is_volatile)

    def masked_store(ptrs, value, mask, cache_policy):
        itemsize = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        check_access("store", ptrs.data, mask.data, itemsize, builder.grid_idx)
        return plain_store(ptrs, value, mask, cache_policy)

    interpreter.GridExecutor._init_args_hst = init_args_hst
    builder.create_masked_load = masked_load
    builder.create_masked_store = masked_store
    _installed = True
