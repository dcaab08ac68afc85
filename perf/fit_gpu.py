"""Time per training step and peak device memory on one GPU: gpudl (graph on and off)
against PyTorch eager and torch.compile, in the same run (issue 6).

MLPs with batch-norm, ReLU, dropout 0.1, softmax-cross-entropy, Adam(1e-3), float32:
    large  1024-4096-4096-1000, batch 4096. Goals: within 5% of the time its GEMMs take
           alone (the forward and backward GEMMs of the Dense layers, cuBLAS through CuPy,
           timed here) and faster than PyTorch eager.
    small  784-256-256-10, batch 128 (launch overhead dominates). Goals: faster than every
           PyTorch mode, with less device memory than PyTorch eager.
ms/step: the median over epochs after a warm-up epoch, of gpudl's fit() and of the same
shuffled loop in PyTorch, divided by the steps per epoch. Peak memory: from building the
model through the warm-up epoch, training set included (the same bytes in every row).

    python perf/fit_gpu.py [--json perf/fit_gpu.json] [--models large,small] [--repeats 5]
                           [--torch-modes eager,max-autotune-no-cudagraphs,reduce-overhead]
    python perf/fit_gpu.py --cpu   # the same logic at tiny sizes: numpy backend vs PyTorch CPU
Without a CUDA device (and without --cpu) it prints one line and exits with status 0.
"""

import argparse
import json
import sys
import traceback

import numpy as np

import gpudl
from gpudl.tools import bench

DROPOUT = 0.1
MODELS = {"large": {"sizes": (1024, 4096, 4096, 1000), "batch": 4096, "steps_per_epoch": 10},
          "small": {"sizes": (784, 256, 256, 10), "batch": 128, "steps_per_epoch": 50}}
CPU_MODELS = {"large": {"sizes": (64, 128, 128, 32), "batch": 64, "steps_per_epoch": 4},
              "small": {"sizes": (32, 16, 16, 10), "batch": 16, "steps_per_epoch": 4}}
TORCH_MODES = ("eager", "max-autotune-no-cudagraphs", "reduce-overhead")
GPUDL_ROWS = {"gpudl graph on": True, "gpudl graph off": False}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--models", default="large,small", help="comma-separated subset of large, small")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs after the warm-up epoch (median)")
    parser.add_argument("--torch-modes", default=",".join(TORCH_MODES),
                        help="comma-separated subset of " + ", ".join(TORCH_MODES))
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the numpy backend against PyTorch CPU")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.torch_modes = args.torch_modes.split(",")
    for name, given, known in (("--models", args.models, MODELS), ("--torch-modes", args.torch_modes, TORCH_MODES)):
        if not set(given) <= set(known):
            parser.error(f"Invalid value received for argument `{name}`. Expected a comma-separated subset of "
                         f"{', '.join(known)}. Received: {name}={','.join(given)}")
    if args.repeats < 1:
        parser.error(f"Invalid value received for argument `--repeats`. Expected a positive integer. "
                     f"Received: --repeats={args.repeats}")
    return args


def gemm_shapes(sizes, batch):
    """(m, k, n) of each GEMM of a training step of Dense layers `sizes` at `batch`: forward
    Y = X W, backward dW = X^T dY and, above the first layer, dX = dY W^T."""
    shapes = []
    for layer, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes += [(batch, width_in, width_out), (width_in, batch, width_out)]
        if layer > 0:
            shapes.append((batch, width_out, width_in))
    return shapes


def dense_gemms(device, sizes, batch):
    """One call running every GEMM of gemm_shapes on the device (cuBLAS through CuPy, or
    NumPy's BLAS), on contiguous random float32 operands and preallocated outputs."""
    xp, rng = device.backend.xp, np.random.default_rng(0)

    def normal(*shape):
        return device.backend.asarray(rng.standard_normal(shape, dtype=np.float32))

    products = [(normal(m, k), normal(k, n), xp.empty((m, n), np.float32)) for m, k, n in gemm_shapes(sizes, batch)]

    def run():
        for a, b, out in products:
            xp.matmul(a, b, out=out)

    return run


def gpudl_row(device, config, graph, x, y, epochs):
    """gpudl's fit() with compile(graph=graph). A compile without the graph= keyword runs
    without a graph, so graph off falls back to it; graph on is then not available."""
    def build():
        try:
            return bench.gpudl_mlp(config["sizes"], DROPOUT, graph=graph)
        except TypeError as error:
            if graph or "graph" not in str(error):
                raise
            return bench.gpudl_mlp(config["sizes"], DROPOUT)

    return bench.measure_gpudl_fit(device, build, x, y, config["batch"], epochs)


def torch_row(device, config, mode, x, y, epochs):
    """PyTorch eager, or the net under torch.compile(mode=mode); Adam stays eager (fused)."""
    torch = device.torch
    if torch is None:
        raise RuntimeError(device.torch_missing)

    def build_step():
        net = bench.torch_mlp(torch, config["sizes"], DROPOUT, device.torch_device)
        if mode != "eager":
            torch._dynamo.reset()  # each mode compiles from scratch
            net = torch.compile(net, mode=mode)
        return bench.torch_train_step(torch, net, mark_cudagraph_step=mode == "reduce-overhead")

    return bench.measure_torch_fit(device, build_step, x, y, config["batch"], epochs)


def measured_row(name, measure):
    """{"name", "ms", "peak_bytes"}, or {"name", "error"} when the measurement raised (the
    traceback goes to stderr and the run goes on)."""
    print(f"measuring {name} ...", file=sys.stderr, flush=True)
    try:
        ms, peak_bytes = measure()
    except Exception as error:
        traceback.print_exc()
        return {"name": name, "error": f"not available: {type(error).__name__}: {error}"}
    return {"name": name, "ms": ms, "peak_bytes": peak_bytes}


def goals(model, rows):
    """The issue's goals for `model`, from the best gpudl row (graph on, else graph off)."""
    by_name = {row["name"]: row for row in rows if "ms" in row}
    ours = by_name.get("gpudl graph on") or by_name.get("gpudl graph off")
    eager = by_name.get("PyTorch eager")
    torch_rows = [row for name, row in by_name.items() if name.startswith("PyTorch")]
    result = {"gpudl_row": ours and ours["name"]}
    if ours is None:
        return result
    if model == "large":
        gemms = by_name.get("GEMMs alone")
        if gemms:
            result["gpudl_over_gemms"] = ours["ms"] / gemms["ms"]
            result["within_5_percent_of_gemms"] = result["gpudl_over_gemms"] <= 1.05
        if eager:
            result["torch_eager_over_gpudl"] = eager["ms"] / ours["ms"]
            result["faster_than_torch_eager"] = ours["ms"] < eager["ms"]
    else:
        if torch_rows:
            fastest = min(torch_rows, key=lambda row: row["ms"])
            result["fastest_torch_mode"] = fastest["name"]
            result["fastest_torch_over_gpudl"] = fastest["ms"] / ours["ms"]
            result["faster_than_every_torch_mode"] = ours["ms"] < fastest["ms"]
        if eager and eager["peak_bytes"] is not None and ours["peak_bytes"] is not None:
            result["gpudl_over_torch_eager_memory"] = ours["peak_bytes"] / eager["peak_bytes"]
            result["less_memory_than_torch_eager"] = ours["peak_bytes"] < eager["peak_bytes"]
    return result


def verdict(met):
    return "n/a" if met is None else ("met" if met else "NOT met")


def ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def headline(model, goal):
    """The table's last line: the ratios the goals are about, with their verdicts."""
    if goal["gpudl_row"] is None:
        return f"headline ({model}): no gpudl row was measured"
    if model == "large":
        return (f"headline (large): {goal['gpudl_row']} / GEMMs alone = {ratio(goal.get('gpudl_over_gemms'))} "
                f"(goal <= 1.05: {verdict(goal.get('within_5_percent_of_gemms'))}); PyTorch eager / gpudl = "
                f"{ratio(goal.get('torch_eager_over_gpudl'))} "
                f"(goal > 1: {verdict(goal.get('faster_than_torch_eager'))})")
    return (f"headline (small): fastest PyTorch mode ({goal.get('fastest_torch_mode', 'none')}) / "
            f"{goal['gpudl_row']} = {ratio(goal.get('fastest_torch_over_gpudl'))} "
            f"(goal > 1: {verdict(goal.get('faster_than_every_torch_mode'))}); gpudl / PyTorch eager peak memory = "
            f"{ratio(goal.get('gpudl_over_torch_eager_memory'))} "
            f"(goal < 1: {verdict(goal.get('less_memory_than_torch_eager'))})")


def print_table(device, model, config, result):
    print(f"\n{model}: MLP {'-'.join(map(str, config['sizes']))}, batch {config['batch']}, "
          f"{config['steps_per_epoch']} steps per epoch, training set "
          f"{result['training_data_bytes'] / bench.MIB:.1f} MiB, GEMMs {result['gemm_flops_per_step'] / 1e9:.2f} "
          f"GFLOP per step")
    rows = result["rows"]
    gemm_ms = rows[0].get("ms")  # the GEMMs-alone row
    eager_ms = next((row["ms"] for row in rows if row["name"] == "PyTorch eager" and "ms" in row), None)
    header = f"{'':<44} {'ms/step':>9} {'vs GEMMs':>9} {'eager/this':>10} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<44} {row['error']}")
            continue
        eager = ratio(eager_ms and eager_ms / row["ms"])
        gemms = ratio(gemm_ms and row["ms"] / gemm_ms)
        print(f"{row['name']:<44} {row['ms']:>9.3f} {gemms:>9} {eager:>10} {bench.mib(row['peak_bytes']):>9}")
    print(headline(model, result["goals"]))


def run_model(device, model, config, args):
    """Every row for one model, its goals, and the table."""
    x, y = bench.synthetic_data(config["steps_per_epoch"] * config["batch"], config["sizes"][0], config["sizes"][-1])
    epochs = 1 + args.repeats
    gemms = dense_gemms(device, config["sizes"], config["batch"])
    rows = [measured_row("GEMMs alone", lambda: (bench.median_ms(device, "ours", gemms, args.repeats), None))]
    for name, graph in GPUDL_ROWS.items():
        rows.append(measured_row(name, lambda: gpudl_row(device, config, graph, x, y, epochs)))
    for mode in args.torch_modes:
        name = "PyTorch eager" if mode == "eager" else f"PyTorch compile {mode}"
        rows.append(measured_row(name, lambda: torch_row(device, config, mode, x, y, epochs)))
    gemm_flops = sum(2 * m * k * n for m, k, n in gemm_shapes(config["sizes"], config["batch"]))
    result = {"sizes": list(config["sizes"]), "batch": config["batch"], "dropout": DROPOUT,
              "gemm_flops_per_step": gemm_flops, "steps_per_epoch": config["steps_per_epoch"],
              "timed_epochs": args.repeats,
              "training_data_bytes": x.nbytes + y.nbytes, "rows": rows, "goals": goals(model, rows)}
    print_table(device, model, config, result)
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.cpu:
        backend = gpudl.set_backend("numpy")
    else:
        try:
            backend = gpudl.get_backend()
        except RuntimeError as error:
            print(f"perf/fit_gpu.py: no usable CUDA backend ({error}); nothing was measured.")
            return 0
        if backend.xp is np:
            print(f"perf/fit_gpu.py: no CUDA device (backend {backend.name}: {backend.reason}); nothing was "
                  f"measured. --cpu runs the same logic at tiny sizes on the CPU.")
            return 0
    device = bench.open_device(backend)
    models = CPU_MODELS if args.cpu else MODELS
    print(f"device: {device.name}   backend: {backend.name} ({backend.reason})   PyTorch: "
          f"{device.torch_missing or device.torch.__version__}")
    print(device.memory_label)
    results = {model: run_model(device, model, models[model], args) for model in args.models}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device.name, "environment": bench.environment(), "cpu_mode": args.cpu,
                       "memory_label": device.memory_label, "models": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
