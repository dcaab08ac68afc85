"""Benchmark the Triton and the CuPy kernels against PyTorch and the memory-bandwidth floor.

    python perf/kernels.py [--json PATH] [--repeats 20] [--only batchnorm_forward,dropout,...]

The measurements are gpudl.tools.bench's, for both GPU backends in one table (`gpudl bench`
times only the active one): for each op and size, our median time, PyTorch's in the
same run, the floor = fewest bytes the op must move / device-to-device copy bandwidth
measured in this run, the fraction of that floor reached (floor / our time), and the
bytes one call allocates. The last line is the headline ratio: the geometric mean of
PyTorch time / our Triton time over all rows.
Needs a CUDA device with CuPy and Triton; PyTorch (CUDA build) for the peer column.
"""

import argparse
import json
import sys

import gpudl
from gpudl.tools import bench
from gpudl.backend import cuda_device_count

GPU_BACKENDS = ("triton", "cupy")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (median)")
    parser.add_argument("--only", default=",".join(bench.OPS), help="comma-separated subset of " + ", ".join(bench.OPS))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - set(bench.OPS)
    if unknown:
        sys.exit(f"Unknown op(s) {sorted(unknown)}; known: {', '.join(bench.OPS)}")
    if args.repeats < 1:
        sys.exit(f"Invalid value received for argument `--repeats`. Expected a positive integer. "
                 f"Received: --repeats={args.repeats}")
    if cuda_device_count() == 0:
        sys.exit("perf/kernels.py needs a CUDA device with CuPy (none found); nothing was measured.")
    try:
        devices = [bench.open_device(gpudl.set_backend(name)) for name in GPU_BACKENDS]
    except (ImportError, RuntimeError) as error:
        sys.exit(f"perf/kernels.py needs CuPy and Triton on a CUDA machine: {error}")
    sizes = bench.SIZES[("cuda", False)]
    bandwidth = bench.copy_bandwidth(devices[0], sizes["copy_bytes"], args.repeats)
    ops = [op for op in bench.OPS if op in only]
    rows = [row for device in devices for row in bench.kernel_rows(device, bandwidth, sizes, ops, args.repeats)]
    print(f"device: {devices[0].name}   copy bandwidth: {bandwidth / 1e9:.0f} GB/s   "
          f"PyTorch peer: {devices[0].torch_missing or 'torch ' + devices[0].torch.__version__}")
    print(devices[0].memory_label)
    bench.print_kernel_rows(rows)
    triton_rows = [row for row in rows if row["backend"] == "triton"]
    headline = bench.geometric_mean_speedup(triton_rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": devices[0].name, "environment": bench.environment(),
                       "copy_bandwidth_bytes_per_s": bandwidth, "rows": rows,
                       "headline_triton_speedup_vs_torch_geomean": headline}, f, indent=2)
    if headline is None:
        print(f"headline: no PyTorch peer ({devices[0].torch_missing})")
    else:
        print(f"headline: Triton kernels vs PyTorch, geometric-mean speedup {headline:.2f}x "
              f"over {len(triton_rows)} op/size pairs")


if __name__ == "__main__":
    main()
