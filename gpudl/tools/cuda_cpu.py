"""CUDA on the CPU: gpudl's CuPy kernels compiled with the host C++ compiler and run.

The CUDA C text of a kernel (a RawModule template, or the raw source of an elementwise
kernel: the very text the launchers hand to cupy.RawModule) is compiled with g++ behind cuda_cpu.h, loaded with ctypes, and
launched the way CUDA launches it: every block, every thread, with __shared__ memory
per block and __syncthreads() a real barrier among the block's threads (fibers).

`cupy_on_cpu()` swaps the CuPy module the kernel launchers see for CPU_CUPY: NumPy
arrays stand in for CuPy arrays, and RawModule compiles here. So the
launchers themselves (grids, splits, argument order, the host-side arithmetic between
launches) run unchanged on the CPU.

`last_blocks()` runs only the last blocks of each launch, in place on reserved arrays too
large to copy (gpudl.tools.index_overflow's sizes past 2**31 elements).
"""

import contextlib
import ctypes
import hashlib
import mmap
import os
import re
import subprocess
import tempfile
import threading
import types
from typing import NamedTuple

import numpy as np

from gpudl.kernels._triton_util import poisoned
from gpudl.tools import nvrtc

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_cpu.h")
# -O0: every read the source makes happens (at -O1 g++ sank an out-of-bounds read whose value
# was used only under a bounds check into that check, out of the guard pages' sight);
# -ffp-contract=off: one rounding per operation, as NumPy rounds (nvcc may fuse a*b+c);
# -fsanitize=bounds: every index into an array of known size (shared, local) is checked,
# by the handlers in cuda_cpu.h (compiled, then linked without UBSan's runtime);
# hidden, not unique: each library keeps its own statics (shared arrays, the fault handler's
# jump buffer) instead of binding to those of a library loaded before it
COMPILE_FLAGS = ("-std=c++17", "-O0", "-fPIC", "-ffp-contract=off", "-fsanitize=bounds", "-fvisibility=hidden",
                 "-fno-gnu-unique", "-w")
CACHE = os.environ.get("GPUDL_CUDA_CPU_CACHE") or os.path.join(tempfile.gettempdir(),
                                                               f"gpudl-cuda-cpu-{os.getuid()}")
_libraries = {}
_lock = threading.Lock()


class Library(NamedTuple):
    """A compiled source: a launch function per kernel expression, and the (address, size)
    of every `__shared__` array (function-local statics), poisoned before each block."""
    functions: dict
    shared: list


def _shared_arrays(library_path, lib, anchor):
    """(address, size) of the function-local statics (mangled `_ZZ...`) of a loaded library:
    its `__shared__` arrays. Addresses from `nm` are offsets; `anchor` fixes the load base."""
    listing = subprocess.run(["nm", "-S", "--defined-only", library_path], capture_output=True, text=True,
                             check=True).stdout
    symbols = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4:
            symbols[fields[3]] = (int(fields[0], 16), int(fields[1], 16), fields[2])
    base = ctypes.cast(getattr(lib, anchor), ctypes.c_void_p).value - symbols[anchor][0]
    return [(base + value, size) for name, (value, size, kind) in symbols.items()
            if name.startswith("_ZZ") and kind.lower() in "bdu" and size > 0]


def compile_library(source, kernel_expressions):
    """Compile `source` with a launcher per kernel expression ("dropout_kernel<float>");
    returns its Library. Cached on disk by the text of everything."""
    with open(HEADER) as f:
        header = f.read()
    launchers = "".join(f"CUDA_CPU_LAUNCHER(cuda_cpu_launch_{i}, {e})\n" for i, e in enumerate(kernel_expressions))
    text = f'#include "{HEADER}"\n{source}\n{launchers}'
    key = hashlib.sha256("\0".join((header, text, *COMPILE_FLAGS)).encode()).hexdigest()[:24]
    with _lock:
        if key not in _libraries:
            os.makedirs(CACHE, exist_ok=True)
            library = os.path.join(CACHE, key + ".so")
            if not os.path.exists(library):
                source_path = os.path.join(CACHE, key + ".cpp")
                with open(source_path, "w") as f:
                    f.write(text)
                partial = f"{library}.{os.getpid()}.tmp"
                for command in (["g++", *COMPILE_FLAGS, "-c", source_path, "-o", partial + ".o"],
                                ["g++", "-shared", partial + ".o", "-o", partial]):
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode != 0:
                        raise RuntimeError(f"g++ could not compile the CUDA source:\n{done.stderr}")
                os.remove(partial + ".o")
                os.replace(partial, library)
            lib = ctypes.CDLL(library)
            functions = {}
            for i, e in enumerate(kernel_expressions):
                functions[e] = getattr(lib, f"cuda_cpu_launch_{i}")
                functions[e].restype = ctypes.c_int
            _libraries[key] = Library(functions, _shared_arrays(library, lib, "cuda_cpu_launch_0"))
    return _libraries[key]


_SCALAR_CTYPES = {np.dtype(t): c for t, c in [
    (np.float32, ctypes.c_float), (np.float64, ctypes.c_double), (np.int32, ctypes.c_int32),
    (np.int64, ctypes.c_int64), (np.uint32, ctypes.c_uint32), (np.uint64, ctypes.c_uint64),
    (np.bool_, ctypes.c_bool)]}


class KernelError(RuntimeError):
    """A launch the harness refused or a kernel it caught misbehaving (the message names the
    kernel, the block and what went wrong)."""


# a device's launch limits (every CUDA GPU since compute capability 3.0)
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_GRID_DIMS = (2**31 - 1, 65535, 65535)


def check_launch_limits(name, grid, block, registers=None):
    """Refuse what a device refuses (cudaErrorInvalidConfiguration, or too many resources
    requested: `registers` per thread from ptxas, when known), naming the kernel."""
    threads = block[0] * block[1] * block[2]
    if registers and nvrtc.registers_per_block(registers, threads) > nvrtc.REGISTERS_PER_BLOCK:
        raise KernelError(f"{name}: invalid launch: {threads} threads x {registers} registers (sm_90 ptxas) need "
                          f"{nvrtc.registers_per_block(registers, threads)} registers per block; a device has "
                          f"{nvrtc.REGISTERS_PER_BLOCK}")
    if threads > MAX_THREADS_PER_BLOCK or any(b > m for b, m in zip(block, MAX_BLOCK_DIMS)) or min(block) < 1:
        raise KernelError(f"{name}: invalid launch: blockDim {block} ({threads} threads); a device allows at "
                          f"most {MAX_THREADS_PER_BLOCK} threads per block and blockDim <= {MAX_BLOCK_DIMS}")
    if any(g > m for g, m in zip(grid, MAX_GRID_DIMS)) or min(grid) < 1:
        raise KernelError(f"{name}: invalid launch: gridDim {grid}; a device allows 1 <= gridDim <= {MAX_GRID_DIMS}")


PAGE = mmap.PAGESIZE
PROT_NONE, MAP_NORESERVE = 0, 0x4000
GUARD = 0xCD  # the bytes between a buffer's page start and its first byte
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


GUARD_PAGES_BYTES = 1 << 20  # inaccessible address space on each side of a buffer (reserved, never backed)


class Reservation:
    """`nbytes` of zero-filled memory, backed only where touched (MAP_NORESERVE), with
    `guard_bytes` of inaccessible pages (reserved address space) on each side; the data ends exactly where the
    pages after it start, so a read or write up to 1 MiB past the end faults at once.
    accessible_tail / accessible_head: only that many bytes (whole pages) at the end / the
    start of the data are readable and writable (the rest faults); None: all of it."""

    def __init__(self, nbytes, guard_bytes=GUARD_PAGES_BYTES, accessible_tail=None, accessible_head=0):
        self.nbytes = nbytes
        self.data_pages = -(-max(nbytes, 1) // PAGE) * PAGE
        self.size = self.data_pages + 2 * guard_bytes
        self.base = _libc.mmap(None, self.size, PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE,
                               -1, 0)
        if self.base in (None, ctypes.c_void_p(-1).value):
            raise MemoryError(f"mmap of {self.size} bytes failed (errno {ctypes.get_errno()})")
        usable = self.data_pages if accessible_tail is None else min(self.data_pages, -(-accessible_tail // PAGE) * PAGE)
        _libc.mprotect(self.base + guard_bytes + self.data_pages - usable, usable, mmap.PROT_READ | mmap.PROT_WRITE)
        self.address = self.base + guard_bytes + self.data_pages - nbytes
        if accessible_head:  # from the page holding the first byte
            first_page = self.address - (self.address - self.base) % PAGE
            head = -(-(self.address + accessible_head - first_page) // PAGE) * PAGE
            _libc.mprotect(first_page, head, mmap.PROT_READ | mmap.PROT_WRITE)

    def contains(self, address):
        return self.address <= address < self.address + self.nbytes

    def near(self, address):
        """Where `address` lies relative to this reservation's data, or None when far from it."""
        if self.base <= address < self.address:
            return f"{self.address - address} bytes before the start of"
        if self.address + self.nbytes <= address < self.base + self.size:
            return f"{address - self.address - self.nbytes} bytes past the end of"
        if self.contains(address):
            return f"byte {address - self.address} (in the part the check leaves inaccessible) of"
        return None

    def release(self):
        _libc.munmap(self.base, self.size)


def describe(index, array):
    return f"array argument {index} (shape {array.shape}, {array.dtype})"


class DeviceBuffer(Reservation):
    """One array argument copied into a Reservation of its own; the gap before its first
    byte is filled with GUARD (a write there is found after the launch; a read more than a
    page before it faults)."""

    def __init__(self, array):
        super().__init__(array.nbytes)
        self.array = array
        pages = np.ctypeslib.as_array((ctypes.c_uint8 * self.data_pages).from_address(self.base + GUARD_PAGES_BYTES))
        self.gap = pages[:self.data_pages - self.nbytes]
        self.bytes = pages[self.data_pages - self.nbytes:]
        self.gap[:] = GUARD
        self.bytes[:] = array.reshape(-1).view(np.uint8)

    index = 0  # the kernel argument this buffer holds (the first, when several share it)

    def describe(self):
        return describe(self.index, self.array)

    def release(self):
        del self.gap, self.bytes
        super().release()


def _argument(index, value, buffers, in_place=()):
    """The ctypes object CUDA would receive for argument `index`; an array's copy goes into
    `buffers` (arguments that share memory share one copy: in-place stays in place), except
    an array inside one of the Reservations `in_place`, passed as it is."""
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise ValueError(f"kernel argument of shape {value.shape} is not C-contiguous")
        if any(r.contains(value.ctypes.data) for r in in_place):
            return ctypes.c_void_p(value.ctypes.data)
        key = (value.ctypes.data, value.nbytes)
        if key not in buffers:
            buffers[key] = DeviceBuffer(value)
            buffers[key].index = index
        return ctypes.c_void_p(buffers[key].address)
    if isinstance(value, np.generic):
        return _SCALAR_CTYPES[value.dtype](value.item())
    raise TypeError(f"kernel arguments must be arrays or NumPy scalars (CuPy's typed launch); "
                    f"received {type(value).__name__}")


def _pointer_array(values):
    """cudaLaunchKernel's argument array: a pointer to each argument's value."""
    return (ctypes.c_void_p * max(len(values), 1))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])


def _run_block(name, function, shared, grid, block, index, reverse, pointers, places, where=""):
    """Run block `index` of the grid once (shared arrays poisoned with 0xFF first); a failure
    raises KernelError naming the kernel, the block and the argument an access strayed from."""
    for address, size in shared:
        ctypes.memset(address, 0xFF, size)
    message = ctypes.create_string_buffer(512)
    dims = (ctypes.c_uint * 9)(*grid, *block, *index)
    if function(dims, int(reverse), pointers, message, len(message)) != 0:
        raise KernelError(f"{name}: block {index}{where}: {_explain(message.value.decode(), places)}")


def _copy_back(name, buffers, results):
    """Refuse a write before any buffer's start, then copy each result into its writable array."""
    for b, result in zip(buffers, results):
        if (b.gap != GUARD).any():
            raise KernelError(f"{name}: the kernel wrote {b.near(b.base + GUARD_PAGES_BYTES + int(np.flatnonzero(b.gap != GUARD)[0]))} "
                              f"{b.describe()}")
        if b.array.flags.writeable:
            b.array.reshape(-1).view(np.uint8)[:] = result


def launch(name, function, shared, grid, block, args, registers=None):
    """Run kernel `name` (`function` from a Library) over the whole grid, args as
    cupy.RawKernel takes them, under the sanitizers:

    - launch limits as a device enforces them (registers x threads when `registers` is known);
    - each block alone from the same starting memory (shared arrays poisoned with 0xFF,
      NaN in floats): a byte changed by two blocks is a race between blocks (a GPU runs
      them concurrently); the launch's result is every block's changes together;
    - threads resumed in reverse order in odd blocks, and a one-block grid run in both
      orders: a result that depends on the order is a race inside a block;
    - out-of-bounds reads and writes of the array arguments (guard pages, faults caught),
      of shared and local arrays (-fsanitize=bounds), writes just before an array (GUARD).
    """
    grid, block = (tuple(int(v) for v in d) + (1,) * (3 - len(d)) for d in (grid, block))
    check_launch_limits(name, grid, block, registers)
    if _last_blocks.count:
        return _launch_last_blocks(name, function, shared, grid, block, args)
    buffers = {}
    try:
        pointers = _pointer_array([_argument(i, a, buffers) for i, a in enumerate(args)])
        buffers = list(buffers.values())
        places = [(b.describe(), b) for b in buffers]
        start = [b.bytes.copy() for b in buffers]
        result = [s.copy() for s in start]
        writer = [None] * len(buffers)  # per byte: the block that changed it, or -1
        blocks = [(x, y, z) for z in range(grid[2]) for y in range(grid[1]) for x in range(grid[0])]

        def run(linear, index, reverse):
            _run_block(name, function, shared, grid, block, index, reverse, pointers, places)
            changes = []
            for i, (b, s) in enumerate(zip(buffers, start)):
                changed = np.flatnonzero(b.bytes != s)
                if changed.size:
                    changes.append((i, changed, b.bytes[changed]))
                    b.bytes[changed] = s[changed]
            return changes

        for linear, index in enumerate(blocks):
            for i, changed, values_ in run(linear, index, linear % 2 == 1):
                if writer[i] is None:
                    writer[i] = np.full(buffers[i].nbytes, -1, np.int64)
                clash = changed[writer[i][changed] >= 0]
                if clash.size:
                    itemsize = buffers[i].array.itemsize
                    raise KernelError(
                        f"{name}: race between blocks: block {index} and block {blocks[writer[i][clash[0]]]} both "
                        f"write element {clash[0] // itemsize} of {buffers[i].describe()} (a GPU runs blocks "
                        f"concurrently, in any order)")
                writer[i][changed] = linear
                result[i][changed] = values_
        if len(blocks) == 1:  # the one block again, its threads in the opposite order
            other = [s.copy() for s in start]
            for i, changed, values_ in run(0, blocks[0], True):
                other[i][changed] = values_
            for b, one, two in zip(buffers, result, other):
                if not np.array_equal(one, two):
                    element = int(np.flatnonzero(one != two)[0]) // b.array.itemsize
                    raise KernelError(f"{name}: the result depends on the order of the block's threads (element "
                                      f"{element} of {b.describe()}): a race inside the block, a "
                                      f"missing __syncthreads()")
        _copy_back(name, buffers, result)
    finally:
        for b in (buffers.values() if isinstance(buffers, dict) else buffers):
            b.release()


class _LastBlocks:
    """The harness's mode inside `last_blocks()` (count 0: every block, the usual way)."""
    count = 0
    in_place = ()


_last_blocks = _LastBlocks()


@contextlib.contextmanager
def last_blocks(in_place, count=2):
    """Within this block, launches run only their last `count` blocks (the largest linear
    block ids: blockIdx.x fastest), with gridDim as on the whole grid, each once, on the
    arguments in place: arrays inside the Reservations `in_place` (sizes past 2**31
    elements, reserved but never allocated: gpudl.tools.index_overflow) are passed as they
    are, so a fault names where an offset went; other arrays are copied between guard pages
    as usual. Races are not looked for in this mode."""
    saved = _last_blocks.count, _last_blocks.in_place
    _last_blocks.count, _last_blocks.in_place = count, in_place  # a list: arrays made later count too
    try:
        yield
    finally:
        _last_blocks.count, _last_blocks.in_place = saved


def _launch_last_blocks(name, function, shared, grid, block, args):
    """`launch` in the last_blocks() mode."""
    buffers, in_place = {}, _last_blocks.in_place
    try:
        pointers = _pointer_array([_argument(i, a, buffers, in_place) for i, a in enumerate(args)])
        places = [(b.describe(), b) for b in buffers.values()]
        places += [(describe(i, a), r) for i, a in enumerate(args) if isinstance(a, np.ndarray)
                   for r in in_place if r.contains(a.ctypes.data)]
        total = grid[0] * grid[1] * grid[2]
        for linear in range(max(0, total - _last_blocks.count), total):
            index = (linear % grid[0], linear // grid[0] % grid[1], linear // (grid[0] * grid[1]))
            _run_block(name, function, shared, grid, block, index, False, pointers, places, f" of grid {grid}")
        _copy_back(name, buffers.values(), [b.bytes for b in buffers.values()])
    finally:
        for b in buffers.values():
            b.release()


def _explain(failure, places):
    """The harness's message, with a faulting address named as a place near an argument
    (places: [(description, Reservation)])."""
    if failure.startswith("FAULT "):
        _, address, what = failure.split(" ", 2)
        address = int(address, 16)
        for description, reservation in places:
            where = reservation.near(address)
            if where:
                return f"{what}: an access {where} {description}"
        return f"{what} at address {address:#x}, far from every array argument"
    if failure.startswith("BOUNDS "):  # the compiled text is one #include line, then the kernel source
        return "array " + re.sub(r"at line (\d+)", lambda m: f"at line {int(m.group(1)) - 1} of the kernel source",
                                 failure[len("BOUNDS "):])
    return failure


_registers = {}  # (source, expression, options) -> registers per thread on sm_90, None without NVRTC


def ptxas_registers(source, expression, options):
    """Registers per thread of kernel `expression` compiled by NVRTC for sm_90 as the
    launchers compile it (cached on disk); None when NVRTC is not installed."""
    key = hashlib.sha256("\0".join((source, expression, *options)).encode()).hexdigest()[:24]
    if key not in _registers:
        path = os.path.join(CACHE, key + ".registers")
        if os.path.exists(path):
            _registers[key] = int(open(path).read())
        else:
            library = nvrtc.find_nvrtc()
            if library is None:
                return None
            ok, log = nvrtc.nvrtc_compile(library, source, expression,
                                          [*options, "-ftz=true", "-arch=sm_90", "--ptxas-options=-v"])
            if not ok:
                raise KernelError(f"{expression}: NVRTC could not compile the kernel:\n{log}")
            _registers[key] = nvrtc.parse_ptxas(log)[0]
            os.makedirs(CACHE, exist_ok=True)
            with open(path, "w") as f:
                f.write(str(_registers[key]))
    return _registers[key]


class RawModule:
    """cupy.RawModule on the CPU: the same source, options and name expressions."""

    def __init__(self, code, options=(), name_expressions=()):
        self.code, self.options = code, tuple(options)
        self.library = compile_library(code, list(name_expressions))

    def get_function(self, expression):
        function = self.library.functions[expression]
        registers = ptxas_registers(self.code, expression, self.options)
        return lambda grid, block, args: launch(expression, function, self.library.shared, grid, block, args,
                                                registers)


class _Device:
    attributes = {"MultiProcessorCount": 132}  # an H100 SXM: the launchers size grids by it


CPU_CUPY = types.SimpleNamespace(
    **{name: getattr(np, name) for name in ("arange", "asarray", "mean", "minimum", "zeros", "sqrt", "int64", "float32",
                                            "float64", "ascontiguousarray")},
    empty=poisoned(np.empty), empty_like=poisoned(np.empty_like),
    ndarray=np.ndarray, RawModule=RawModule,
    asnumpy=np.asarray, cuda=types.SimpleNamespace(Device=_Device))


@contextlib.contextmanager
def programs_target(programs):
    """Within this block the launchers size their grids for `programs` programs (blocks)
    (gpudl.kernels._triton_util.num_programs_target)."""
    from gpudl.kernels import _triton_util

    saved = _triton_util.num_programs_target
    _triton_util.num_programs_target = lambda: programs
    try:
        yield
    finally:
        _triton_util.num_programs_target = saved


@contextlib.contextmanager
def cupy_on_cpu(arrays=None):
    """Within this block the CuPy launchers of gpudl.kernels run through this harness, their
    grids sized for its device (an H100's SMs) also where TRITON_INTERPRET would pick the
    interpreter's small grids; `arrays`: a namespace whose empty/empty_like/zeros the
    launchers allocate with instead of NumPy's (index_overflow's unbacked arrays)."""
    from gpudl.kernels import _triton_util

    saved = _triton_util.cupy
    namespace = CPU_CUPY if arrays is None else types.SimpleNamespace(
        **{**vars(CPU_CUPY), "empty": arrays.empty, "empty_like": arrays.empty_like, "zeros": arrays.zeros})
    _triton_util.cupy = namespace
    try:
        with programs_target(4 * _Device.attributes["MultiProcessorCount"]):
            yield namespace
    finally:
        _triton_util.cupy = saved
