"""A functional chain against the same Sequential, one training epoch each on the CPU, same run.

The model is the MLP of perf/fit_cpu.py (784-512-512-10 with batch-norm, ReLU, dropout 0.2,
softmax-cross-entropy fused into the last layer, Adam, batch 128), built twice: as
`gpudl.Sequential([...])` and as `keras.Model(inputs, outputs)` over the same layer types, with the
same seed and the same initial weights. The graph walk of a functional model should cost nothing
next to the kernels: the ratio functional / Sequential should be 1.00 within the noise.

After an untimed warm-up of each, the runs alternate, the order flipping every round, so that load
from other processes falls on both; the table gives each one's median epoch time over --runs rounds
with the spread (min to max); the last line is the headline ratio of the medians. The two models'
final losses are printed too: they train identically (bit for bit), so they must agree exactly.

    python perf/functional_vs_sequential.py [--examples 20000] [--runs 5] [--json perf/functional_vs_sequential.json]
"""

import argparse
import json
import platform
import statistics
import time

from fit_cpu import BATCH, make_data


def stack():
    from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

    return [Dense(512, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(0.2),
            Dense(512, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(0.2),
            Dense(10, activation="softmax")]


def build(kind):
    import gpudl

    gpudl.utils.set_random_seed(0)
    if kind == "sequential":
        model = gpudl.Sequential([gpudl.Input((784,)), *stack()], seed=1)
    else:
        inputs = x = gpudl.Input((784,))
        for layer in stack():
            x = layer(x)
        model = gpudl.Model(inputs, x, seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def epoch(model, x, y):
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start, float(history.history["loss"][0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import gpudl

    gpudl.set_backend("numpy")
    x, y = make_data(args.examples)
    models = {kind: build(kind) for kind in ("sequential", "functional")}
    models["functional"].set_weights(models["sequential"].get_weights())
    for model in models.values():  # warm-up: first-call costs out of the timing
        model.fit(x[:BATCH * 4], y[:BATCH * 4], batch_size=BATCH, epochs=1, verbose=0)
    models["functional"].set_weights(models["sequential"].get_weights())
    times = {kind: [] for kind in models}
    losses = {}
    for round_ in range(args.runs):
        order = ("sequential", "functional") if round_ % 2 == 0 else ("functional", "sequential")
        for kind in order:
            seconds, loss = epoch(models[kind], x, y)
            times[kind].append(seconds)
            losses.setdefault(kind, []).append(loss)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    print(f"one epoch, {args.examples} examples, batch {BATCH}, numpy backend, {args.runs} rounds "
          f"({platform.processor() or platform.machine()})")
    print(f"{'model':<12} {'median s':>9} {'min s':>8} {'max s':>8}   final loss of each round")
    for kind in ("sequential", "functional"):
        print(f"{kind:<12} {medians[kind]:9.3f} {min(times[kind]):8.3f} {max(times[kind]):8.3f}   "
              f"{', '.join(f'{v:.6f}' for v in losses[kind])}")
    same = losses["sequential"] == losses["functional"]
    print(f"the two train identically: {same}")
    ratio = medians["functional"] / medians["sequential"]
    print(f"functional / Sequential epoch time: {ratio:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"examples": args.examples, "runs": args.runs, "times": times, "losses": losses,
                       "identical": same, "ratio": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
