"""Benchmark the fused kernels against PyTorch and against the memory-bandwidth floor.

    python perf/kernels.py [--json PATH] [--repeats 20] [--only batchnorm,dropout,...]

For each op and size: our median time (CUDA events) for the Triton and the CuPy
kernels, PyTorch's equivalent in the same run, the floor = fewest bytes the op must
move / device-to-device copy bandwidth measured in this run, and the fraction of that
floor reached (floor / our time). The last line is the headline ratio: the geometric
mean of PyTorch time / our Triton time over all rows.
Needs a CUDA device with CuPy, Triton and PyTorch (CUDA build).
"""

import argparse
import json
import math
import sys

import numpy as np

OPS = ("batchnorm_forward", "batchnorm_backward", "dropout", "softmax_cross_entropy", "adam")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (median)")
    parser.add_argument("--only", default=",".join(OPS), help="comma-separated subset of " + ", ".join(OPS))
    return parser.parse_args(argv)


def require_gpu():
    """(cupy, torch) or exit with a clear message."""
    try:
        import cupy
        import torch
        import triton  # noqa: F401
    except ImportError as error:
        sys.exit(f"perf/kernels.py needs CuPy, Triton and PyTorch on a CUDA machine: {error}")
    try:
        devices = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        devices = 0
    if devices == 0 or not torch.cuda.is_available():
        sys.exit("perf/kernels.py needs a CUDA device (none found); nothing was measured.")
    return cupy, torch


def median_ms(run, repeats, torch):
    """Median over `repeats` of one call of `run`, timed by CUDA events on torch's stream."""
    run()
    run()  # warm-up: compilation, caches, allocator
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def copy_bandwidth(cupy, torch, repeats):
    """Bytes per second of a 1 GiB device-to-device copy (read + write counted)."""
    src = cupy.ones(1 << 28, cupy.float32)
    dst = cupy.empty_like(src)
    ms = median_ms(lambda: cupy.copyto(dst, src), repeats, torch)
    return 2 * src.nbytes / (ms * 1e-3)


def cases(cupy, torch, only):
    """(op, shape, floor bytes, {impl: run}, torch run) for every benchmark."""
    import torch.nn.functional as F

    from gpudl.kernels import batchnorm, dropout, optimizer_updates, softmax_cross_entropy

    rng = np.random.default_rng(0)
    f32 = 4
    for shape in ((4096, 4096), (65536, 1024)):
        N, C = shape
        x = cupy.asarray(rng.standard_normal(shape, np.float32))
        dy = cupy.asarray(rng.standard_normal(shape, np.float32))
        gamma, beta = cupy.ones(C, cupy.float32), cupy.zeros(C, cupy.float32)
        running_mean, running_var = cupy.zeros(C, cupy.float32), cupy.ones(C, cupy.float32)
        tx = torch.as_tensor(x, device="cuda").requires_grad_()
        tdy = torch.as_tensor(dy, device="cuda")
        tgamma = torch.ones(C, device="cuda", requires_grad=True)
        tbeta = torch.zeros(C, device="cuda", requires_grad=True)
        trm, trv = torch.zeros(C, device="cuda"), torch.ones(C, device="cuda")
        if "batchnorm_forward" in only:
            yield ("batchnorm_forward", shape, 2 * N * C * f32, {
                impl: (lambda f=getattr(batchnorm, "forward_train_" + impl):
                       f(x, gamma, beta, running_mean, running_var, 0.99, 1e-3))
                for impl in ("triton", "cupy")},
                lambda: F.batch_norm(tx.detach(), trm, trv, tgamma.detach(), tbeta.detach(),
                                     training=True, momentum=0.01, eps=1e-3))
        if "batchnorm_backward" in only:
            _, mean, rstd = batchnorm.forward_train_triton(x, gamma, beta, running_mean, running_var, 0.99, 1e-3)
            ty = F.batch_norm(tx, trm, trv, tgamma, tbeta, training=True, momentum=0.01, eps=1e-3)
            yield ("batchnorm_backward", shape, 3 * N * C * f32, {
                impl: (lambda f=getattr(batchnorm, "backward_" + impl): f(dy, x, gamma, beta, mean, rstd))
                for impl in ("triton", "cupy")},
                lambda: torch.autograd.grad(ty, (tx, tgamma, tbeta), tdy, retain_graph=True))
        if "dropout" in only:
            yield ("dropout", shape, 2 * N * C * f32, {
                impl: (lambda f=getattr(dropout, "dropout_" + impl): f(x, 0.5, 1234)) for impl in ("triton", "cupy")},
                lambda: F.dropout(tx.detach(), 0.5, training=True))
        del x, dy, tx, tdy
    if "softmax_cross_entropy" in only:
        for shape in ((4096, 1000), (4096, 50000)):
            m, C = shape
            logits = cupy.asarray(rng.standard_normal(shape, np.float32))
            labels = cupy.asarray(rng.integers(0, C, m))
            dlogits = cupy.empty_like(logits)
            tz = torch.as_tensor(logits, device="cuda").clone().requires_grad_()
            tlabels = torch.as_tensor(labels, device="cuda")

            def torch_cross_entropy():
                tz.grad = None
                F.cross_entropy(tz, tlabels).backward()

            yield ("softmax_cross_entropy", shape, 2 * m * C * f32, {
                impl: (lambda f=getattr(softmax_cross_entropy, "softmax_cross_entropy_" + impl):
                       f(logits, labels, dlogits))
                for impl in ("triton", "cupy")}, torch_cross_entropy)
            del logits, dlogits, tz
    if "adam" in only:
        n = 100_000_000
        param = cupy.asarray(rng.standard_normal(n, np.float32))
        grad = cupy.asarray(rng.standard_normal(n, np.float32)) * 1e-3
        m, v = cupy.zeros(n, cupy.float32), cupy.zeros(n, cupy.float32)
        tparam = torch.nn.Parameter(torch.as_tensor(param, device="cuda").clone())
        tparam.grad = torch.as_tensor(grad, device="cuda").clone()
        optimizer = torch.optim.Adam([tparam], lr=1e-3, fused=True)
        yield ("adam", (n,), 7 * n * f32, {
            impl: (lambda f=getattr(optimizer_updates, "adam_" + impl):
                   f(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, 10))
            for impl in ("triton", "cupy")}, optimizer.step)


def main(argv=None):
    args = parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - set(OPS)
    if unknown:
        sys.exit(f"Unknown op(s) {sorted(unknown)}; known: {', '.join(OPS)}")
    cupy, torch = require_gpu()
    # one stream for CuPy, Triton (through torch's current stream) and PyTorch
    stream = cupy.cuda.Stream(non_blocking=True)
    stream.use()
    torch.cuda.set_stream(torch.cuda.ExternalStream(stream.ptr))
    bandwidth = copy_bandwidth(cupy, torch, args.repeats)
    rows = []
    for op, shape, floor_bytes, ours, torch_run in cases(cupy, torch, only):
        floor_ms = floor_bytes / bandwidth * 1e3
        torch_ms = median_ms(torch_run, args.repeats, torch)
        for impl, run in ours.items():
            ms = median_ms(run, args.repeats, torch)
            rows.append({"op": op, "shape": list(shape), "impl": impl, "ms": ms, "torch_ms": torch_ms,
                         "floor_ms": floor_ms, "bandwidth_fraction": floor_ms / ms,
                         "speedup_vs_torch": torch_ms / ms})
    header = f"{'op':<22} {'shape':<14} {'impl':<7} {'ours ms':>9} {'torch ms':>9} {'floor ms':>9} {'of floor':>9} {'vs torch':>9}"
    print(f"device: {torch.cuda.get_device_name()}   copy bandwidth: {bandwidth / 1e9:.0f} GB/s")
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        print(f"{r['op']:<22} {shape:<14} {r['impl']:<7} {r['ms']:>9.3f} {r['torch_ms']:>9.3f} "
              f"{r['floor_ms']:>9.3f} {r['bandwidth_fraction']:>8.0%} {r['speedup_vs_torch']:>8.2f}x")
    triton_rows = [r for r in rows if r["impl"] == "triton"]
    headline = math.exp(np.mean([math.log(r["speedup_vs_torch"]) for r in triton_rows]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "copy_bandwidth_bytes_per_s": bandwidth,
                       "rows": rows, "headline_triton_speedup_vs_torch_geomean": headline}, f, indent=2)
    print(f"headline: Triton kernels vs PyTorch, geometric-mean speedup {headline:.2f}x "
          f"over {len(triton_rows)} op/size pairs")


if __name__ == "__main__":
    main()
