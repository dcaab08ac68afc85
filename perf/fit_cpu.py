"""One training epoch on the CPU: gpudl (numpy backend) against PyTorch eager, and Keras 3
on JAX when it is installed, all measured in one run.

MLP 784-512-512-10 with batch-norm, ReLU, dropout 0.2, softmax-cross-entropy and Adam,
batch 128, 60,000 float32 examples (synthetic, labelled by a random linear teacher).

After a short untimed warm-up of each, the runs alternate, gpudl then PyTorch, the order
flipping every round, so that load from other processes on the machine falls on both. The table gives each library's median epoch
time over --runs rounds with the spread (min to max), and the ratio of the medians; the
last line is the headline ratio. Keras+JAX runs in a subprocess (this file with
--keras-only) under --keras-python, by default this interpreter when it can import keras
and jax: one fit of --runs + 1 epochs, the first (which compiles) left out. --profile N
prints where a gpudl epoch over N examples spends its CPU time (cProfile, ms per step).

    python perf/fit_cpu.py [--examples 60000] [--runs 3] [--keras-python PATH] [--profile 20000]
                           [--json perf/fit_cpu.json]
"""

import argparse
import cProfile
import importlib.util
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time

import numpy as np

BATCH = 128


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 784)).astype(np.float32)
    y = (x @ rng.normal(size=(784, 10)).astype(np.float32)).argmax(1)
    return x, y


def gpudl_mlp(output_activation="softmax"):
    """The benchmark MLP on gpudl's numpy backend, seeded."""
    import gpudl
    from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

    gpudl.set_backend("numpy")
    gpudl.utils.set_random_seed(0)
    return gpudl.Sequential([
        gpudl.Input((784,)),
        Dense(512, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(0.2),
        Dense(512, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(0.2),
        Dense(10, activation=output_activation),
    ])


def gpudl_epoch(x, y):
    model = gpudl_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start, float(history.history["loss"][0])


def torch_epoch(x, y):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.BatchNorm1d(512, eps=1e-3, momentum=0.01), torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(512, 512), torch.nn.BatchNorm1d(512, eps=1e-3, momentum=0.01), torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(512, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    start = time.perf_counter()
    order = torch.randperm(len(x))
    total = 0.0
    for i in range(0, len(x), BATCH):
        index = order[i:i + BATCH]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt[index]), yt[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return time.perf_counter() - start, total / len(x)


def keras_epochs(x, y, epochs):
    """Epoch times of one Keras 3 (JAX) fit of the same model; the first epoch compiles."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((784,)),
        layers.Dense(512, kernel_initializer="he_normal"), layers.BatchNormalization(), layers.ReLU(),
        layers.Dropout(0.2),
        layers.Dense(512, kernel_initializer="he_normal"), layers.BatchNormalization(), layers.ReLU(),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[EpochTimer()])
    import jax

    return {"keras": keras.__version__, "jax": jax.__version__, "epoch_seconds": times,
            "loss": [float(v) for v in history.history["loss"]]}


def keras_python(requested):
    if requested:
        return requested
    if importlib.util.find_spec("keras") and importlib.util.find_spec("jax"):
        return sys.executable
    return None


def run_keras(python, examples, runs):
    """Keras+JAX timings from a subprocess (keeps JAX's and PyTorch's threads apart)."""
    command = [python, os.path.abspath(__file__), "--keras-only", "--examples", str(examples), "--runs", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def profile_gpudl(examples):
    """cProfile of one gpudl epoch over `examples`: the top functions by own CPU time (process
    time: what other processes take from the cores is not counted), ms/step. Run it with
    --threads 1, so that the CPU time of a function is its time."""
    x, y = make_data(examples)
    gpudl_epoch(x[:BATCH * 4], y[:BATCH * 4])  # imports and first calls out of the profile
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(gpudl_epoch, x, y)
    steps = -(-examples // BATCH)
    stats = pstats.Stats(profiler).sort_stats("tottime")
    total = sum(own for _, _, own, _, _ in stats.stats.values())
    print(f"\nprofile of one gpudl epoch, {examples} examples ({steps} steps): own CPU time per step "
          f"(all functions: {total / steps * 1e3:.2f} ms/step, profiler overhead included)")
    print(f"{'ms/step':>8s} {'calls/step':>10s}  function")
    for (path, line, name), (_, calls, own, _, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:18]:
        where = f"{os.path.relpath(path) if path.startswith('/') else path}:{line}({name})"
        print(f"{own / steps * 1e3:8.3f} {calls / steps:10.1f}  {where}")


def spread(values):
    return f"{min(values):.2f}-{max(values):.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds of gpudl and PyTorch")
    parser.add_argument("--keras-python", default=None, help="interpreter with keras and jax (default: this one, "
                                                             "when it has them)")
    parser.add_argument("--threads", type=int, default=0, help="threads for BLAS, PyTorch and gpudl's pool "
                                                                "(default: each library's own choice)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="also profile a gpudl epoch of N examples")
    parser.add_argument("--keras-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    x, y = make_data(args.examples)
    if args.keras_only:
        print(json.dumps(keras_epochs(x, y, args.runs + 1)))
        return

    import torch

    if args.threads:  # one count for every library: BLAS (threadpoolctl), PyTorch, gpudl's pool
        import threadpoolctl

        from gpudl import threads

        threadpoolctl.threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
        threads._state["threads"] = args.threads
    runs = {"gpudl": [], "torch": []}
    losses = {"gpudl": [], "torch": []}
    load = []  # 1-minute load average before each epoch: other processes sharing the cores
    epochs = {"gpudl": gpudl_epoch, "torch": torch_epoch}
    for epoch in epochs.values():  # warm-up, not timed: imports, first calls, thread pools
        epoch(x[:BATCH * 10], y[:BATCH * 10])
    for round_index in range(args.runs):
        order = ("gpudl", "torch") if round_index % 2 == 0 else ("torch", "gpudl")
        for name in order:
            load.append(os.getloadavg()[0])
            seconds, loss = epochs[name](x, y)
            runs[name].append(seconds)
            losses[name].append(loss)
    keras = None
    python = None if args.no_keras else keras_python(args.keras_python)
    if python:
        keras = run_keras(python, args.examples, args.runs)

    steps = -(-args.examples // BATCH)
    median = {name: statistics.median(times) for name, times in runs.items()}
    print(f"one epoch, MLP 784-512-512-10, BN+ReLU+dropout 0.2, Adam, batch {BATCH}, {args.examples} examples "
          f"({steps} steps), {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"{args.runs} alternating runs")
    print(f"{'library':<30s} {'median s':>9s} {'spread s':>11s} {'ms/step':>8s} {'loss':>7s}")
    rows = [("gpudl (numpy)", "gpudl"), (f"PyTorch {torch.__version__} eager", "torch")]
    for label, name in rows:
        print(f"{label:<30s} {median[name]:9.2f} {spread(runs[name]):>11s} {median[name] / steps * 1e3:8.2f} "
              f"{statistics.median(losses[name]):7.4f}")
    keras_median = None
    if keras and "epoch_seconds" in keras and len(keras["epoch_seconds"]) > 1:
        warm = keras["epoch_seconds"][1:]
        keras_median = statistics.median(warm)
        print(f"{'Keras ' + keras['keras'] + ' on JAX ' + keras['jax']:<30s} {keras_median:9.2f} "
              f"{spread(warm):>11s} {keras_median / steps * 1e3:8.2f} {keras['loss'][-1]:7.4f}")
    elif keras:
        print(f"Keras+JAX: not measured ({keras.get('error')})")
    elif not args.no_keras:
        print("Keras+JAX: not measured (no interpreter with keras and jax; pass --keras-python)")
    paired = [g / t for g, t in zip(runs["gpudl"], runs["torch"])]
    print(f"per-round gpudl / PyTorch ratios: {', '.join(f'{r:.2f}' for r in paired)}; 1-minute load average "
          f"before the epochs {min(load):.1f} to {max(load):.1f} on {os.cpu_count()} CPUs")
    if keras_median:
        print(f"gpudl / Keras+JAX epoch time: {median['gpudl'] / keras_median:.2f}x")
    ratio = median["gpudl"] / median["torch"]
    print(f"gpudl / PyTorch epoch time (medians): {ratio:.2f}x (goal: at most 0.80x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                       "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                       "examples": args.examples, "runs": runs, "losses": losses, "median_seconds": median,
                       "per_round_ratios": paired, "ratio": ratio, "load_average": load, "keras_jax": keras}, f, indent=2)
    if args.profile:
        profile_gpudl(args.profile)


if __name__ == "__main__":
    main()
