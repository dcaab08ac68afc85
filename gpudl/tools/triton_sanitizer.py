"""A bounds checker for the Triton interpreter, and NaN-filled launcher outputs.

`install()` (in a process where TRITON_INTERPRET=1) patches the interpreter so that every
active lane of every tl.load, tl.store and atomic (tl.atomic_add ... tl.atomic_cas) must lie
inside the tensor argument its pointer derives from (that argument's first byte to its
last), not merely inside some argument: a load that runs off the end of `x` into an argument
`y` allocated right after it is caught. The arguments are the launch's tensors, the tensors
in its tuples (`pair[0]`) and its tensor descriptors' bases (`x_desc.base`). Each pointer
argument's interpreter handle carries its argument, and the ops that make pointers from
pointers pass it on: addptr, splat, broadcast, expand_dims, reshape, trans/permute, bitcast,
cat, join, split, gather, a descriptor's load and store, and where when both sides share one
argument or the condition picks the same side in every lane.

A pointer that no longer knows its argument (made from an integer, loaded from memory, a
block's `.T`, a where mixing two arguments lane by lane) is checked by call site instead:
every active lane must lie inside some tensor argument, and the arguments that hold all the
lanes one call site touches (its source line, with the lines of the @triton.jit helpers it
was reached through), over all the programs of the launch, must have one in common. A site
whose lanes span two arguments, or that reads `x` in one program and `y` in another,
raises (so does a where that mixes two arguments lane by lane, which a GPU would run).
Arguments may overlap (an in-place launch passes one array as two arguments).

A breach raises SanitizerError naming the kernel, the program, the lane, the argument and
how far past its end (or before its start) the lane is, and the call site. On a GPU such a
read returns garbage or faults only sometimes; the plain interpreter reads it silently.
`install()` also makes the CPU launchers' outputs start as NaN
(gpudl.kernels._triton_util.cpu_namespace), so an element a kernel never writes cannot pass.

Races between programs: a GPU runs a launch's programs concurrently, in any order, while the
interpreter runs them one after another, so a program that reads or writes an element
another program writes (an accumulation without atomics, a partial sum stored in one place)
can pass here and be wrong there. Each launch's loaded and stored element addresses are
kept per program; at the end of the launch an element stored by one program and loaded or
stored by another raises SanitizerError naming the kernel, both programs and the argument.
Atomics may be shared between programs.

Not seen: a lane inside its own argument but at the wrong element (a wrong stride or
offset). `launch_ranges` is the checker's record of the running launch and `accesses`
counts the accesses checked each way, for the tests.
"""

import os
import sys

import numpy as np


class SanitizerError(RuntimeError):
    """A load, store or atomic outside the tensor argument its pointer derives from (or outside
    every tensor argument, or at a call site that addresses two arguments)."""


class _Launch:
    """The running launch: kernel name, the byte range of each tensor argument, and what each
    call site of a pointer without an argument has addressed so far."""
    kernel = None
    arguments = []  # [(name, start, stop, description)]
    of_object = {}  # id(host tensor) -> its entry in arguments
    starts = stops = np.zeros(0, np.int64)  # merged ranges, sorted
    sites = {}  # call site -> (bool per argument: contains every lane so far, first program)
    loads, stores = [], []  # [(element addresses, itemsize, program)] of the plain loads and stores


launch_ranges = _Launch()
accesses = {"by argument": 0, "by call site": 0}  # loads, stores and atomics checked, this process
SOURCE = "gpudl.argument"  # TensorHandle.attr key: the argument a pointer derives from
_installed = False


def _tensor_range(name, tensor):
    start = tensor.data_ptr()
    span = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())) + 1
    stop = start + (span * tensor.element_size() if tensor.numel() else 0)
    return name, start, stop, f"`{name}` (shape {tuple(tensor.shape)}, {str(tensor.dtype).replace('torch.', '')})"


def _tensors(name, value):
    """The (name, tensor) pairs in one argument: a tensor, a tuple's tensors, a descriptor's base."""
    if isinstance(value, tuple):
        return [pair for i, v in enumerate(value) for pair in _tensors(f"{name}[{i}]", v)]
    if hasattr(value, "base") and hasattr(value, "block_shape"):  # a TensorDescriptor
        return _tensors(f"{name}.base", value.base)
    return [(name, value)] if hasattr(value, "data_ptr") and hasattr(value, "element_size") else []


def _record(kernel, names, args, kwargs):
    """Record the tensor arguments of a launch (as the interpreter hands them to the kernel)."""
    tensors = [pair for name, a in list(zip(names, args)) + list(kwargs.items()) for pair in _tensors(name, a)]
    arguments = [_tensor_range(name, a) for name, a in tensors]
    merged = []
    for _, start, stop, _ in sorted(arguments, key=lambda a: a[1]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    launch_ranges.kernel = kernel
    launch_ranges.arguments = arguments
    launch_ranges.of_object = {id(a): argument for (_, a), argument in zip(tensors, arguments)}
    launch_ranges.starts = np.array([m[0] for m in merged], np.int64)
    launch_ranges.stops = np.array([m[1] for m in merged], np.int64)
    launch_ranges.sites = {}
    launch_ranges.loads, launch_ranges.stores = [], []


def _where(address, argument):
    """Where `address` lies relative to `argument`."""
    _, start, stop, description = argument
    if address < start:
        return f"{start - address} bytes before the start of {description}"
    return f"{address - stop} bytes past the end of {description}"


def _nearest(address):
    """Where `address` lies relative to the argument nearest to it."""
    def distance(argument):
        _, start, stop, _ = argument
        return start - address if address < start else address - stop + 1

    if not launch_ranges.arguments:
        return f"address {address:#x} (the launch has no tensor arguments)"
    return _where(address, min(launch_ranges.arguments, key=distance))


def _call_site():
    """The running load's or store's place in the kernel: ((file, line), ...) from the innermost
    @triton.jit function out to the kernel, read from the Python frames."""
    import triton
    from triton.runtime import interpreter

    kernel_code = {fn.__code__ for fn in interpreter.InterpretedFunction.rewritten_fn.values()}
    triton_files = os.path.dirname(triton.__file__)
    frame, site = sys._getframe(1), []
    while frame is not None:
        if frame.f_code in kernel_code:
            site.append((frame.f_code.co_filename, frame.f_lineno))
        elif site and not frame.f_code.co_filename.startswith(triton_files):
            break  # past the kernel, in its launcher
        frame = frame.f_back
    return tuple(site)


def _describe_site(site):
    lines = [f"{os.path.basename(path)}:{line}" for path, line in site]
    return lines[0] + "".join(f" (called from {line})" for line in lines[1:]) if lines else "an unknown line"


def _lane(active, addresses, index):
    """The lane (index into the pointer block) of the index-th active lane."""
    if not addresses.ndim:
        return ()
    return tuple(int(i) for i in np.unravel_index(np.flatnonzero(active.reshape(-1))[index], addresses.shape))


def _names(contains):
    return " or ".join(launch_ranges.arguments[i][3] for i in np.flatnonzero(contains))


def check_access(kind, addresses, mask, itemsize, program, source=None):
    """Raise SanitizerError unless every active lane's `itemsize` bytes at its address lie in
    `source` (the argument the pointer derives from) or, with no source, in one tensor argument
    that this call site has addressed in every lane and program of the launch so far.
    addresses: uint64 array; mask: bool, same shape."""
    addresses = np.asarray(addresses)
    active = np.broadcast_to(np.asarray(mask, bool), addresses.shape)
    lanes = addresses[active].astype(np.int64)
    if lanes.size == 0:
        return
    at = f"{launch_ranges.kernel}: program {program}: tl.{kind}"
    if kind in ("load", "store"):
        getattr(launch_ranges, kind + "s").append((lanes, itemsize, tuple(program)))
    if source is not None:
        accesses["by argument"] += 1
        _check_in_argument(at, lanes, itemsize, source, lambda index: _lane(active, addresses, index))
    else:
        accesses["by call site"] += 1
        _check_call_site(at, lanes, itemsize, program, lambda index: _lane(active, addresses, index))


def _check_in_argument(at, lanes, itemsize, source, lane):
    _, start, stop, _ = source
    if lanes.min() >= start and lanes.max() + itemsize <= stop:
        return
    outside = ~((lanes >= start) & (lanes + itemsize <= stop))
    bad = int(np.flatnonzero(outside)[0])
    raise SanitizerError(f"{at} lane {lane(bad)} reads or writes {itemsize} bytes at {_where(int(lanes[bad]), source)} "
                         f"({int(np.count_nonzero(outside))} of {lanes.size} active lanes outside `{source[0]}`, the "
                         f"argument its pointer derives from) at {_describe_site(_call_site())}")


def _check_call_site(at, lanes, itemsize, program, lane):
    site = _call_site()
    which = np.searchsorted(launch_ranges.starts, lanes, side="right") - 1
    inside = (which >= 0) & (lanes + itemsize <= launch_ranges.stops[np.maximum(which, 0)])
    if not inside.all():
        bad = int(np.flatnonzero(~inside)[0])
        raise SanitizerError(f"{at} lane {lane(bad)} reads or writes {itemsize} bytes at {_nearest(int(lanes[bad]))} "
                             f"({int(np.count_nonzero(~inside))} of {lanes.size} active lanes outside every tensor "
                             f"argument) at {_describe_site(site)}")
    starts = np.array([a[1] for a in launch_ranges.arguments], np.int64)
    stops = np.array([a[2] for a in launch_ranges.arguments], np.int64)
    within = (lanes[:, None] >= starts) & (lanes[:, None] + itemsize <= stops)  # lane x argument
    so_far = np.logical_and.accumulate(within, axis=0)  # the arguments holding lanes 0 to i
    if not so_far[-1].any():
        bad = int(np.flatnonzero(~so_far.any(axis=1))[0])
        raise SanitizerError(f"{at} at {_describe_site(site)} addresses two arguments with one pointer not derived "
                             f"from either: lane {lane(0)} in {_names(within[0])}, lane {lane(bad)} in "
                             f"{_names(within[bad])}")
    before, first = launch_ranges.sites.get(site, (so_far[-1], program))
    if not (before & so_far[-1]).any():
        raise SanitizerError(f"{at} at {_describe_site(site)} addresses {_names(so_far[-1])}, where the programs "
                             f"before it (from {first}) addressed {_names(before)} (a pointer not derived from one "
                             f"argument: a call site must address one argument in every program)")
    launch_ranges.sites[site] = (before & so_far[-1], first)


def check_races():
    """Raise SanitizerError when an element stored by one program of the launch just run was
    loaded or stored by another (by its first byte's address)."""
    stores, loads = launch_ranges.stores, launch_ranges.loads
    launch_ranges.loads, launch_ranges.stores = [], []
    if not stores:
        return
    programs = sorted({program for _, _, program in stores + loads})
    number = {program: i for i, program in enumerate(programs)}

    def flat(accesses):
        addresses = np.concatenate([lanes for lanes, _, _ in accesses])
        owners = np.concatenate([np.full(lanes.size, number[program]) for lanes, _, program in accesses])
        return addresses, owners

    addresses, writers = flat(stores)
    order = np.lexsort((writers, addresses))
    addresses, writers = addresses[order], writers[order]
    clash = np.flatnonzero((addresses[1:] == addresses[:-1]) & (writers[1:] != writers[:-1]))
    if clash.size:
        i = int(clash[0])
        _race("stores to", int(addresses[i]), programs[writers[i + 1]], programs[writers[i]], stores)
    if not loads:
        return
    unique, first = np.unique(addresses, return_index=True)
    owner = writers[first]
    read, readers = flat(loads)
    at = np.minimum(np.searchsorted(unique, read), unique.size - 1)
    clash = np.flatnonzero((unique[at] == read) & (owner[at] != readers))
    if clash.size:
        i = int(clash[0])
        _race("reads", int(read[i]), programs[readers[i]], programs[owner[at[i]]], stores)


def _race(what, address, program, writer, stores):
    itemsize = next(size for lanes, size, _ in stores if address in lanes)
    holders = [a for a in launch_ranges.arguments if a[1] <= address < a[2]]
    where = (f"element {(address - holders[0][1]) // itemsize} of {holders[0][3]}" if holders
             else f"address {address:#x}")
    raise SanitizerError(f"{launch_ranges.kernel}: race between programs: program {program} {what} {where}, which "
                         f"program {writer} stores (a GPU runs a launch's programs concurrently, in any order; "
                         f"the interpreter ran them one after another)")


def _is_pointer(value):
    return hasattr(value, "attr") and value.dtype.is_ptr()  # an interpreter TensorHandle of pointers


def _common_source(values):
    """The argument every pointer among `values` derives from, or None."""
    sources = {v.attr.get(SOURCE) for v in values if _is_pointer(v)}
    return sources.pop() if len(sources) == 1 else None


def _give_source(results, operands):
    """Give the pointers among `results` the argument all the pointers among `operands` derive from."""
    pointers = [r for r in (results if isinstance(results, tuple) else (results,)) if _is_pointer(r)]
    source = _common_source(operands) if pointers else None
    if source is not None:
        for pointer in pointers:
            pointer.attr[SOURCE] = source


def _keeping_source(op):
    """`op` (an interpreter builder method) whose pointer results keep their operands' argument."""
    def op_keeping_source(*args, **kwargs):
        results = op(*args, **kwargs)
        _give_source(results, args + tuple(kwargs.values()))
        return results
    return op_keeping_source


def _select_keeping_source(select):
    """tl.where whose pointer result keeps the argument of the side it picked (both sides'
    argument when they agree)."""
    def select_keeping_source(condition, lhs, rhs):
        result = select(condition, lhs, rhs)
        picks = np.asarray(condition.data)
        _give_source(result, [lhs] if picks.all() else [rhs] if not picks.any() else [lhs, rhs])
        return result
    return select_keeping_source


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
    plain_rmw, plain_cas = builder.create_atomic_rmw, builder.create_atomic_cas
    plain_init, plain_cvt = interpreter.GridExecutor._init_args_hst, interpreter._implicit_cvt
    plain_materialize = interpreter.TensorDescHandle.materialize_pointers

    def init_args_hst(self, args_dev, kwargs):
        args_hst, kwargs_hst = plain_init(self, args_dev, kwargs)
        _record(self.fn.__name__, self.arg_names, args_hst, kwargs_hst)
        return args_hst, kwargs_hst

    def implicit_cvt(arg):  # a tensor argument becomes a pointer that knows its argument
        converted = plain_cvt(arg)
        argument = launch_ranges.of_object.get(id(arg))
        if argument is not None:
            converted.handle.attr[SOURCE] = argument
        return converted

    def masked_load(ptrs, mask, other, cache_policy, is_volatile):
        itemsize = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        check_access("load", ptrs.data, mask.data, itemsize, builder.grid_idx, ptrs.attr.get(SOURCE))
        return plain_load(ptrs, mask, other, cache_policy, is_volatile)

    def masked_store(ptrs, value, mask, cache_policy):
        itemsize = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        check_access("store", ptrs.data, mask.data, itemsize, builder.grid_idx, ptrs.attr.get(SOURCE))
        return plain_store(ptrs, value, mask, cache_policy)

    def atomic_rmw(op, ptrs, value, mask, sem, scope):
        itemsize = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        kind = "atomic_" + op.name.lower().lstrip("fu")  # ATOMIC_OP.FADD, UMAX: tl.atomic_add, tl.atomic_max
        check_access(kind, ptrs.data, mask.data, itemsize, builder.grid_idx, ptrs.attr.get(SOURCE))
        return plain_rmw(op, ptrs, value, mask, sem, scope)

    def atomic_cas(ptrs, compare, value, sem, scope):
        itemsize = interpreter._get_np_dtype(ptrs.get_element_ty()).itemsize
        check_access("atomic_cas", ptrs.data, True, itemsize, builder.grid_idx, ptrs.attr.get(SOURCE))
        return plain_cas(ptrs, compare, value, sem, scope)

    def materialize_pointers(desc, offsets):  # a descriptor's pointers derive from its base
        ptrs, mask = plain_materialize(desc, offsets)
        _give_source(ptrs, [desc.base])
        return ptrs, mask

    plain_call = interpreter.GridExecutor.__call__

    def call(self, *args, **kwargs):  # a launch: every program, then the race check
        plain_call(self, *args, **kwargs)
        check_races()

    interpreter.GridExecutor.__call__ = call
    interpreter.GridExecutor._init_args_hst = init_args_hst
    interpreter.TensorDescHandle.materialize_pointers = materialize_pointers
    interpreter._implicit_cvt = implicit_cvt
    builder.create_masked_load = masked_load
    builder.create_masked_store = masked_store
    builder.create_atomic_rmw, builder.create_atomic_cas = atomic_rmw, atomic_cas
    for name in ("create_addptr", "create_splat", "create_unsplat", "create_broadcast", "create_expand_dims",
                 "create_reshape", "create_trans", "create_bitcast", "create_cat", "create_join", "create_split",
                 "create_gather"):
        setattr(builder, name, _keeping_source(getattr(builder, name)))
    builder.create_select = _select_keeping_source(builder.create_select)
    _installed = True
