"""The NumPy fused ops at the shapes of perf/fit_cpu.py's MLP, per training step.

One step of the reference MLP (784-512-512-10, batch 128) calls: batch-norm forward and
backward twice on (128, 512); dropout forward and backward twice on (128, 512); Adam once
over the 669,706-parameter arena. Each op is timed alone (min and median of --repeats
calls, after a warm-up), on one thread and on all of gpudl's threads, and the table gives
ms per step (an op's time times its calls per step). The dropout rows use the training ops
the layer calls (dropout_train / dropout_backward, the mask kept) where the code has them,
else the regenerating form (dropout on x, then dropout on dy), so the same script measures
an older checkout too.

    python perf/numpy_ops_cpu.py [--repeats 200] [--json PATH]
"""

import argparse
import json
import statistics
import time

import numpy as np

from gpudl.kernels import batchnorm, dropout, optimizer_updates

try:
    from gpudl import threads
except ImportError:  # a checkout from before the thread pool
    threads = None

BATCH, WIDTH, PARAMETERS = 128, 512, 669706


def timed(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def step_ops():
    """(name, calls per step, function) for one training step's NumPy ops."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, BATCH, WIDTH)).astype(np.float32)
    gamma, beta = np.ones(WIDTH, np.float32), np.zeros(WIDTH, np.float32)
    running_mean, running_var = np.zeros(WIDTH, np.float32), np.ones(WIDTH, np.float32)
    _, mean, rstd = batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.99, 1e-3)
    seed_counter = np.array([3, 0], dtype=np.int64)
    if hasattr(dropout, "dropout_train"):
        def dropout_step():
            _, keep = dropout.dropout_train(x, 0.2, 1234, seed_counter)
            dropout.dropout_backward(dy, keep, 0.2, 1234, seed_counter)
    else:
        def dropout_step():
            dropout.dropout(x, 0.2, 1234, seed_counter)
            dropout.dropout(dy, 0.2, 1234, seed_counter)
    param, grad, m = rng.standard_normal((3, PARAMETERS)).astype(np.float32)
    v = np.abs(rng.standard_normal(PARAMETERS)).astype(np.float32)
    table = optimizer_updates.adam_step_table([1e-3] * 4, 0, 0.9, 0.999)
    counter = np.array([1], dtype=np.int64)
    return [
        ("batch-norm forward (128x512)", 2,
         lambda: batchnorm.forward_train(x, gamma, beta, running_mean, running_var, 0.99, 1e-3)),
        ("batch-norm backward (128x512)", 2, lambda: batchnorm.backward(dy, x, gamma, beta, mean, rstd)),
        ("dropout mask: keep_mask (128x512)", 2, lambda: dropout.keep_mask((BATCH, WIDTH), 0.2, 1234)),
        ("dropout forward + backward (128x512)", 2, dropout_step),
        ("Adam over the arena (669,706)", 1, lambda: optimizer_updates.adam(param, grad, m, v, table, counter, 0.9,
                                                                            0.999, 1e-8)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    all_threads = threads.thread_count() if threads else 1
    counts = [1] if all_threads == 1 else [1, all_threads]
    rows = []
    for name, calls, function in step_ops():
        row = {"op": name, "calls_per_step": calls}
        for count in counts:
            if threads:
                threads._state["threads"] = count
            best, median = timed(function, args.repeats)
            row[f"threads_{count}"] = {"min_ms": best * 1e3 * calls, "median_ms": median * 1e3 * calls}
        if threads:
            threads._state["threads"] = all_threads
        rows.append(row)
    header = "".join(f" {'min ms':>8s} {'median':>8s}" for _ in counts)
    print(f"NumPy ops of one training step, ms per step (op time x calls); threads: {', '.join(map(str, counts))}")
    print(f"{'op':<40s} {'calls':>5s}{header}")
    for row in rows:
        cells = "".join(f" {row[f'threads_{c}']['min_ms']:8.3f} {row[f'threads_{c}']['median_ms']:8.3f}" for c in counts)
        print(f"{row['op']:<40s} {row['calls_per_step']:5d}{cells}")
    steps = [r for r in rows if not r["op"].startswith("dropout mask")]  # the mask is inside the dropout row
    for count in counts:
        total = sum(r[f"threads_{count}"]["median_ms"] for r in steps)
        print(f"total per step on {count} thread{'s' if count > 1 else ''} (medians, mask row excluded): "
              f"{total:.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
