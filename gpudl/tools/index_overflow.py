"""Index-overflow checks past 2**31 elements, without allocating them.

A kernel that computes an offset in int32 (`pid * BLOCK`, `row * C`) is right until the
offset passes 2**31 - 1, then reads and writes far from its data. On the CPU the arrays of
such sizes are reserved, not allocated (mmap with MAP_NORESERVE: zero pages, backed only
where touched), each SEPARATION_BYTES of address space away from any other, only their last
ACCESSIBLE_TAIL_BYTES readable and writable, and only the LAST programs of each grid run
(their program ids and grid size as on the full grid):

- Triton: in the interpreter under gpudl.tools.triton_sanitizer's bounds checker, which
  refuses an int32 offset that wraps negative or past the end, naming the kernel;
- CuPy: the CUDA C in the CUDA-on-CPU harness (gpudl.tools.cuda_cpu.last_blocks), on the
  reserved arrays in place: a wrapped offset faults in the inaccessible pages, and the
  message names the kernel, the block and the argument. The elementwise kernels' grid-stride
  loops get a grid that covers the array in one pass (a device with enough SMs), so their
  last blocks hold the largest indices in one iteration; the launchers' usual grid reaches
  the same indices by the loop's increments, in the same (64-bit) index type.

The values those programs write are compared with the NumPy reference computed on the same
rows or elements.

    rows = overflow_rows("softmax_cross_entropy", Row, implementation="cupy")   # selftest's "overflow" rows
"""

import contextlib
import ctypes
import inspect

import numpy as np

from gpudl import kernels
from gpudl.kernels import _triton_util
from gpudl.tools import cuda_cpu

PAST_INT32 = 2**31 + 4099  # elements: past the int32 range by more than one program of any kernel
LAST_PROGRAMS = 2
# address space kept free around each array: an int32 offset that wraps (up to 2**32 elements
# of 8 bytes away) lands there, not inside a neighbouring array where no check would see it
SEPARATION_BYTES = 2**36
# only this much at the end of each array is readable and writable: host code that walks a
# whole array (a launcher copying or converting it) faults at once instead of filling the
# machine's memory with 8 GiB arrays
ACCESSIBLE_TAIL_BYTES = 64 << 20


class UnbackedArrays:
    """np.empty / np.empty_like / np.zeros (as a namespace the launchers call through
    _triton_util.cpu_namespace) whose arrays are reserved address space reading as zero,
    SEPARATION_BYTES of unmapped address space on each side. `release()` unmaps them all."""

    def __init__(self):
        self.buffers = []

    def zeros(self, shape, dtype=np.float64, accessible_head=0, accessible_tail=ACCESSIBLE_TAIL_BYTES):
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        buffer = cuda_cpu.Reservation(count * dtype.itemsize, SEPARATION_BYTES, accessible_tail, accessible_head)
        self.buffers.append(buffer)
        raw = (ctypes.c_uint8 * max(count * dtype.itemsize, 1)).from_address(buffer.address)
        return np.frombuffer(raw, dtype, count).reshape(shape)

    empty = zeros

    def empty_like(self, array, dtype=None):
        return self.zeros(array.shape, dtype or array.dtype)

    def __getattr__(self, name):
        return getattr(np, name)

    def release(self):
        for buffer in self.buffers:
            buffer.release()
        self.buffers = []


@contextlib.contextmanager
def last_programs(count=LAST_PROGRAMS):
    """Within this block, interpreted Triton launches run only their last `count` programs
    (the interpreter's order: axis 0 outermost, so the largest offsets), with program_id and
    num_programs as on the whole grid. The arguments are CPU tensors over the arrays
    themselves (nothing to copy back)."""
    from triton.runtime import interpreter

    plain = interpreter.GridExecutor.__call__

    def call(self, *args_dev, **kwargs):
        argspec = inspect.getfullargspec(self.fn)
        kwargs = {k: v for k, v in kwargs.items() if k in argspec.args or k in argspec.kwonlyargs}
        args_hst, kwargs_hst = self._init_args_hst(args_dev, kwargs)
        scope = interpreter._patch_lang(self.fn)
        try:
            args = inspect.getcallargs(self.fn, *args_hst, **kwargs_hst)
            args = {name: arg if name in self.constexprs else interpreter._implicit_cvt(arg)
                    for name, arg in args.items()}
            grid = self.grid(args) if callable(self.grid) else self.grid
            grid = tuple(grid) + (1,) * (3 - len(grid))
            interpreter.interpreter_builder.set_grid_dim(*grid)
            total = grid[0] * grid[1] * grid[2]
            for linear in range(max(0, total - count), total):
                x, rest = divmod(linear, grid[1] * grid[2])
                interpreter.interpreter_builder.set_grid_idx(x, *divmod(rest, grid[2]))
                self.fn(**args)
        finally:
            scope.restore()

    interpreter.GridExecutor.__call__ = call
    try:
        yield
    finally:
        interpreter.GridExecutor.__call__ = plain


@contextlib.contextmanager
def unbacked_outputs():
    """The launchers' outputs (and the arrays the checks make) as UnbackedArrays."""
    arrays = UnbackedArrays()
    saved = _triton_util.cpu_namespace
    _triton_util.cpu_namespace = arrays
    try:
        yield arrays
    finally:
        _triton_util.cpu_namespace = saved
        arrays.release()


def one_pass_grids(implementation):
    """CuPy's grid-stride launchers sized as on a device with enough SMs to cover any array in
    one pass (the most blocks gridDim.x allows); Triton's as they are."""
    if implementation != "cupy":
        return contextlib.nullcontext()
    return cuda_cpu.programs_target(cuda_cpu.MAX_GRID_DIMS[0])


@contextlib.contextmanager
def overflow_run(implementation):
    """Unbacked arrays for the launchers, and only the last LAST_PROGRAMS programs of each
    launch run: interpreted Triton, or CuPy's CUDA C in the CUDA-on-CPU harness."""
    with unbacked_outputs() as arrays:
        if implementation == "triton":
            with last_programs():
                yield arrays
        else:
            with cuda_cpu.cupy_on_cpu(arrays), cuda_cpu.last_blocks(arrays.buffers, LAST_PROGRAMS):
                yield arrays


def _fill(array, start, values):
    """Write `values` into the flat elements from `start` of an unbacked array (touching only those pages)."""
    array.reshape(-1)[start:start + values.size] = values.reshape(-1)


def _error(actual, expected):
    """max relative error of the elements a run wrote."""
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected) / np.maximum(np.abs(expected), 1e-30)))


def _last_elements(n, per_program):
    """The first element of the last LAST_PROGRAMS programs of a grid of cdiv(n, per_program)."""
    return (-(-n // per_program) - LAST_PROGRAMS) * per_program


def check_softmax_cross_entropy(implementation, arrays, rng):
    """The last rows of a (m, C) logits array with m*C past 2**31 (one program per row): their
    dZ and softmax."""
    from gpudl.kernels import softmax_cross_entropy as sce

    C = 4097
    m = PAST_INT32 // C + 1
    logits = arrays.zeros((m, C), np.float32)
    tail = rng.standard_normal((LAST_PROGRAMS, C)).astype(np.float32) * 30
    _fill(logits, (m - LAST_PROGRAMS) * C, tail)
    labels = arrays.zeros(m, np.int64)
    labels[-LAST_PROGRAMS:] = rng.integers(0, C, LAST_PROGRAMS)
    _, dlogits = kernels.implementation("softmax_cross_entropy", "_" + implementation)(logits, labels)
    _, expected = sce.softmax_cross_entropy(tail, labels[-LAST_PROGRAMS:])
    probabilities = kernels.implementation("softmax", "_" + implementation)(logits)
    return (f"m={m} C={C} ({m * C} elements)", {
        "dZ": _error(dlogits[-LAST_PROGRAMS:] * m, expected * LAST_PROGRAMS),
        "softmax": _error(probabilities[-LAST_PROGRAMS:], sce.softmax(tail))})


def check_dropout(implementation, arrays, rng):
    """The last elements of a dropout over PAST_INT32 elements: bit-identical to the reference."""
    from gpudl.kernels import dropout

    n = PAST_INT32
    x = arrays.zeros(n, np.float32)
    tail = rng.standard_normal(8192).astype(np.float32)
    _fill(x, n - tail.size, tail)
    seed = 12345
    y = kernels.implementation("dropout", "_" + implementation)(x, 0.5, seed)
    counters_per_program = dropout._triton_block(np.float32) if implementation == "triton" else dropout.CUPY_THREADS
    first = _last_elements(n, 4 * counters_per_program)  # each counter gives 4 elements
    counters = np.arange(first // 4, -(-n // 4), dtype=np.uint64)
    words = np.stack(dropout.philox4x32_10(counters & 0xFFFFFFFF, counters >> np.uint64(32), 0, 0, seed), axis=1)
    keep = (words.reshape(-1) >= np.uint32(dropout.keep_threshold(0.5)))[:n - first]
    expected = dropout.apply_mask(x[first:], keep, 0.5)
    return f"n={n}", {"mismatches": float(np.count_nonzero(y[first:] != expected))}


def check_adam(implementation, arrays, rng):
    """The last elements of an Adam update over PAST_INT32 parameters."""
    from gpudl.kernels import optimizer_updates as updates

    n = PAST_INT32
    buffers = [arrays.zeros(n, np.float32) for _ in range(4)]
    tail = _last_elements(n, updates.BLOCK if implementation == "triton" else _triton_util.ELEMENTWISE_THREADS)
    values = [rng.standard_normal(n - tail).astype(np.float32) for _ in range(3)]
    values.append(np.abs(values[-1]))
    for buffer, value in zip(buffers, values):
        _fill(buffer, tail, value)
    table = updates.adam_step_table([1e-3], 0, 0.9, 0.999)
    counter = np.zeros(1, np.int64)
    with one_pass_grids(implementation):
        kernels.implementation("adam", "_" + implementation)(*buffers, table, counter, 0.9, 0.999, 1e-7)
    expected = [v.copy() for v in values]
    updates.adam(*expected, table, counter.copy(), 0.9, 0.999, 1e-7)
    return f"n={n}", {"buffers": max(_error(b[tail:], e) for b, e in zip(buffers, expected))}


def check_batchnorm(implementation, arrays, rng):
    """The last rows of batch-norm inference over an (N, C) array with N*C past 2**31 (and,
    for CuPy, the training and backward partial sums of the last row splits)."""
    from gpudl.kernels import batchnorm

    C = 5
    N = PAST_INT32 // C + 1
    x = arrays.zeros((N, C), np.float32)
    rows = 4096
    tail = rng.standard_normal((rows, C)).astype(np.float32)
    _fill(x, (N - rows) * C, tail)
    gamma, beta, mean, var = (rng.standard_normal(C).astype(np.float32) for _ in range(4))
    var = np.abs(var) + 0.5
    with one_pass_grids(implementation):
        y = kernels.implementation("batchnorm_forward_infer", "_" + implementation)(x, gamma, beta, mean, var, 1e-3)
    expected = batchnorm.forward_infer(tail, gamma, beta, mean, var, 1e-3)
    written = ~np.isnan(y[-rows:]) & (y[-rows:] != 0)  # the elements of the programs that ran
    errors = {"y": _error(y[-rows:][written], expected[written])}
    if implementation == "cupy":
        errors.update(_batchnorm_partials_cupy(arrays, rng, N, C))
    return f"N={N} C={C} ({N * C} elements)", errors


def _batchnorm_partials_cupy(arrays, rng, N, C):
    """bn_partial_stats and bn_backward_partial on float64 (N, C) arrays, the launchers' row
    splits: the last splits' partial sums against float64 NumPy sums of the same rows."""
    from gpudl.kernels import batchnorm

    threads, col_blocks, rows_per_split, splits = batchnorm._cupy_splits(N, C)
    start = (splits - LAST_PROGRAMS) * rows_per_split  # the last blocks: the last splits (one column block)
    span = (N - start) * C * 8 + cuda_cpu.PAGE
    x, dy = (arrays.zeros((N, C), np.float64, accessible_head=C * 8, accessible_tail=span) for _ in range(2))
    x[0] = rng.standard_normal(C) + 3  # row 0: the shift
    _fill(x, start * C, rng.standard_normal((N - start, C)) + 3)  # the rows of the last splits
    _fill(dy, start * C, rng.standard_normal((N - start, C)))
    part = [np.full((splits, C), np.nan) for _ in range(4)]
    _triton_util.cupy_function(batchnorm._CUPY_PARTIAL_STATS, np.float64)(
        (col_blocks, splits), (threads,), (x, part[0], part[1], np.int64(N), np.int64(C), np.int64(rows_per_split)))
    mean, rstd, gamma, beta = x[0] + 0.25, np.full(C, 0.5), rng.standard_normal(C), rng.standard_normal(C)
    _triton_util.cupy_function(batchnorm._CUPY_BACKWARD_PARTIAL, np.float64)(
        (col_blocks, splits), (threads,), (dy, x, mean, rstd, gamma, beta, dy, part[2], part[3], np.int64(N),
                                           np.int64(C), np.int64(rows_per_split), np.int32(0), np.int32(0),
                                           np.float64(1)))
    errors = {}
    for split in range(splits - LAST_PROGRAMS, splits):
        rows = slice(split * rows_per_split, min((split + 1) * rows_per_split, N))
        shifted = x[rows] - x[0]
        x_hat = (x[rows] - mean) * rstd
        for name, actual, value in (("partial mean", part[0], shifted.mean(axis=0)),
                                    ("partial M2", part[1], ((shifted - shifted.mean(axis=0)) ** 2).sum(axis=0)),
                                    ("partial dbeta", part[3], dy[rows].sum(axis=0)),
                                    ("partial dgamma", part[2], (dy[rows] * x_hat).sum(axis=0))):
            errors[name] = max(errors.get(name, 0.0), _error(actual[split], value))
    return errors


CHECKS = {"softmax_cross_entropy": check_softmax_cross_entropy, "dropout": check_dropout,
          "optimizer_updates": check_adam, "batchnorm": check_batchnorm}
TOLERANCE = 1e-5  # relative: float32 kernels against the float32/float64 references
WHERE = {"triton": "Triton interpreter (bounds-checked)", "cupy": "CUDA on CPU (g++, in place, guard pages)"}


def overflow_rows(family, row_type, where=None, implementation="triton"):
    """The index-overflow row of one kernel family's Triton or CuPy kernels (the last programs
    of each launch, past 2**31 elements)."""
    where = where or WHERE[implementation]
    if implementation == "triton":
        from gpudl.tools import triton_sanitizer

        triton_sanitizer.install()
    kernel = f"{implementation} {family}"
    unit = "programs" if implementation == "triton" else "blocks"
    try:
        with overflow_run(implementation) as arrays:
            case, errors = CHECKS[family](implementation, arrays, np.random.default_rng(2**31))
    except Exception as error:  # an out-of-bounds offset is a failed row naming the kernel
        return [row_type("overflow", kernel, f"past 2^31 elements, last {LAST_PROGRAMS} {unit}", where,
                         f"{type(error).__name__}: {error}"[:300], "FAIL")]
    worst = max(errors.values())
    measure = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
    return [row_type("overflow", kernel, f"{case}, last {LAST_PROGRAMS} {unit}", where,
                     f"in bounds; {measure}", "pass" if worst <= TOLERANCE else "FAIL")]
