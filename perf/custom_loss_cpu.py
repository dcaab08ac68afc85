"""A custom MSE loss written with keras.ops (differentiated by PyTorch's autograd) against the
built-in fused "mse", per training step on the CPU benchmark MLP, measured in one run.

The model is perf/fit_cpu.py's MLP 784-512-512-10 (batch-norm, ReLU, dropout 0.2, Adam, batch 128,
numpy backend) with a linear output trained on one-hot targets. The two runs alternate, the order
flipping every round; the table gives each loss's median time per step over --runs epochs, and
the last line is the headline ratio custom / built-in (the issue's bar: at most 1.5).

    python perf/custom_loss_cpu.py [--examples 25600] [--runs 3] [--json perf/custom_loss_cpu.json]
"""

import argparse
import json
import statistics
import time

import numpy as np

from fit_cpu import BATCH, gpudl_mlp, make_data


def custom_mse(y_true, y_pred):
    from gpudl import ops

    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def epoch_seconds(x, y, loss):
    model = gpudl_mlp(output_activation=None)
    model.compile(optimizer="adam", loss=loss)
    model.fit(x[:BATCH * 4], y[:BATCH * 4], batch_size=BATCH, epochs=1, verbose=0)  # warm-up, untimed
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start, float(history.history["loss"][0])


def loss_call_ms(loss, y, repeats=300):
    """Median-of-3 time of the loss's value and gradient alone on one batch (128 x 10)."""
    from gpudl.frontend import losses

    loss = losses.loss_object(loss)
    y_true, y_pred = y[:BATCH], y[:BATCH][::-1].copy()
    for _ in range(20):
        loss.value_and_gradient(y_true, y_pred)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            loss.value_and_gradient(y_true, y_pred)
        runs.append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=25600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    x, labels = make_data(args.examples)
    y = np.eye(10, dtype=np.float32)[labels]
    steps = -(-args.examples // BATCH)
    times = {"mse": [], "custom": []}
    losses = {}
    for run in range(args.runs):
        order = ("mse", "custom") if run % 2 == 0 else ("custom", "mse")
        for name in order:
            seconds, losses[name] = epoch_seconds(x, y, "mse" if name == "mse" else custom_mse)
            times[name].append(seconds / steps * 1e3)
    print(f"MLP 784-512-512-10, batch {BATCH}, {args.examples} examples ({steps} steps), {args.runs} runs, numpy backend")
    print(f"{'loss':<28}{'ms/step (median)':>18}{'min..max':>18}{'epoch loss':>14}")
    for name, label in (("mse", 'built-in "mse" (fused)'), ("custom", "ops MSE (torch autograd)")):
        print(f"{label:<28}{statistics.median(times[name]):>18.2f}"
              f"{f'{min(times[name]):.2f}..{max(times[name]):.2f}':>18}{losses[name]:>14.6f}")
    alone = {name: loss_call_ms("mse" if name == "mse" else custom_mse, y) for name in ("mse", "custom")}
    print(f"the loss's value and gradient alone, one batch: built-in {alone['mse']:.3f} ms, "
          f"ops {alone['custom']:.3f} ms (+{alone['custom'] - alone['mse']:.2f} ms per step)")
    ratio = statistics.median(times["custom"]) / statistics.median(times["mse"])
    print(f"custom ops loss / built-in mse per step: {ratio:.3f}x (bar: <= 1.5x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ms_per_step": times, "epoch_loss": losses, "loss_call_ms": alone, "ratio": ratio,
                       "examples": args.examples}, f,
                      indent=1)


if __name__ == "__main__":
    main()
