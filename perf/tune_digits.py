"""Benchmark: the course's hyperparameter search on digits, on this machine.

25 random trials (learning rate on a log scale, Adam's beta_1 as 1 - beta on a log scale,
depth, widths, batch size), a zoom around the 5 best and 25 more trials, with the
processes executor and 2 workers, each trial 40 epochs. Prints the best configuration
against the hand-set `gpudl demo` recipe trained the same way (same data, epochs and
seed), and the search's wall time against the 10-minute budget.

    python perf/tune_digits.py --json perf/tune_digits.json
"""

import argparse
import json
import os
import tempfile
import time

from gpudl import load_model
from gpudl.frontend.tuning import digits
from gpudl.frontend.tuning.trial import Objective, TrialSetup, TrialSpec, run_trial

BUDGET_SECONDS = 600


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--zoom-trials", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    start = time.perf_counter()
    search, splits = digits.search(trials=args.trials, zoom_trials=args.zoom_trials, epochs=args.epochs,
                                   workers=args.workers, seed=args.seed, verbose=0)
    seconds = time.perf_counter() - start
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = splits

    setup = TrialSetup(digits.builder(x_train), x_train, y_train, (x_dev, y_dev), {"epochs": args.epochs},
                       Objective("val_accuracy"))
    demo, demo_model_bytes = run_trial(setup, TrialSpec(stage=0, index=0, seed=args.seed, params=digits.DEMO))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "demo.npz")
        with open(path, "wb") as f:
            f.write(demo_model_bytes)
        demo_test = _test_accuracy(load_model(path), x_test, y_test)
    best = search.best_trial
    best_test = _test_accuracy(search.best_model(), x_test, y_test)

    print(search.results)
    print()
    rows = [("hand-set demo recipe", demo["objective"], demo_test, _params(digits.DEMO)),
            ("best of the search", best["objective"], best_test, _params(best["params"]))]
    print(f"{'configuration':<22} {'dev accuracy':>12} {'test accuracy':>13}  parameters")
    for name, dev, test, params in rows:
        print(f"{name:<22} {dev:>12.4f} {test:>13.4f}  {params}")
    trials = len(search.records)
    print(f"{trials} trials x {args.epochs} epochs, processes executor, {args.workers} workers: {seconds:.1f} s")
    print(f"best / demo dev accuracy: {best['objective'] / demo['objective']:.4f}x; "
          f"search time / 10-minute budget: {seconds / BUDGET_SECONDS:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seconds": seconds, "trials": trials, "epochs": args.epochs, "workers": args.workers,
                       "demo_dev_accuracy": demo["objective"], "demo_test_accuracy": demo_test,
                       "best_dev_accuracy": best["objective"],
                       "best_test_accuracy": best_test, "best_params": best["params"],
                       "results": search.results.rows}, f, indent=1)


def _test_accuracy(model, x_test, y_test):
    return model.evaluate(x_test, y_test, return_dict=True)["accuracy"]


def _params(params):
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


if __name__ == "__main__":
    main()
