"""The `gpudl` command: `gpudl demo` trains the course's recipe on digits; `gpudl tune`
searches its hyperparameters (random, then zoomed); `gpudl info`
prints the device, backend and versions; `gpudl bench` times the fused kernels and a
fit() step against PyTorch on this device; `gpudl selftest` checks every kernel on this
machine (on a GPU, run it first)."""

import argparse
import json
import time


def demo(args):
    """He init, input normalization, batch-norm, dropout, L2, Adam, mini-batches of 64,
    on scikit-learn's bundled 8x8 digits, split 60/20/20 into train/dev/test."""
    import gpudl
    from gpudl.frontend.tuning import digits

    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = digits.load_splits(args.seed)
    gpudl.utils.set_random_seed(args.seed)
    hp = digits.DEMO
    model = digits.builder(x_train)(hp)  # input statistics of the training set only, reused on dev and test
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=hp["batch_size"], epochs=args.epochs, validation_data=(x_dev, y_dev),
              verbose=args.verbose)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test)
    print(f"trained {args.epochs} epochs in {seconds:.1f}s on the {gpudl.get_backend().name} backend")
    print(f"test loss {test_loss:.4f}  test accuracy {test_accuracy:.4f}")
    return test_accuracy


def tune(args):
    """The course's hyperparameter search on digits: random trials (learning rate on a log
    scale, Adam's beta_1 as 1 - beta on a log scale, depth, widths, batch size), a zoom
    around the best, more trials there; prints the table and writes the plot."""
    from gpudl.frontend.tuning import digits

    search, splits = digits.search(trials=args.trials, zoom_trials=args.zoom_trials, top_k=args.top_k,
                                   epochs=args.epochs, executor=args.executor, workers=args.workers,
                                   directory=args.directory, seed=args.seed)
    print(search.results)
    print()
    search.summary(num_trials=3)
    (_, _), (_, _), (x_test, y_test) = splits
    test = search.best_model().evaluate(x_test, y_test, return_dict=True)
    print(f"\nbest model on the test set: loss {test['loss']:.4f}  accuracy {test['accuracy']:.4f}")
    try:
        search.plot(args.plot)
        print(f"plot written to {args.plot}")
    except ImportError as error:
        print(f"no plot: {error}")
    return search


def info(args):
    """The device (GPUs through CuPy or PyTorch, else the CPU), the backend and why it was
    chosen, and the versions of the stack; anything missing is said, never raised."""
    from gpudl.tools.bench import describe_gpu, environment

    env = environment()
    versions = env["versions"]
    print(f"gpudl {versions['gpudl']}")
    print(f"backend: {env['backend'] or 'unavailable'} ({env['backend_reason']})")
    for index, gpu in enumerate(env["gpus"]):
        print(describe_gpu(index, gpu))
    if not env["gpus"]:
        print(f"GPU: none ({env['gpu_note']})")
    elif env["gpu_note"] != "CuPy":  # listed by PyTorch: say why CuPy did not
        print(f"GPU note: {env['gpu_note']}")
    print(f"CPU: {env['cpu']}, {env['cpu_cores']} cores")
    print(f"python {versions['python']}, numpy {versions['numpy']}")
    for module in ("cupy", "triton"):
        print(f"{module}: {versions[module] or 'not installed'}")
    torch_cuda = versions["torch_cuda_build"] or "none"
    print("torch: " + (f"{versions['torch']} (CUDA build: {torch_cuda})" if versions["torch"] else "not installed"))
    print(f"CUDA runtime: {versions['cuda_runtime'] or 'unknown (needs CuPy and a CUDA driver)'}, "
          f"driver: {versions['cuda_driver'] or 'unknown (needs CuPy and a CUDA driver)'}")


def bench(args):
    """Time the fused kernels and a reference fit() step against PyTorch on this device."""
    from gpudl.tools.bench import print_bench, run_bench

    if args.count:  # launches, syncs and bytes of a step, counted on the CPU (gpudl.tools.count)
        from gpudl.tools import count

        count.main(["--json", args.json] if args.json else [])
        return
    if args.repeats is not None and args.repeats < 1:
        raise SystemExit(f"gpudl bench: Invalid value received for argument `--repeats`. "
                         f"Expected a positive integer. Received: --repeats={args.repeats}")
    result = run_bench(quick=args.quick, repeats=args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print_bench(result)


def selftest(args):
    """On a GPU: every fused kernel of both GPU backends against the NumPy reference, a
    200-step fit against the numpy backend, bandwidth fractions. On a CPU: the compile
    checks and the CPU executions of the kernels. Exits non-zero when anything failed."""
    from gpudl.tools.selftest import run

    raise SystemExit(run(args))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpudl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train the course's recipe on the digits data set")
    demo_parser.add_argument("--epochs", type=int, default=40)
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    demo_parser.set_defaults(run=demo)
    tune_parser = commands.add_parser("tune", help="random search, then zoom, on the digits MLP")
    tune_parser.add_argument("--trials", type=int, default=25, help="random trials of the coarse stage")
    tune_parser.add_argument("--zoom-trials", type=int, default=25, help="trials after the zoom (0: no zoom)")
    tune_parser.add_argument("--top-k", type=int, default=5, help="zoom around this many best trials")
    tune_parser.add_argument("--epochs", type=int, default=40)
    tune_parser.add_argument("--executor", default="processes", choices=("sequential", "processes", "ray"))
    tune_parser.add_argument("--workers", type=int, default=2)
    tune_parser.add_argument("--directory", default=None, help="append trials here and resume from it")
    tune_parser.add_argument("--plot", default="tune.png")
    tune_parser.add_argument("--seed", type=int, default=0)
    tune_parser.set_defaults(run=tune)
    commands.add_parser("info", help="device, backend and versions").set_defaults(run=info)
    bench_parser = commands.add_parser("bench", help="fused kernels and a fit() step vs PyTorch on this device")
    bench_parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    bench_parser.add_argument("--quick", action="store_true", help="one small size per op, fewer repeats")
    bench_parser.add_argument("--count", action="store_true",
                              help="count a step's launches, host syncs and bytes on the CPU (no timing, no GPU)")
    bench_parser.add_argument("--repeats", type=int, default=None,
                              help="timed calls per measurement (median); default 20 on a GPU, 5 on the CPU")
    bench_parser.set_defaults(run=bench)
    selftest_parser = commands.add_parser("selftest", help="check every kernel on this machine (run first on a GPU)")
    from gpudl.tools.selftest import add_arguments

    add_arguments(selftest_parser)
    selftest_parser.set_defaults(run=selftest)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
