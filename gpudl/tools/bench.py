"""`gpudl bench`: the fused kernels and one reference training step on the current
device, against PyTorch in the same run; also what `gpudl info` reports.

For each timed fused op (the rows of gpudl.kernels.OPS with a bench name), and each size:
    ours ms, torch ms   median of timed calls after warm-up (CUDA events on each
                        library's stream on a GPU; perf_counter on the CPU)
    floor ms            fewest bytes the op must move / copy bandwidth, the bandwidth
                        measured in this run (device-to-device copy on a GPU,
                        np.copyto on the CPU; read + write counted)
    of floor            floor ms / ours ms: the fraction of the bandwidth bound reached
    peak                bytes one steady-state call allocates (outputs and temporaries)
For one training step of a reference MLP (784-256-256-10, batch-norm, ReLU, dropout
0.1, softmax-cross-entropy, Adam, batch 128), gpudl.Sequential.fit against the same
torch.nn net: ms per step (median over epochs after a warm-up epoch) and peak memory
from building the model through the warm-up epoch (training data included).
perf/kernels.py and perf/fit_gpu.py are built on these helpers.
"""

import gc
import importlib
import math
import os
import platform
import time
import tracemalloc

import numpy as np

import gpudl
from gpudl.backend import get_backend
from gpudl.frontend.callbacks import Callback
from gpudl.kernels import OPS as KERNEL_OPS
from gpudl.kernels.optimizer_updates import adam_step_table

# The timed ops, by their `gpudl bench` names, and the fewest elements each must read plus
# write: the rows of gpudl.kernels.OPS that have a bench name.
OPS = tuple(op.bench for op in KERNEL_OPS if op.bench)
FLOOR_ELEMENTS = {op.bench: op.floor_elements for op in KERNEL_OPS if op.bench}

# Sizes per (device kind, quick): (N, C) of batch-norm and dropout, (m, classes) of
# softmax-CE, arena lengths of Adam, bytes of the bandwidth copy. Quick sizes still pass
# the last-level cache (50 MiB L2 on H100/H200) except on the CPU, where they stay small;
# the CPU's full sizes keep `gpudl bench` near 20 s on 2 cores.
SIZES = {
    ("cuda", False): {"activations": ((4096, 4096), (65536, 1024)), "logits": ((4096, 1000), (4096, 50000)),
                      "arena": (100_000_000,), "copy_bytes": 1 << 30},
    ("cuda", True): {"activations": ((4096, 4096),), "logits": ((4096, 50000),), "arena": (16_000_000,),
                     "copy_bytes": 1 << 28},
    ("cpu", False): {"activations": ((8192, 1024),), "logits": ((8192, 1000),), "arena": (8_000_000,),
                     "copy_bytes": 1 << 28},
    ("cpu", True): {"activations": ((2048, 512),), "logits": ((2048, 1000),), "arena": (2_000_000,),
                    "copy_bytes": 1 << 26},
}
DEFAULT_REPEATS = {("cuda", False): 20, ("cuda", True): 10, ("cpu", False): 5, ("cpu", True): 3}

REFERENCE_MLP = {"sizes": (784, 256, 256, 10), "batch": 128, "dropout": 0.1}
REFERENCE_STEPS_PER_EPOCH = {False: 16, True: 4}  # by `quick`

MIB = 1 << 20


# -- environment: what `gpudl info` prints and the JSON records ----------------------
def module_version(name):
    """`name.__version__`, or None when the module is not installed."""
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_devices():
    """([{name, memory_bytes, compute_capability, multiprocessors}], note): the CUDA devices
    through CuPy, else through PyTorch; the note says where the list came from or why
    it is empty."""
    try:
        import cupy

        runtime = cupy.cuda.runtime
        devices = []
        for index in range(runtime.getDeviceCount()):
            props = runtime.getDeviceProperties(index)
            devices.append({"name": props["name"].decode(), "memory_bytes": int(props["totalGlobalMem"]),
                            "compute_capability": f"{props['major']}.{props['minor']}",
                            "multiprocessors": int(props["multiProcessorCount"])})
        return devices, "CuPy" if devices else "CuPy sees no CUDA device"
    except ImportError:
        cupy_note = "CuPy is not installed"
    except Exception as error:  # CUDARuntimeError: no driver, or a driver too old for this CuPy
        cupy_note = f"CuPy found no usable CUDA device ({error})"
    try:
        import torch
    except ImportError:
        return [], cupy_note + "; PyTorch is not installed"
    if not torch.cuda.is_available():
        return [], cupy_note + "; PyTorch sees no CUDA device"
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append({"name": props.name, "memory_bytes": int(props.total_memory),
                        "compute_capability": f"{props.major}.{props.minor}",
                        "multiprocessors": int(props.multi_processor_count)})
    return devices, cupy_note + "; listed by PyTorch"


def cuda_versions():
    """(runtime, driver) CUDA versions as "12.8" strings through CuPy; None where unknown."""
    try:
        import cupy

        runtime = cupy.cuda.runtime
    except ImportError:
        return None, None

    def version(get):
        try:
            number = get()
        except Exception:  # no driver: the runtime cannot be asked either
            return None
        return f"{number // 1000}.{number % 1000 // 10}" if number else None

    return version(runtime.runtimeGetVersion), version(runtime.driverGetVersion)


def environment():
    """Devices, the backend and why it was chosen, and the versions of the stack."""
    try:
        backend = get_backend()
        backend_name, reason = backend.name, backend.reason
    except Exception as error:  # e.g. GPUDL_BACKEND names a backend this machine cannot run
        backend_name, reason = None, f"{type(error).__name__}: {error}"
    gpus, gpu_note = gpu_devices()
    cuda_runtime, cuda_driver = cuda_versions()
    torch_version = module_version("torch")
    torch_cuda = importlib.import_module("torch").version.cuda if torch_version else None
    return {"backend": backend_name, "backend_reason": reason,
            "gpus": gpus, "gpu_note": gpu_note, "cpu": cpu_model(), "cpu_cores": os.cpu_count(),
            "versions": {"gpudl": gpudl.__version__, "python": platform.python_version(),
                         "numpy": np.__version__, "cupy": module_version("cupy"),
                         "triton": module_version("triton"), "torch": torch_version,
                         "torch_cuda_build": torch_cuda, "cuda_runtime": cuda_runtime,
                         "cuda_driver": cuda_driver}}


def describe_gpu(index, gpu):
    return (f"GPU {index}: {gpu['name']}, {gpu['memory_bytes'] / (1 << 30):.1f} GiB, "
            f"compute capability {gpu['compute_capability']}, {gpu['multiprocessors']} SMs")


# -- the device: clocks and memory meters of both libraries --------------------------
def import_torch(kind):
    """(torch, "") or (None, why PyTorch cannot be the peer on a `kind` device)."""
    try:
        import torch
    except ImportError:
        return None, "torch not installed"
    if kind == "cuda" and not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA device"
    return torch, ""


class WallClock:
    """Host time; the CPU libraries return when their work is done."""

    def start(self):
        return time.perf_counter()

    def stop_ms(self, started):
        return (time.perf_counter() - started) * 1e3


class EventClock:
    """Device time between two events recorded on a library's current stream."""

    def __init__(self, new_event, elapsed_ms):
        self.new_event, self.elapsed_ms = new_event, elapsed_ms

    def start(self):
        event = self.new_event()
        event.record()
        return event

    def stop_ms(self, started):
        end = self.new_event()
        end.record()
        end.synchronize()
        return self.elapsed_ms(started, end)


class UnmeasuredMeter:
    """For a library whose allocations cannot be seen (PyTorch on the CPU)."""

    peak_bytes = None

    def start(self):
        pass

    def stop(self):
        pass


class TracemallocMeter:
    """Peak bytes of NumPy and Python allocations between start() and stop(), above the
    bytes held at start() (tracemalloc; NumPy reports its buffers to it)."""

    def start(self):
        self.owns_tracing = not tracemalloc.is_tracing()
        if self.owns_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self.start_bytes = tracemalloc.get_traced_memory()[0]

    def stop(self):
        self.peak_bytes = tracemalloc.get_traced_memory()[1] - self.start_bytes
        if self.owns_tracing:
            tracemalloc.stop()


class CupyPoolMeter:
    """Growth of CuPy's default memory pool between start() and stop(). The pool is emptied
    of free blocks at start() and keeps every block freed later, so its growth is an upper
    bound on the peak bytes allocated in between."""

    def __init__(self, device):
        import cupy

        self.device, self.pool = device, cupy.get_default_memory_pool()

    def start(self):
        gc.collect()  # arrays of earlier runs held in reference cycles go back to the pool
        self.device.synchronize()
        self.pool.free_all_blocks()
        self.start_bytes = self.pool.total_bytes()

    def stop(self):
        self.device.synchronize()
        self.peak_bytes = self.pool.total_bytes() - self.start_bytes


class TorchCudaMeter:
    """torch.cuda.max_memory_allocated between start() and stop(), above the bytes
    allocated at start()."""

    def __init__(self, torch):
        self.torch = torch

    def start(self):
        gc.collect()  # tensors of earlier runs held in reference cycles are freed first
        self.torch.cuda.synchronize()
        self.torch.cuda.reset_peak_memory_stats()
        self.start_bytes = self.torch.cuda.memory_allocated()

    def stop(self):
        self.torch.cuda.synchronize()
        self.peak_bytes = self.torch.cuda.max_memory_allocated() - self.start_bytes


class HostDevice:
    """The CPU: the backend's NumPy arrays against PyTorch CPU tensors."""

    kind = "cpu"
    torch_device = "cpu"
    memory_label = ("peak memory: tracemalloc peak of NumPy and Python allocations (ours); "
                    "PyTorch's CPU allocations are not traced (n/a)")

    def __init__(self, backend):
        self.backend = backend
        self.torch, self.torch_missing = import_torch(self.kind)
        threads = f", torch threads {self.torch.get_num_threads()}" if self.torch else ""
        self.name = f"CPU: {cpu_model()}, {os.cpu_count()} cores{threads}"

    def synchronize(self):
        """Nothing to wait for: NumPy and PyTorch CPU calls return when done."""

    def clock(self, library):
        return WallClock()

    def meter(self, library):
        return TracemallocMeter() if library == "ours" else UnmeasuredMeter()


class CudaDevice:
    """A CUDA device: the backend's CuPy arrays against PyTorch CUDA tensors, each library
    timed by events on its own current stream."""

    kind = "cuda"
    torch_device = "cuda"
    memory_label = ("peak device memory: growth of CuPy's memory pool (ours), "
                    "torch.cuda.max_memory_allocated (PyTorch)")

    def __init__(self, backend):
        import cupy

        self.backend, self.cupy = backend, cupy
        self.torch, self.torch_missing = import_torch(self.kind)
        gpus, _ = gpu_devices()
        self.name = describe_gpu(cupy.cuda.Device().id, gpus[cupy.cuda.Device().id])

    def synchronize(self):
        self.backend.synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def clock(self, library):
        if library == "ours":
            return EventClock(self.cupy.cuda.Event, self.cupy.cuda.get_elapsed_time)
        return EventClock(lambda: self.torch.cuda.Event(enable_timing=True), lambda a, b: a.elapsed_time(b))

    def meter(self, library):
        return CupyPoolMeter(self) if library == "ours" else TorchCudaMeter(self.torch)


def open_device(backend=None):
    """The device of `backend` (default: the active one): CUDA when its arrays are CuPy's."""
    backend = backend or get_backend()
    return HostDevice(backend) if backend.xp is np else CudaDevice(backend)


# -- timing ------------------------------------------------------------------------
def median_ms(device, library, run, repeats, warmup=2):
    """Median milliseconds of one call of `run` over `repeats` timed calls, after
    `warmup` untimed ones; library is "ours" or "torch" (whose clock to read)."""
    if repeats < 1:
        raise ValueError(f"Invalid value received for argument `repeats`. Expected a positive integer. "
                         f"Received: repeats={repeats}")
    for _ in range(warmup):
        run()
    clock = device.clock(library)
    times = []
    for _ in range(repeats):
        started = clock.start()
        run()
        times.append(clock.stop_ms(started))
    return float(np.median(times))


def measure(device, library, run, repeats):
    """(median ms, peak bytes) of `run`: one warm-up call (compilation, optimizer state),
    one call under the memory meter, then `repeats` timed calls."""
    run()
    meter = device.meter(library)
    meter.start()
    run()
    meter.stop()
    return median_ms(device, library, run, repeats, warmup=1), meter.peak_bytes


def copy_bandwidth(device, nbytes, repeats):
    """Bytes per second of a copy of `nbytes` within the device's memory: 2 * nbytes / time
    (every byte read once and written once)."""
    xp = device.backend.xp
    source = xp.ones(nbytes // 4, dtype=np.float32)
    target = xp.empty_like(source)
    ms = median_ms(device, "ours", lambda: xp.copyto(target, source), repeats)
    return 2 * source.nbytes / (ms * 1e-3)


def floor_bytes(op, shape, itemsize=4):
    """The fewest bytes `op` must move for arrays of `shape` (FLOOR_ELEMENTS * itemsize)."""
    if op not in FLOOR_ELEMENTS:
        raise ValueError(f"Invalid value received for argument `op`. Expected one of {OPS}. Received: op={op!r}")
    return FLOOR_ELEMENTS[op](*shape) * itemsize


# -- the fused kernels ---------------------------------------------------------------
def kernel_cases(device, sizes, ops):
    """Yields (op, shape, ours, theirs) for each op in `ops` and size in `sizes`: zero-argument
    calls on fresh random float32 inputs; `theirs` is the PyTorch equivalent, or None.
    Consume each case before asking for the next: the next one rebinds the inputs."""
    backend, torch = device.backend, device.torch
    rng = np.random.default_rng(0)

    def ours(host):
        return backend.asarray(host)

    def theirs(host, requires_grad=False):
        return torch.from_numpy(host).to(device.torch_device, copy=True).requires_grad_(requires_grad)

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    if torch is not None:
        import torch.nn.functional as F
    for N, C in sizes["activations"]:
        x, dy = normal(N, C), normal(N, C)
        gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
        running_mean, running_var = np.zeros(C, np.float32), np.ones(C, np.float32)
        args = [ours(a) for a in (x, gamma, beta, running_mean, running_var)]
        if "batchnorm_forward" in ops:
            torch_run = None
            if torch is not None:
                t_x, t_gamma, t_beta, t_mean, t_var = (theirs(a) for a in (x, gamma, beta, running_mean, running_var))

                def torch_run():
                    with torch.no_grad():
                        F.batch_norm(t_x, t_mean, t_var, t_gamma, t_beta, training=True, momentum=0.01, eps=1e-3)

            yield ("batchnorm_forward", (N, C),
                   lambda: backend.ops.batchnorm_forward_train(*args, 0.99, 1e-3), torch_run)
        if "batchnorm_backward" in ops:
            _, mean, rstd = backend.ops.batchnorm_forward_train(*args, 0.99, 1e-3)
            d_output = ours(dy)
            torch_run = None
            if torch is not None:
                t_x, t_gamma, t_beta = theirs(x, True), theirs(gamma, True), theirs(beta, True)
                t_y = F.batch_norm(t_x, theirs(running_mean), theirs(running_var), t_gamma, t_beta,
                                   training=True, momentum=0.01, eps=1e-3)
                t_dy = theirs(dy)

                def torch_run():
                    torch.autograd.grad(t_y, (t_x, t_gamma, t_beta), t_dy, retain_graph=True)

            yield ("batchnorm_backward", (N, C),
                   lambda: backend.ops.batchnorm_backward(d_output, args[0], args[1], args[2], mean, rstd),
                   torch_run)
        if "dropout" in ops:
            torch_run = None
            if torch is not None:
                t_x = theirs(x)

                def torch_run():
                    with torch.no_grad():
                        F.dropout(t_x, REFERENCE_MLP["dropout"], training=True)

            yield ("dropout", (N, C), lambda: backend.ops.dropout(args[0], REFERENCE_MLP["dropout"], 1234), torch_run)
    if "softmax_cross_entropy" in ops:
        for m, C in sizes["logits"]:
            z, labels = normal(m, C), rng.integers(0, C, m)
            logits, d_logits, label_array = ours(z), ours(np.empty_like(z)), ours(labels)
            torch_run = None
            if torch is not None:
                t_z, t_labels = theirs(z, True), theirs(labels)

                def torch_run():
                    t_z.grad = None
                    F.cross_entropy(t_z, t_labels).backward()

            yield ("softmax_cross_entropy", (m, C),
                   lambda: backend.ops.softmax_cross_entropy(logits, label_array, d_logits), torch_run)
    if "adam" in ops:
        # the step's scalars come from a device-side table row chosen by a device-side counter
        step_table = ours(adam_step_table([1e-3], 9, 0.9, 0.999))  # step 10 at lr 1e-3
        step_counter = ours(np.zeros(1, np.int64))
        for n in sizes["arena"]:
            w, g = normal(n), normal(n) * np.float32(1e-3)
            param, grad, m1, m2 = ours(w), ours(g), ours(np.zeros(n, np.float32)), ours(np.zeros(n, np.float32))
            torch_run = None
            if torch is not None:
                t_param = torch.nn.Parameter(theirs(w))
                t_param.grad = theirs(g)
                torch_run = torch.optim.Adam([t_param], lr=1e-3, fused=True).step
            yield ("adam", (n,), lambda: backend.ops.adam(param, grad, m1, m2, step_table, step_counter,
                                                          0.9, 0.999, 1e-8), torch_run)


def kernel_rows(device, bandwidth, sizes, ops, repeats):
    """One result dict per (op, size): times, floor, fraction of it, speedup, peak bytes."""
    rows = []
    for op, shape, ours_run, torch_run in kernel_cases(device, sizes, ops):
        ms, peak = measure(device, "ours", ours_run, repeats)
        torch_ms, torch_peak = measure(device, "torch", torch_run, repeats) if torch_run else (None, None)
        floor_ms = floor_bytes(op, shape) / bandwidth * 1e3
        rows.append({"op": op, "shape": list(shape), "backend": device.backend.name, "ms": ms,
                     "torch_ms": torch_ms, "floor_ms": floor_ms, "bandwidth_fraction": floor_ms / ms,
                     "speedup_vs_torch": torch_ms / ms if torch_ms else None,
                     "peak_bytes": peak, "torch_peak_bytes": torch_peak})
    return rows


def geometric_mean_speedup(rows):
    """exp(mean(log(torch ms / ours ms))) over rows with a PyTorch time; None if none."""
    speedups = [row["speedup_vs_torch"] for row in rows if row["speedup_vs_torch"]]
    return math.exp(np.mean(np.log(speedups))) if speedups else None


def mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / MIB:.1f}"


def milliseconds(value):
    return "n/a" if value is None else f"{value:.3f}"


def print_kernel_rows(rows):
    """The kernel table (without a headline)."""
    header = (f"{'op':<22} {'shape':<12} {'backend':<7} {'ours ms':>9} {'torch ms':>9} {'floor ms':>9} "
              f"{'of floor':>8} {'vs torch':>8} {'ours MiB':>9} {'torch MiB':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        speedup = "n/a" if row["speedup_vs_torch"] is None else f"{row['speedup_vs_torch']:.2f}x"
        print(f"{row['op']:<22} {'x'.join(map(str, row['shape'])):<12} {row['backend']:<7} "
              f"{milliseconds(row['ms']):>9} {milliseconds(row['torch_ms']):>9} {row['floor_ms']:>9.3f} "
              f"{row['bandwidth_fraction']:>8.0%} {speedup:>8} {mib(row['peak_bytes']):>9} "
              f"{mib(row['torch_peak_bytes']):>9}")


# -- the reference training step ------------------------------------------------------
def synthetic_data(n, n_features, n_classes, seed=0):
    """x (n, n_features) float32 standard normal, y (n,) int64 labels of a random linear teacher."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_features), dtype=np.float32)
    y = (x @ rng.standard_normal((n_features, n_classes), dtype=np.float32)).argmax(axis=1)
    return x, y.astype(np.int64)


def gpudl_mlp(sizes, dropout_rate, **compile_options):
    """gpudl.Sequential: Dense, BatchNormalization, ReLU, Dropout per hidden width of `sizes`,
    then Dense(softmax), compiled with Adam(1e-3) and sparse softmax-cross-entropy."""
    from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

    layers = [gpudl.Input((sizes[0],))]
    for width in sizes[1:-1]:
        layers += [Dense(width, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(dropout_rate)]
    model = gpudl.Sequential(layers + [Dense(sizes[-1], activation="softmax")], seed=0)
    model.compile(optimizer=gpudl.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", **compile_options)
    return model


def torch_mlp(torch, sizes, dropout_rate, device):
    """The same net in torch.nn (BatchNorm1d with Keras's momentum 0.99 and epsilon 1e-3)."""
    nn = torch.nn
    layers = []
    for width_in, width in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(width_in, width), nn.BatchNorm1d(width, eps=1e-3, momentum=0.01), nn.ReLU(),
                   nn.Dropout(dropout_rate)]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1])).to(device)


def torch_train_step(torch, net, mark_cudagraph_step=False):
    """step(x, y): zero_grad, cross_entropy(net(x), y), backward, Adam(1e-3) step (fused
    kernel). mark_cudagraph_step tells torch.compile's CUDA graphs where a step begins."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)

    def step(x, y):
        if mark_cudagraph_step:
            torch.compiler.cudagraph_mark_step_begin()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    return step


class EpochTimer(Callback):
    """Times each epoch with the device synchronized at both ends. The first epoch is the
    warm-up: its end stops the memory meter (started before the model is built), so the
    peak covers building the model and one epoch, and the meter's overhead is not timed."""

    def __init__(self, device, meter):
        self.device, self.meter, self.seconds = device, meter, []

    def on_epoch_begin(self, epoch, logs=None):
        self.device.synchronize()
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.device.synchronize()
        self.seconds.append(time.perf_counter() - self.started)
        self.stop_meter()

    def stop_meter(self):
        """Stop the meter once: at the end of the warm-up epoch, or when training failed."""
        if self.meter is not None:
            self.meter.stop()
            self.meter = None

    def ms_per_step(self, steps):
        """Median epoch time after the warm-up epoch, per step."""
        return float(np.median(self.seconds[1:])) / steps * 1e3


def check_epochs(epochs):
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
        raise ValueError(f"Invalid value received for argument `epochs`. Expected an integer >= 2 "
                         f"(one warm-up epoch, then timed ones). Received: epochs={epochs!r}")


def measure_gpudl_fit(device, build_model, x, y, batch, epochs):
    """(ms per step, peak bytes) of model.fit over (x, y) for `epochs` epochs, the model
    built by build_model() under the memory meter."""
    check_epochs(epochs)
    meter = device.meter("ours")
    timer = EpochTimer(device, meter)
    meter.start()
    try:
        build_model().fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer])
    finally:
        timer.stop_meter()
    return timer.ms_per_step(len(x) // batch), meter.peak_bytes


def measure_torch_fit(device, build_step, x, y, batch, epochs):
    """(ms per step, peak bytes) of the same epochs in PyTorch: the data moved to the device,
    step = build_step(), then per epoch a shuffled pass of step(x_batch, y_batch)."""
    check_epochs(epochs)
    torch, on = device.torch, device.torch_device
    meter = device.meter("torch")
    timer = EpochTimer(device, meter)
    meter.start()
    try:
        x_device, y_device = torch.from_numpy(x).to(on), torch.from_numpy(y).to(on)
        step = build_step()
        for epoch in range(epochs):
            timer.on_epoch_begin(epoch)
            order = torch.randperm(len(x), device=on)
            for start in range(0, len(x), batch):
                index = order[start:start + batch]
                step(x_device[index], y_device[index])
            timer.on_epoch_end(epoch)
    finally:
        timer.stop_meter()
    return timer.ms_per_step(len(x) // batch), meter.peak_bytes


def fit_step_row(device, steps_per_epoch, epochs):
    """The reference MLP's training step, gpudl (compiled with its defaults) against torch eager."""
    sizes, batch, rate = REFERENCE_MLP["sizes"], REFERENCE_MLP["batch"], REFERENCE_MLP["dropout"]
    x, y = synthetic_data(steps_per_epoch * batch, sizes[0], sizes[-1])
    ms, peak = measure_gpudl_fit(device, lambda: gpudl_mlp(sizes, rate), x, y, batch, epochs)
    torch_ms = torch_peak = None
    if device.torch is not None:
        torch = device.torch
        torch_ms, torch_peak = measure_torch_fit(
            device, lambda: torch_train_step(torch, torch_mlp(torch, sizes, rate, device.torch_device)),
            x, y, batch, epochs)
    return {"model": "-".join(map(str, sizes)), "batch": batch, "dropout": rate,
            "steps_per_epoch": steps_per_epoch, "timed_epochs": epochs - 1, "training_data_bytes": x.nbytes + y.nbytes,
            "ms": ms, "torch_ms": torch_ms, "speedup_vs_torch": torch_ms / ms if torch_ms else None,
            "peak_bytes": peak, "torch_peak_bytes": torch_peak}


# -- `gpudl bench` ------------------------------------------------------------------------
def run_bench(quick=False, repeats=None):
    """Measure everything on the active backend's device; returns the JSON-able results."""
    device = open_device()
    key = (device.kind, bool(quick))
    repeats = DEFAULT_REPEATS[key] if repeats is None else repeats
    sizes = SIZES[key]
    bandwidth = copy_bandwidth(device, sizes["copy_bytes"], repeats)
    rows = kernel_rows(device, bandwidth, sizes, OPS, repeats)
    fit_row = fit_step_row(device, REFERENCE_STEPS_PER_EPOCH[bool(quick)], 1 + repeats)
    return {"device": device.name, "device_kind": device.kind, "backend": device.backend.name,
            "backend_reason": device.backend.reason, "torch_missing": device.torch_missing or None,
            "environment": environment(), "quick": bool(quick), "repeats": repeats,
            "copy_bytes": sizes["copy_bytes"], "copy_bandwidth_bytes_per_s": bandwidth,
            "memory_label": device.memory_label, "kernels": rows, "fit_step": fit_row,
            "headline": {"fit_step_speedup_vs_torch": fit_row["speedup_vs_torch"],
                         "kernels_speedup_vs_torch_geomean": geometric_mean_speedup(rows)}}


def print_bench(result):
    """The table; its last line is the headline ratio."""
    print(f"device: {result['device']}   backend: {result['backend']} ({result['backend_reason']})")
    print(f"PyTorch peer: {result['torch_missing'] or 'torch ' + result['environment']['versions']['torch']}   "
          f"copy bandwidth: {result['copy_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s "
          f"({result['copy_bytes'] / MIB:.0f} MiB copied, read + write counted)")
    print(result["memory_label"])
    print_kernel_rows(result["kernels"])
    fit = result["fit_step"]
    print(f"\nfit() step, MLP {fit['model']}, BN+ReLU+dropout {fit['dropout']}, softmax-CE, Adam, batch "
          f"{fit['batch']}: median of {fit['timed_epochs']} epochs of {fit['steps_per_epoch']} steps "
          f"on a {fit['training_data_bytes'] / MIB:.1f} MiB training set; peak: building through the warm-up epoch")
    speedup = "n/a" if fit["speedup_vs_torch"] is None else f"{fit['speedup_vs_torch']:.2f}x"
    print(f"{'ours ms/step':>12} {'torch ms/step':>13} {'vs torch':>8} {'ours MiB':>9} {'torch MiB':>9}")
    print(f"{milliseconds(fit['ms']):>12} {milliseconds(fit['torch_ms']):>13} {speedup:>8} "
          f"{mib(fit['peak_bytes']):>9} {mib(fit['torch_peak_bytes']):>9}")
    headline = result["headline"]
    if headline["fit_step_speedup_vs_torch"] is None:
        print(f"headline: no PyTorch peer ({result['torch_missing']}); gpudl fit step {fit['ms']:.3f} ms")
    else:
        print(f"headline: PyTorch time / gpudl time: fit step {headline['fit_step_speedup_vs_torch']:.2f}x, "
              f"fused kernels {headline['kernels_speedup_vs_torch_geomean']:.2f}x (geometric mean of "
              f"{len(result['kernels'])}); above 1 means gpudl is faster")
