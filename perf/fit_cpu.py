"""One training epoch on the CPU: gpudl (numpy backend) against PyTorch, same run.

MLP 784-512-512-10 with batch-norm, ReLU, dropout 0.2, softmax-cross-entropy and Adam,
batch 128, 60,000 float32 examples (synthetic, labelled by a random linear teacher).
Prints a table whose last line is the headline ratio and writes JSON (--json PATH).

    python perf/fit_cpu.py [--examples 60000] [--repeats 1] [--json perf/fit_cpu.json]
"""

import argparse
import json
import os
import platform
import time

import numpy as np


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 784)).astype(np.float32)
    y = (x @ rng.normal(size=(784, 10)).astype(np.float32)).argmax(1)
    return x, y


def gpudl_epoch(x, y):
    import gpudl
    from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

    gpudl.utils.set_random_seed(0)
    model = gpudl.Sequential([
        gpudl.Input((784,)),
        Dense(512, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(0.2),
        Dense(512, kernel_initializer="he_normal"), BatchNormalization(), ReLU(), Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    return time.perf_counter() - start, history.history["loss"][0]


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
    for i in range(0, len(x), 128):
        index = order[i:i + 128]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt[index]), yt[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return time.perf_counter() - start, total / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=1, help="epochs timed per library; the best is kept")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    x, y = make_data(args.examples)
    ours = min(gpudl_epoch(x, y) for _ in range(args.repeats))
    theirs = min(torch_epoch(x, y) for _ in range(args.repeats))
    ratio = ours[0] / theirs[0]
    rows = [("gpudl (numpy)", ours), (f"PyTorch {torch.__version__} eager", theirs)]
    print(f"one epoch, MLP 784-512-512-10, BN+ReLU+dropout 0.2, Adam, batch 128, {args.examples} examples, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(f"{'library':<28s} {'epoch s':>9s} {'ms/step':>9s} {'loss':>8s}")
    steps = -(-args.examples // 128)
    for name, (seconds, loss) in rows:
        print(f"{name:<28s} {seconds:9.2f} {seconds / steps * 1e3:9.2f} {loss:8.4f}")
    print(f"gpudl / PyTorch epoch time: {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "cpus": os.cpu_count(), "examples": args.examples,
                       "gpudl_seconds": ours[0], "torch_seconds": theirs[0], "ratio": ratio,
                       "gpudl_loss": ours[1], "torch_loss": theirs[1]}, f, indent=2)


if __name__ == "__main__":
    main()
