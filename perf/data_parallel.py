"""Data-parallel fit (gpudl.distribution.DataParallel) against one process: the all-reduce's cost per
step and the scaling a machine can show.

MLP 784-512-512-10 with batch-norm and ReLU, softmax-cross-entropy, Adam, float32, global batch
--batch (256), --examples synthetic examples, --epochs epochs (the first, which builds and warms
up, is left out of the times). Each process reports its wall time, its CPU time (user + system,
all its threads), its steps and the time of each step's gradient all-reduce
(data_parallel.reduce_gradients: the weighting and the SUM all-reduce of the flat gradient arena,
synchronized on a GPU). A micro-benchmark then times all_reduce alone on the arena's size.

    python perf/data_parallel.py [--processes 2] [--examples 16384] [--epochs 3] [--json perf/data_parallel.json]
        one process, then --processes gloo processes on this machine (KERAS_DISTRIBUTION_*)
    torchrun --nproc_per_node=N perf/data_parallel.py --worker [--examples ...]
        one measurement under torchrun (GPUs: GPUDL_BACKEND=triton, NCCL); rank 0 prints the JSON

The honest CPU figures: the sum over processes of CPU time against one process's (the work
data parallelism adds: all-reduces, smaller GEMMs, duplicated per-step host work), and the wall
times, which only mean something on cores no one else is using: the load average before and
after each run is printed with it.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import numpy as np


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 784)).astype(np.float32)
    y = (x @ rng.normal(size=(784, 10)).astype(np.float32)).argmax(1)
    return x, y


def worker(args):
    """One process of the measurement; rank 0 prints one JSON line."""
    import gpudl
    from gpudl import collectives
    from gpudl.backend import get_backend
    from gpudl.frontend.models import data_parallel
    from gpudl.layers import BatchNormalization, Dense, ReLU

    distributed = "RANK" in os.environ or "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ
    if distributed:
        gpudl.distribution.initialize()
        gpudl.distribution.set_distribution(gpudl.distribution.DataParallel())
    gpudl.utils.set_random_seed(0)
    model = gpudl.Sequential([gpudl.Input((784,)), Dense(512), BatchNormalization(), ReLU(), Dense(512),
                              BatchNormalization(), ReLU(), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = make_data(args.examples)
    backend = get_backend()
    reduce_times, reduce_cpu = [], []
    original = data_parallel.reduce_gradients

    def timed_reduce(arena):
        backend.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        original(arena)
        backend.synchronize()
        reduce_times.append(time.perf_counter() - start)
        reduce_cpu.append(time.process_time() - start_cpu)
    data_parallel.reduce_gradients = timed_reduce
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # builds, warms up
    reduce_times.clear()
    reduce_cpu.clear()
    collectives.barrier()
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs - 1, verbose=0, shuffle=True)
    backend.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = len(reduce_times)
    grads = model.arena.grads
    micro = []
    for _ in range(args.micro):
        backend.synchronize()
        start = time.perf_counter()
        collectives.all_reduce(grads)
        backend.synchronize()
        micro.append(time.perf_counter() - start)
    totals = np.array([wall, cpu, sum(reduce_cpu)], dtype=np.float64)
    walls = collectives.all_gather_rows(totals[None], [1] * collectives.world_size())
    if collectives.is_rank_zero():
        print(json.dumps({
            "processes": collectives.world_size(), "backend": backend.name, "parameters": int(grads.size),
            "arena_bytes": int(grads.nbytes), "steps": steps, "wall_s": float(walls[:, 0].max()),
            "cpu_s_sum": float(walls[:, 1].sum()), "cpu_s_each": walls[:, 1].tolist(),
            "reduce_cpu_s_sum": float(walls[:, 2].sum()),
            "step_ms": 1e3 * float(walls[:, 0].max()) / max(steps, 1),
            "reduce_ms_median": 1e3 * statistics.median(reduce_times) if reduce_times else 0.0,
            "all_reduce_ms_median": 1e3 * statistics.median(micro) if micro and distributed else 0.0}), flush=True)
    if distributed:
        gpudl.distribution.shutdown()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes, args):
    """Run the worker in `processes` processes (1: no distribution); return rank 0's JSON."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--examples", str(args.examples),
               "--epochs", str(args.epochs), "--batch", str(args.batch), "--micro", str(args.micro)]
    port, procs = free_port(), []
    for rank in range(processes):
        env = {**os.environ, "GPUDL_BACKEND": os.environ.get("GPUDL_BACKEND", "numpy")}
        if processes > 1:
            env.update({"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
                        "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
                        "KERAS_DISTRIBUTION_PROCESS_ID": str(rank), "LOCAL_WORLD_SIZE": str(processes)})
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=1800)[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a worker failed: {outputs}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="run one process of the measurement")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--examples", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--micro", type=int, default=50, help="all_reduce calls in the micro-benchmark")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    runs = []
    for processes in (1, args.processes):
        load_before = os.getloadavg()[0]
        result = launch(processes, args)
        result["load_average_before_after"] = [load_before, os.getloadavg()[0]]
        runs.append(result)
    one, many = runs
    print(f"{'processes':>9} {'steps':>6} {'wall s':>8} {'CPU s (sum)':>12} {'ms/step':>8} "
          f"{'reduce ms':>10} {'all_reduce ms':>14} {'load avg':>12}")
    for r in runs:
        print(f"{r['processes']:>9} {r['steps']:>6} {r['wall_s']:>8.2f} {r['cpu_s_sum']:>12.2f} {r['step_ms']:>8.2f} "
              f"{r['reduce_ms_median']:>10.3f} {r['all_reduce_ms_median']:>14.3f} "
              f"{r['load_average_before_after'][0]:>5.1f}->{r['load_average_before_after'][1]:<5.1f}")
    print(f"arena: {one['parameters']:,} parameters ({one['arena_bytes'] / 2**20:.2f} MiB); the all-reduce takes "
          f"{100 * many['reduce_ms_median'] / many['step_ms']:.1f}% of a {args.processes}-process step and "
          f"{many['reduce_cpu_s_sum']:.2f} s of its {many['cpu_s_sum']:.2f} CPU s")
    print(f"headline: {args.processes} processes use {many['cpu_s_sum'] / one['cpu_s_sum']:.2f}x the CPU time of one; "
          f"wall time ratio one/{args.processes} = {one['wall_s'] / many['wall_s']:.2f}x "
          f"(load average {many['load_average_before_after'][0]:.1f} on {os.cpu_count()} cores)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
