"""Both cores for the NumPy kernels: a small persistent thread pool and per-thread scratch.

NumPy releases the GIL inside its ufunc loops, so `parallel_for(work, n)` can run
`work(start, stop)` over disjoint contiguous parts of range(n) on several threads at once:
the calling thread and the pool's workers claim parts until none is left, and the call
returns when all are done. An elementwise result does not depend on the split (every
element goes through the same operations in the same order), so a threaded run is
bit-identical to a serial one.

The pool takes only the cores that BLAS leaves free (thread_count): OpenBLAS's threads
keep spinning for a while after each GEMM, and a pool thread on their core slows both
(measured in perf/RESULTS.md). GPUDL_NUM_THREADS sets the number of threads in all (1: no
pool). A part pays only when its NumPy calls are long: each call on a worker costs a GIL
hand-off (microseconds, far more when another process holds the core), so parts are at
least `grain` elements and smaller work stays on the calling thread.
"""

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

DEFAULT_GRAIN = 1 << 15  # elements per thread below which splitting costs more than it saves

_state = {"pool": None, "threads": None}
_pool_lock = threading.Lock()
_local = threading.local()


def blas_threads():
    """The threads of the BLAS library behind NumPy (threadpoolctl), or None when unknown."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    counts = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    return max(counts) if counts else None


def local_cores():
    """This process's share of the machine's cores: the cores it may run on, divided among the
    processes of a data-parallel run on this machine (LOCAL_WORLD_SIZE, set by torchrun and Ray
    Train), at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    local_processes = os.environ.get("LOCAL_WORLD_SIZE", "1")
    return max(1, cores // max(1, int(local_processes) if local_processes.isdigit() else 1))


def thread_count():
    """Threads that share elementwise work: GPUDL_NUM_THREADS, else the calling thread plus
    one per core of this process's share (local_cores) that BLAS leaves free (read once).
    BLAS's idle threads keep spinning between GEMMs, so a pool thread on one of their cores
    slows both: with OpenBLAS's default (a thread per core) the pool stays off."""
    if _state["threads"] is None:
        requested = os.environ.get("GPUDL_NUM_THREADS")
        if requested:
            if not requested.isdigit() or int(requested) < 1:
                raise ValueError(f"Invalid value received for GPUDL_NUM_THREADS. Expected a positive integer. "
                                 f"Received: GPUDL_NUM_THREADS={requested!r}")
            _state["threads"] = int(requested)
        else:
            cores = local_cores()
            blas = blas_threads()
            _state["threads"] = 1 + max(0, cores - (cores if blas is None else blas))
    return _state["threads"]


def limit_blas_to_local_cores():
    """Give BLAS this process's share of the cores (local_cores), unless OMP_NUM_THREADS or
    OPENBLAS_NUM_THREADS says otherwise: R processes on one machine each running a BLAS thread
    per core would share every core R ways (torchrun sets OMP_NUM_THREADS=1 itself)."""
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS"):
        return
    try:
        import threadpoolctl
    except ImportError:
        return
    threadpoolctl.threadpool_limits(local_cores(), user_api="blas")
    _state["threads"] = None  # counted again against the new BLAS threads


def _pool():
    with _pool_lock:
        if _state["pool"] is None:
            _state["pool"] = ThreadPoolExecutor(thread_count() - 1, thread_name_prefix="gpudl")
        return _state["pool"]


def _forget_pool_after_fork():
    """A forked child has none of the parent's threads: it starts its own pool when needed."""
    _state["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def split(n, parts):
    """Boundaries 0 = b0 <= b1 <= ... <= b_parts = n of `parts` near-equal contiguous parts."""
    return [n * i // parts for i in range(parts + 1)]


class _Job:
    """Parts of one parallel_for, claimed one at a time by whichever thread is free, so a
    thread that starts late (the core busy with another process) takes fewer parts, or
    none, and nobody waits for it to start."""

    def __init__(self, work, bounds):
        self.work, self.bounds = work, bounds
        self.parts = len(bounds) - 1
        self.claims = itertools.count()  # next() is atomic under the GIL
        self.unfinished = self.parts
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.error = None

    def run(self):
        while True:
            part = next(self.claims)
            if part >= self.parts:
                return
            try:
                self.work(self.bounds[part], self.bounds[part + 1])
            except BaseException as error:  # raised on the calling thread by parallel_for
                self.error = self.error or error
            finally:
                with self.lock:
                    self.unfinished -= 1
                    if self.unfinished == 0:
                        self.finished.set()


def parallel_for(work, n, grain=None):
    """work(start, stop) over contiguous parts of range(n), each at least `grain` elements
    (default DEFAULT_GRAIN), on up to thread_count() threads: the calling thread
    and the pool's workers claim parts until none are left. Returns when every part is
    done, raising the first error of any part."""
    threads = thread_count()
    parts = max(1, min(2 * threads, n // max(grain or DEFAULT_GRAIN, 1)))  # two per thread: a slow thread takes fewer
    if threads == 1 or parts == 1:
        work(0, n)
        return
    job = _Job(work, split(n, parts))
    pool = _pool()
    for _ in range(min(threads, parts) - 1):
        pool.submit(job.run)
    job.run()
    job.finished.wait()
    if job.error is not None:
        raise job.error


def parallel_elementwise(rule, *arrays, grain=None):
    """rule(*parts) on matching contiguous parts of `arrays` (one shape, flattened), split
    across threads by parallel_for: for a rule that works element by element, in place.
    Arrays that are not all C-contiguous are passed whole, on the calling thread."""
    if not all(a.flags.c_contiguous for a in arrays):
        rule(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]  # views: the rule writes through them
    parallel_for(lambda start, stop: rule(*(a[start:stop] for a in flat)), flat[0].size, grain)


def scratch_like(name, array):
    """A reusable buffer of `array`'s shape and dtype, owned by this thread and this `name`
    (its storage grows when too small, never shrinks): a per-step temporary without an
    allocation (a fresh multi-megabyte array page-faults on every step). Its contents are
    whatever the last user left."""
    buffers = _local.__dict__.setdefault("buffers", {})
    key = (name, array.dtype)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < array.size:
        buffer = buffers[key] = np.empty(array.size, array.dtype)
    return buffer[:array.size].reshape(array.shape)
