"""`gpudl selftest`: the first command on a new machine; prints one table and a verdict.

On a GPU: every fused kernel of both GPU backends (Triton, CuPy) against its NumPy
reference on the device (awkward shapes, float32 and float64, dropout masks
bit-identical), a 200-step fit on each GPU backend against the numpy backend, and each
kernel's fraction of the measured device copy bandwidth.

On a CPU: every Triton kernel compiled ahead of time for sm_80 and sm_90a and every CuPy
kernel compiled with NVRTC for sm_80 and sm_90 (registers, spills, shared memory read
from ptxas), then the same kernel checks on the CPU, under sanitizers: Triton in its
interpreter at an H100's block sizes and grids, every lane of every load and store
checked against the argument its pointer derives from, races between programs refused,
outputs starting as NaN (gpudl.tools.triton_sanitizer); CuPy's CUDA C (the exact text
NVRTC compiled) through the CUDA-on-CPU harness (gpudl.tools.cuda_cpu; needs g++): launch
limits, guard pages, shared arrays bounds-checked and poisoned per block, each block run
alone to find races between blocks. Each family of both also gets an index-overflow row
(sizes past 2**31 elements, unallocated: gpudl.tools.index_overflow), and each Triton
family a stream row (every launch on CuPy's current stream: gpudl.tools.stream_check). Each kernel family's
checks run in a worker process of their own, so a crash fails that family's rows by name
and nothing else. `--family F` checks one kernel module.

The cases are gpudl.tools.cases's, shared with the kernel tests, and built to fail a wrong
kernel (large means, large logits, in-place updates compared on separate copies).

Every row is (check, kernel, case, where, measure, result). The verdict is PASS (exit 0)
only when every row passed; FAIL when one failed; INCOMPLETE (exit 1) when a check could
not run here (no NVRTC, no g++). It says what ran where: a CPU run never ran on a GPU.
"""

import argparse
import concurrent.futures
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import numpy as np

from gpudl import kernels
from gpudl.tools import cases
from gpudl.tools.nvrtc import find_nvrtc, nvrtc_compile, parse_ptxas  # noqa: F401 (also selftest's API)

# compile targets: (name, compute capability); sm_90 compiles as sm_90a (wgmma, setmaxnreg)
TRITON_TARGETS = (("sm_80", 80), ("sm_90a", 90))
NVRTC_TARGETS = (("sm_80", 80), ("sm_90", 90))
SM80_MAX_SHARED_BYTES = 163 * 1024  # opt-in shared memory per block on an A100
KERNEL_MODULES = kernels.MODULES


class Row(NamedTuple):
    check: str  # "compile", "kernel", "overflow", "stream", "fit", "bandwidth"
    kernel: str
    case: str
    where: str  # target or device
    measure: str
    result: str  # "pass", "FAIL" or "skip"


def kernel_module(name):
    return importlib.import_module(f"gpudl.kernels.{name}")


# ---------------------------------------------------------------------------
# Resources from ptxas -v
# ---------------------------------------------------------------------------

def resource_row(kernel, case, target, registers, spills, shared):
    ok = spills == 0 and shared <= SM80_MAX_SHARED_BYTES
    return Row("compile", kernel, case, target, f"{registers} regs, {spills} B spilled, {shared} B shared",
               "pass" if ok else "FAIL")


# ---------------------------------------------------------------------------
# Section 1: every Triton specialization, ahead of time (no device needed)
# ---------------------------------------------------------------------------

def triton_specializations(modules=KERNEL_MODULES):
    """[(module name, index, TritonSpec)] over the kernel modules' launch tables."""
    return [(name, i, spec) for name in modules
            for i, spec in enumerate(kernel_module(name).triton_specializations())]


def compile_triton(module_name, index, target_name, capability):
    """Compile one specialization for one target; its Row (run in a compiled-Triton process)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas

    spec = list(kernel_module(module_name).triton_specializations())[index]
    kernel_name = f"{module_name}.{spec.kernel.__name__}"
    pointer_params = [i for i, t in enumerate(spec.signature.values()) if t.startswith("*")]
    # the launchers' buffers are whole CuPy allocations: 16-byte aligned, as Triton assumes
    attrs = {(i,): [["tt.divisibility", 16]] for i in pointer_params}
    source = triton.compiler.ASTSource(spec.kernel, spec.signature, spec.constexprs, attrs)
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32),
                                  options={"num_warps": spec.num_warps})
    except Exception as error:  # a kernel that stops compiling is a failed row, not a crash
        return Row("compile", kernel_name, spec.label, target_name, f"{type(error).__name__}: {error}"[:200],
                   "FAIL")
    with tempfile.TemporaryDirectory() as directory:
        ptx = os.path.join(directory, "kernel.ptx")
        with open(ptx, "w") as f:
            f.write(compiled.asm["ptx"])
        gpu = "sm_90a" if capability == 90 else f"sm_{capability}"
        done = subprocess.run([get_ptxas(capability).path, "-v", f"--gpu-name={gpu}", ptx, "-o",
                               os.path.join(directory, "kernel.cubin")], capture_output=True, text=True)
    if done.returncode != 0:
        return Row("compile", kernel_name, spec.label, target_name, done.stderr.strip()[:200], "FAIL")
    registers, spills, static_shared = parse_ptxas(done.stdout + done.stderr)
    return resource_row(kernel_name, spec.label, target_name, registers, spills,
                        static_shared + compiled.metadata.shared)


def _compile_task(task):
    return compile_triton(*task)


def triton_compile_rows_here(workers, quick=False, modules=KERNEL_MODULES):
    """The compile table of `modules`, computed in this process (Triton must not be
    interpreted here); quick: float32 specializations for sm_90a only."""
    targets = TRITON_TARGETS[-1:] if quick else TRITON_TARGETS
    tasks = [(name, i, target, capability) for name, i, spec in triton_specializations(modules)
             for target, capability in targets if not (quick and spec.label.startswith("fp64"))]
    if workers <= 1:
        return [compile_triton(*task) for task in tasks]
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_compile_task, tasks, chunksize=4))


class Section(NamedTuple):
    """One worker process of the CPU selftest: a section for one kernel family, so a crash
    there fails that family's rows by name and loses nothing else."""
    name: str  # "triton-compile", "nvrtc" or "cpu-kernels"
    family: str  # a module of gpudl.kernels
    implementation: str = ""  # cpu-kernels: "triton" or "cupy"

    @property
    def where(self):
        return {"triton-compile": "Triton AOT", "nvrtc": "NVRTC"}.get(self.name) or CPU_WHERE[self.implementation]

    @property
    def kernel(self):
        return f"{self.implementation} {self.family}" if self.implementation else f"{self.family} (all kernels)"


def section_command(section, quick):
    command = [sys.executable, "-m", "gpudl.tools.selftest", "--section", section.name, "--family", section.family]
    if section.implementation:
        command += ["--implementation", section.implementation]
    return command + (["--quick"] if quick else [])


def run_section(section, quick=False):
    """Rows of one section, computed by `python -m gpudl.tools.selftest --section ...` in a fresh
    process (Triton picks compiled or interpreted mode once, at import). The worker prints each
    row as it is made: when it crashes, the rows it finished stay and one more row fails,
    naming the family and how the process ended."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if section.implementation == "triton":
        env["TRITON_INTERPRET"] = "1"
        env["GPUDL_GPU_SIZES"] = "1"  # block sizes and grids as an H100/H200 launches them
    done = subprocess.run(section_command(section, quick), capture_output=True, text=True, env=env)
    rows = [Row(*json.loads(line[len("ROW "):])) for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        check = "compile" if section.name != "cpu-kernels" else "kernel"
        rows.append(Row(check, section.kernel, f"after {len(rows)} rows", section.where,
                        f"worker crashed ({how}): {done.stderr.strip()[-300:]}", "FAIL"))
    return rows


def run_sections(sections, workers, quick):
    """Every section's rows, in the order given; `workers` processes at a time, the
    interpreted Triton checks (the longest) started first."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        started = {section: pool.submit(run_section, section, quick)
                   for section in sorted(sections, key=lambda section: section.implementation != "triton")}
        return [row for section in sections for row in started[section].result()]


# ---------------------------------------------------------------------------
# Section 2: every CuPy kernel through NVRTC, with CuPy's options
# ---------------------------------------------------------------------------

def cupy_sources(modules=KERNEL_MODULES):
    """[(kernel label, dtype name, source, name expression, user options)] of every CuPy
    kernel of `modules` the launchers use, for float and double: the exact text and
    options the launchers hand to cupy.RawModule."""
    from gpudl.kernels import _triton_util as util

    sources = []
    for module_name in modules:
        for kernel in kernel_module(module_name).CUPY_KERNELS:
            for dtype, ctype in util.CTYPES.items():
                label = f"{module_name}.{kernel.name}"
                source = kernel.source if isinstance(kernel, util.CupyRaw) else kernel.source(ctype)
                sources.append((label, dtype.name, source, kernel.expression(dtype), util.CUPY_OPTIONS))
    return sources


def nvrtc_available():
    return find_nvrtc() is not None


def nvrtc_rows(quick=False, modules=KERNEL_MODULES):
    """The NVRTC compile table of `modules`; quick: float sources for sm_90 only."""
    nvrtc = find_nvrtc()
    if nvrtc is None:
        return [nvrtc_missing_row()]
    rows = []
    for label, dtype, source, expression, options in cupy_sources(modules):
        if quick and dtype != "float32":
            continue
        for target, capability in NVRTC_TARGETS[-1:] if quick else NVRTC_TARGETS:
            ok, log = nvrtc_compile(nvrtc, source, expression,
                                    [*options, "-ftz=true", f"-arch=sm_{capability}", "--ptxas-options=-v"])
            if not ok:
                rows.append(Row("compile", label, dtype, target, log.strip()[:300], "FAIL"))
            else:
                rows.append(resource_row(label, dtype, target, *parse_ptxas(log)))
    return rows


def nvrtc_missing_row():
    return Row("compile", "CuPy kernels", "-", "NVRTC", "NVRTC not installed (pip install -e '.[test]')", "skip")


# ---------------------------------------------------------------------------
# The kernel checks: each GPU implementation against the NumPy reference, on the
# device (put/get move arrays there and back), awkward shapes, both dtypes
# ---------------------------------------------------------------------------

DTYPES = cases.DTYPES
FAMILIES = KERNEL_MODULES  # one subprocess per (implementation, family): a crash loses that family only


def error_in_ulps(actual, expected, dtype, scale):
    """max |actual - expected| in roundings of `dtype` at the magnitude max(|expected|, scale)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if np.isnan(actual).any() or actual.shape != expected.shape:
        return float("inf")
    size = np.maximum(np.abs(expected), scale)
    return float((np.abs(actual - expected) / size).max() / np.finfo(dtype).eps) if actual.size else 0.0


class KernelChecks:
    """Checks of one implementation ("triton" or "cupy") on one device. `put` must copy
    (np.array on the CPU, cupy.asarray on a device): the launchers update buffers in place
    and the NumPy reference updates its own copies, so an update that never happens or
    writes garbage cannot compare an array with itself. Every case draws fresh inputs
    from its own generator; the cases are gpudl.tools.cases's, shared with the tests."""

    def __init__(self, implementation, where, put, get, ulps=64, on_row=None):
        self.implementation, self.where, self.put, self.get, self.ulps = implementation, where, put, get, ulps
        self.rows = []
        self.on_row = on_row  # called with each row as it is recorded (a worker prints it at once)
        self.launched = set()  # names of the ops of gpudl.kernels.OPS the checks have run
        self.failing_op = None  # the op whose launcher raised in the running check

    def launcher(self, op_name):
        """This implementation of the op named `op_name` in gpudl.kernels.OPS; when it raises,
        `failing_op` names it (the failed row names the op, not only its family)."""
        self.launched.add(op_name)
        function = kernels.implementation(op_name, "_" + self.implementation)

        def launch(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception:
                self.failing_op = op_name
                raise

        return launch

    def add(self, row):
        self.rows.append(row)
        if self.on_row:
            self.on_row(row)

    def record_coverage(self, modules=None):
        """One row: every op of gpudl.kernels.OPS (of `modules`, default all) was run by a
        check (a new row of the list without a check here fails, naming the op)."""
        ops = [op for op in kernels.OPS if modules is None or op.module in modules]
        missing = [op.name for op in ops if op.name not in self.launched]
        measure = f"not checked: {', '.join(missing)}" if missing else "every op checked against its reference"
        case = f"{len(ops)} ops" + (f" of {', '.join(modules)}" if modules else "")
        self.add(Row("kernel", f"{self.implementation} op list", case, self.where, measure,
                     "FAIL" if missing else "pass"))

    def record(self, kernel, case, errors):
        """errors: {what: ulps}; pass when every error is within self.ulps."""
        worst = max(errors.values())
        measure = ", ".join(f"{k} {v:.3g}" for k, v in errors.items()) + " ulp"
        self.add(Row("kernel", f"{self.implementation} {kernel}", case, self.where, measure,
                     "pass" if worst <= self.ulps else "FAIL"))

    def record_exact(self, kernel, case, mismatches):
        self.add(Row("kernel", f"{self.implementation} {kernel}", case, self.where,
                     f"{mismatches} elements differ (bit-exact)", "pass" if mismatches == 0 else "FAIL"))

    def batchnorm(self, case, dtype, relu):
        from gpudl.kernels import batchnorm

        rng = np.random.default_rng([case.N, case.C, int(case.mean), int(relu)])
        x, gamma, beta, running_mean, running_var, dy = cases.batchnorm_inputs(rng, case, dtype)
        device_stats = [self.put(running_mean), self.put(running_var)]  # copies: the reference updates its own
        y, mean, rstd = batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.9, 1e-3, relu)
        y2, mean2, rstd2 = self.launcher("batchnorm_forward_train")(
            self.put(x), self.put(gamma), self.put(beta), *device_stats, 0.9, 1e-3, relu)
        # x - mean carries the roundings of |x| ~ |mean|: the scales grow with the mean
        size = abs(case.mean) + case.spread
        y_scale = size / case.spread * np.abs(gamma).max() + np.abs(beta).max()
        label = f"{np.dtype(dtype).name} {(case.N, case.C)} mean={case.mean:g} relu={relu}"
        self.record("batchnorm forward_train", label, {
            "y": error_in_ulps(self.get(y2), y, dtype, y_scale),
            "mean": error_in_ulps(self.get(mean2), mean, dtype, size),
            "rstd": error_in_ulps(self.get(rstd2), rstd, dtype, 1),
            "running mean": error_in_ulps(self.get(device_stats[0]), running_mean, dtype, abs(case.mean) + 1),
            "running var": error_in_ulps(self.get(device_stats[1]), running_var, dtype, 1)})
        infer = batchnorm.forward_infer(x, gamma, beta, running_mean, running_var, 1e-3, relu)
        infer2 = self.launcher("batchnorm_forward_infer")(self.put(x), self.put(gamma), self.put(beta),
                                                          self.put(running_mean), self.put(running_var), 1e-3, relu)
        self.record("batchnorm forward_infer", label,
                    {"y": error_in_ulps(self.get(infer2), infer, dtype, y_scale)})
        mean, rstd = self.get(mean2), self.get(rstd2)  # the kernel's statistics: the backward alone is checked
        dx, dgamma, dbeta = batchnorm.backward(dy, x, gamma, beta, mean, rstd, relu)
        dx2, dgamma2, dbeta2 = self.launcher("batchnorm_backward")(
            self.put(dy), self.put(x), self.put(gamma), self.put(beta), self.put(mean), self.put(rstd), relu)
        self.record("batchnorm backward", label, {
            "dx": error_in_ulps(self.get(dx2), dx, dtype,
                                np.abs(gamma * rstd).max() * (1 + abs(case.mean) * np.finfo(dtype).eps)),
            "dgamma": error_in_ulps(self.get(dgamma2), dgamma, dtype, np.sqrt(case.N)),
            "dbeta": error_in_ulps(self.get(dbeta2), dbeta, dtype, np.sqrt(case.N))})

    def dropout(self, case, dtype):
        from gpudl.kernels import dropout

        rng = np.random.default_rng([len(case.shape), case.seed % 1000])
        x, dy = (rng.standard_normal(case.shape).astype(dtype) for _ in range(2))
        seed_counter = np.array([7, 2**32 + 3], dtype=np.int64)
        label = f"{np.dtype(dtype).name} {case.shape}"
        calls = [("dropout", (x,), (case.rate, case.seed)), ("dropout_relu", (x,), (case.rate, case.seed)),
                 ("dropout_relu_backward", (dy, x), (case.rate, case.seed)),
                 ("dropout", (x,), (case.rate, case.seed, seed_counter)),
                 ("dropout", (x,), (case.rate, case.seed, seed_counter, cases.DROPOUT_OFFSET)),
                 ("dropout_relu_backward", (dy, x), (case.rate, case.seed, None, cases.DROPOUT_OFFSET))]
        for name, arrays, scalars in calls:
            expected = getattr(dropout, name)(*arrays, *scalars)
            device_scalars = tuple(self.put(s) if isinstance(s, np.ndarray) else s for s in scalars)  # the counter
            actual = self.get(self.launcher(name)(*map(self.put, arrays), *device_scalars))
            what = name + (" key from [index, call]" if len(scalars) >= 3 and scalars[2] is not None else "")
            what += f" offset={scalars[3]}" if len(scalars) == 4 else ""
            mismatches = actual.size if actual.shape != expected.shape else int(np.count_nonzero(actual != expected))
            self.record_exact(f"{what} rate={case.rate}", label, mismatches)
        # batch-norm's apply + ReLU + dropout (the fused block's forward), on x as (N, C)
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim >= 2 else x.reshape(1, -1)
        columns = [rng.standard_normal(x2.shape[1]).astype(dtype) for _ in range(4)]
        columns[1] = np.abs(columns[1])  # rstd
        for offset in (0, cases.DROPOUT_OFFSET):
            expected = dropout.normalize_dropout_relu(x2, *columns, case.rate, case.seed, seed_counter, offset)
            actual = self.get(self.launcher("normalize_dropout_relu")(
                self.put(x2), *map(self.put, columns), case.rate, case.seed, self.put(seed_counter), offset))
            mismatches = actual.size if actual.shape != expected.shape else int(np.count_nonzero(actual != expected))
            self.record_exact(f"normalize_dropout_relu{f' offset={offset}' if offset else ''} rate={case.rate}", label,
                              mismatches)

    def softmax_cross_entropy(self, case, dtype):
        from gpudl.kernels import softmax_cross_entropy

        rng = np.random.default_rng([case.m, case.C, int(np.log10(case.scale) + 40)])
        fused = self.launcher("softmax_cross_entropy")
        label = f"{np.dtype(dtype).name} {(case.m, case.C)} logits x{case.scale:g}"
        for kind, epsilon in itertools.product(("index labels", "soft labels"), (0.0, cases.KERAS_EPSILON)):
            logits, index, soft = cases.softmax_inputs(rng, case, dtype)  # fresh logits per row
            labels = index if kind == "index labels" else soft
            loss, dz = softmax_cross_entropy.softmax_cross_entropy(logits, labels, epsilon=epsilon)
            loss2, dz2 = fused(self.put(logits), self.put(labels), epsilon=epsilon)
            in_place = self.put(logits)
            loss3, dz3 = fused(in_place, self.put(labels), in_place, epsilon=epsilon)
            what = f"{kind}, probabilities clipped at {epsilon:g}" if epsilon else kind
            self.record("softmax_cross_entropy", f"{label} {what}", {
                "loss": error_in_ulps(float(loss2), loss, dtype, 1),
                "dZ*m": error_in_ulps(self.get(dz2) * case.m, dz * case.m, dtype, 1),
                "in place vs not": error_in_ulps(self.get(dz3), self.get(dz2), dtype, 1e-300)
                + error_in_ulps(float(loss3), float(loss2), dtype, 1e-300)})
        logits = cases.softmax_inputs(rng, case, dtype)[0]
        probabilities = self.get(self.launcher("softmax")(self.put(logits)))
        self.record("softmax", label, {
            "a": error_in_ulps(probabilities, softmax_cross_entropy.softmax(logits), dtype, 1 / case.C)})

    def optimizer(self, case, n, step, dtype):
        from gpudl.kernels import optimizer_updates as updates

        rng = np.random.default_rng([n, case.buffers, case.first_step, step])
        expected = cases.optimizer_inputs(rng, case, n, dtype)
        actual = [self.put(a) for a in expected]  # copies: the reference updates `expected` in place
        step_table = cases.optimizer_step_table(case)
        step_counter = np.array([step], dtype=np.int64)
        getattr(updates, case.rule)(*expected, step_table, step_counter, *case.constants)
        self.launcher(case.rule)(*actual, self.put(step_table), self.put(step_counter), *case.constants)
        name = case.rule + (" nesterov" if case.constants[1:] == (True,) else "")
        when = f" t={case.first_step + step + 1}" if case.rule == "adam" else ""
        errors = [error_in_ulps(self.get(a), e, dtype, np.abs(e).max()) for a, e in zip(actual, expected)]
        self.record(name, f"{np.dtype(dtype).name} n={n}{when}", {"buffers": max(errors)})

    def family_cases(self, family, tier, dtypes):
        """[(kernel, case label, check)] of one kernel module's checks."""
        tasks = []
        for dtype in dtypes:
            name = np.dtype(dtype).name
            if family == "batchnorm":
                tasks += [("batchnorm", f"{name} {c}", lambda c=c, d=dtype, r=relu: self.batchnorm(c, d, r))
                          for c in cases.upto(cases.BATCHNORM, tier) for relu in (False, True)]
            elif family == "dropout":
                tasks += [("dropout", f"{name} {c}", lambda c=c, d=dtype: self.dropout(c, d))
                          for c in cases.upto(cases.DROPOUT, tier)]
            elif family == "softmax_cross_entropy":
                tasks += [("softmax_cross_entropy", f"{name} {c}", lambda c=c, d=dtype: self.softmax_cross_entropy(c, d))
                          for c in cases.upto(cases.SOFTMAX, tier)]
            elif family == "optimizer_updates":
                sizes = [n for n, size_tier in cases.OPTIMIZER_SIZES if size_tier <= tier]
                tasks += [(c.rule, f"{name} n={n} step={s} {c}",
                           lambda c=c, n=n, s=s, d=dtype: self.optimizer(c, n, s, d))
                          for c in cases.OPTIMIZER for n in sizes for s in cases.OPTIMIZER_STEPS]
        return tasks

    def run_family(self, family, tier=0, dtypes=DTYPES):
        """Every check of one kernel module; an exception fails its case's row, naming the
        kernel, and the others still run."""
        tasks = self.family_cases(family, tier, dtypes)
        if not tasks:
            self.add(Row("kernel", f"{self.implementation} {family}", "-", self.where,
                         "no check for this kernel module in gpudl selftest", "FAIL"))
        for kernel, label, check in tasks:
            self.failing_op = None
            try:
                check()
            except Exception as error:  # a launcher that raises is a failed row, not a lost section
                self.add(Row("kernel", f"{self.implementation} {self.failing_op or kernel}", label, self.where,
                             f"{type(error).__name__}: {error}"[:300], "FAIL"))
        self.record_coverage((family,))
        return self.rows

    def run_all(self, tier=0, dtypes=DTYPES, families=FAMILIES):
        for family in families:
            self.run_family(family, tier, dtypes)
        return self.rows


CPU_WHERE = {"triton": "Triton interpreter (sanitized, H100 sizes)", "cupy": "CUDA on CPU (g++, sanitized)"}


def cpu_kernel_rows(implementation, family, quick=False, on_row=None):
    """One family's kernel checks on the CPU: Triton interpreted (TRITON_INTERPRET=1 in this
    process) or CuPy's CUDA C through the CUDA-on-CPU harness; both dtypes, quick or not
    (quick: the tier-0 cases)."""
    checks = KernelChecks(implementation, CPU_WHERE[implementation], np.array, np.asarray, on_row=on_row)
    if implementation == "triton":
        from gpudl.tools import triton_sanitizer

        triton_sanitizer.install()  # loads and stores checked against their argument, races; outputs start as NaN
        return checks.run_family(family, 0 if quick else 1)
    from gpudl.tools.cuda_cpu import cupy_on_cpu

    with cupy_on_cpu():
        return checks.run_family(family, 0 if quick else 1)


def stream_row(family):
    """One row: every Triton launch of the family's checks (the first float32 case of each
    kernel) goes to CuPy's current stream (gpudl.tools.stream_check's recording stand-ins)."""
    from gpudl.tools import stream_check

    where = "Triton interpreter (streams recorded)"
    checks = KernelChecks("triton", where, stream_check.device, np.asarray)
    first = {}
    for kernel, label, check in checks.family_cases(family, 0, (np.float32,)):
        first.setdefault(kernel, check)
    try:
        with stream_check.recorded_launches() as launches:
            for check in first.values():
                check()
    except Exception as error:
        return Row("stream", f"triton {family}", "first case of each kernel", where,
                   f"{type(error).__name__}: {error}"[:300], "FAIL")
    wrong = [row for row in checks.rows if row.result != "pass"]
    missing = sorted(stream_check.triton_kernels(kernel_module(family)) - {name for name, _ in launches})
    off_stream = sorted({name for name, stream in launches if stream != stream_check.CUPY_STREAM})
    measure = (f"{len(launches)} launches, {len(off_stream)} off CuPy's stream"
               + (f" ({', '.join(off_stream)})" if off_stream else "")
               + (f"; never launched: {', '.join(missing)}" if missing else "")
               + (f"; {len(wrong)} rows wrong: {wrong[0].kernel} {wrong[0].measure}" if wrong else ""))
    return Row("stream", f"triton {family}", "first case of each kernel", where, measure[:300],
               "pass" if launches and not (off_stream or missing or wrong) else "FAIL")


# ---------------------------------------------------------------------------
# On a GPU: the kernel checks on the device, a 200-step fit, bandwidth fractions
# ---------------------------------------------------------------------------

def fit_weights(backend_name, steps, batch=16, seed=7):
    """Weights after `steps` Adam steps of a Dense-BatchNorm-ReLU-Dropout-softmax model."""
    import gpudl
    from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

    previous = gpudl.get_backend().name
    backend = gpudl.set_backend(backend_name)
    try:
        gpudl.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(steps * batch, 20)).astype(np.float32)
        y = rng.integers(0, 5, steps * batch)
        model = gpudl.Sequential([gpudl.Input((20,)), Dense(32, use_bias=False), BatchNormalization(), ReLU(),
                                  Dropout(0.25), Dense(5, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        return [backend.to_numpy(w) for w in model.get_weights()]
    finally:
        gpudl.set_backend(previous)


FIT_TOLERANCE = 1e-4  # relative; 200 steps in the Triton interpreter end within 4e-6 of numpy


def fit_rows(backend_names, steps):
    """Each backend's weights after `steps` steps against the numpy backend's (same seed:
    same dropout masks): max |w - w_numpy| / (|w_numpy| + 1e-3)."""
    reference = fit_weights("numpy", steps)
    rows = []
    for name in backend_names:
        weights = fit_weights(name, steps)
        worst = max(float(np.max(np.abs(w - r) / (np.abs(r) + 1e-3))) for w, r in zip(weights, reference))
        rows.append(Row("fit", f"{name} backend", f"{steps} Adam steps, same seed", name,
                        f"weights within {worst:.2e} (relative) of numpy",
                        "pass" if worst <= FIT_TOLERANCE else "FAIL"))
    return rows


def bandwidth_rows(backend_names, quick):
    """Each fused kernel's time and fraction of the device copy bandwidth (gpudl bench's
    measurement at its quick GPU sizes)."""
    from gpudl import backend as backends
    from gpudl.tools import bench

    previous = backends.get_backend().name
    rows = []
    for name in backend_names:
        device = bench.open_device(backends.set_backend(name))
        sizes = bench.SIZES[("cuda", True)]
        bandwidth = bench.copy_bandwidth(device, sizes["copy_bytes"], 5)
        for row in bench.kernel_rows(device, bandwidth, sizes, bench.OPS, 3 if quick else 10):
            rows.append(Row("bandwidth", f"{name} {row['op']}", str(tuple(row["shape"])), name,
                            f"{row['ms']:.3f} ms, {row['bandwidth_fraction']:.0%} of copy bandwidth "
                            f"({bandwidth / 1e9:.0f} GB/s)", "pass"))
    backends.set_backend(previous)
    return rows


def gpu_rows(quick, families=FAMILIES):
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    rows = []
    backend_names = ["cupy"]
    try:
        import triton  # noqa: F401

        backend_names.insert(0, "triton")
    except ImportError:
        rows.append(Row("kernel", "triton", "-", name, "Triton not installed", "FAIL"))
    for implementation in backend_names:
        checks = KernelChecks(implementation, name, cupy.asarray, cupy.asnumpy)
        rows += checks.run_all(0 if quick else 2, families=families)
    rows += fit_rows(backend_names, 200)
    rows += bandwidth_rows(backend_names, quick)
    return rows


# ---------------------------------------------------------------------------
# The table and the command
# ---------------------------------------------------------------------------

def print_table(rows, file=sys.stdout):
    columns = list(zip(*rows)) if rows else [[] for _ in Row._fields]
    widths = [max([len(field)] + [len(str(v)) for v in column]) for field, column in zip(Row._fields, columns)]
    for row in [Row._fields, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip(), file=file)


def where_it_ran(rows, gpu=False):
    """What ran where, from the rows: compile targets and the places kernels executed."""
    ran = [r for r in rows if r.result != "skip"]
    targets = sorted({r.where for r in ran if r.check == "compile" and r.where.startswith("sm_")})
    executed = sorted({r.where for r in ran if r.check == "kernel"})
    if gpu:
        return f"GPU: kernels executed on {', '.join(executed) or 'nothing'}"
    return (f"CPU: compiled for {', '.join(targets) or 'no target'}, executed in "
            f"{' and '.join(executed) or 'nothing'}; not run on a GPU")


def verdict(rows, seconds, gpu=False):
    """PASS only when every row passed; INCOMPLETE when a check could not run here (no
    NVRTC, no g++): a skipped check proves nothing, so it is not a pass either."""
    failed = sum(r.result == "FAIL" for r in rows)
    skipped = sum(r.result == "skip" for r in rows)
    passed = len(rows) - failed - skipped
    word = "FAIL" if failed or not passed else "INCOMPLETE" if skipped else "PASS"
    return (f"selftest {word}: {passed} passed, {failed} failed, {skipped} skipped in {seconds:.0f}s "
            f"({where_it_ran(rows, gpu)})")


def on_gpu():
    from gpudl.backend import cuda_device_count

    return cuda_device_count() > 0


def harness_available():
    """The CUDA-on-CPU harness compiles the CUDA C with g++."""
    return shutil.which("g++") is not None


def harness_missing_row():
    return Row("kernel", "cupy", "-", "CUDA on CPU", "g++ not found: the CuPy kernels were not executed", "skip")


def cpu_sections(families=FAMILIES):
    """The worker processes of the CPU selftest, one per kernel family and check, in the
    order of the table."""
    sections = [Section("triton-compile", family) for family in families]
    sections += [Section("nvrtc", family) for family in families] if nvrtc_available() else []
    implementations = ("triton", "cupy") if harness_available() else ("triton",)
    sections += [Section("cpu-kernels", family, name) for name in implementations for family in families]
    return sections


def selftest(quick=False, workers=2, families=FAMILIES):
    """Run every check for this machine (of the kernel modules `families`); returns the rows."""
    if on_gpu():
        return gpu_rows(quick, families)
    sections = cpu_sections(families)
    rows = run_sections(sections, workers, quick)
    if not any(section.name == "nvrtc" for section in sections):
        rows.append(nvrtc_missing_row())
    if not any(section.implementation == "cupy" for section in sections):
        rows.append(harness_missing_row())
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpudl selftest", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--section", choices=("triton-compile", "nvrtc", "cpu-kernels"), help=argparse.SUPPRESS)
    parser.add_argument("--implementation", choices=("triton", "cupy"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:  # a worker process: rows as JSON lines, each as soon as it is made
        def emit(row):
            print("ROW " + json.dumps(list(row)), flush=True)

        (family,) = args.family
        if args.section == "triton-compile":
            for row in triton_compile_rows_here(1, args.quick, (family,)):
                emit(row)
        elif args.section == "nvrtc":
            for row in nvrtc_rows(args.quick, (family,)):
                emit(row)
        else:
            cpu_kernel_rows(args.implementation, family, args.quick, on_row=emit)
            from gpudl.tools import index_overflow  # in the worker only: sizes past 2**31, streams

            for row in index_overflow.overflow_rows(family, Row, CPU_WHERE[args.implementation], args.implementation):
                emit(row)
            if args.implementation == "triton":
                emit(stream_row(family))
        return 0
    return run(args)


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="GPU: smaller shapes, fewer repeats; CPU: the tier-0 cases, sm_90 only")
    parser.add_argument("--workers", type=int, default=2, help="worker processes at a time (CPU)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON here")
    parser.add_argument("--family", choices=FAMILIES, action="append",
                        help="check only this kernel module (repeatable; default: all)")


def run(args):
    if args.workers < 1:
        raise SystemExit(f"gpudl selftest: Invalid value received for argument `--workers`. "
                         f"Expected a positive integer. Received: --workers={args.workers}")
    start = time.perf_counter()
    gpu = on_gpu()
    rows = selftest(args.quick, args.workers, tuple(args.family or FAMILIES))
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r._asdict() for r in rows], f, indent=1)
    line = verdict(rows, time.perf_counter() - start, gpu)
    print(line)
    return 0 if line.startswith("selftest PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
