"""The `gpudl` command: `gpudl demo` trains the course's recipe on digits; `gpudl info`
prints the backend, devices and versions."""

import argparse
import platform
import time

import numpy as np


def demo(args):
    """He init, input normalization, batch-norm, dropout, L2, Adam, mini-batches of 64,
    on scikit-learn's bundled 8x8 digits, split 60/20/20 into train/dev/test."""
    from sklearn.datasets import load_digits

    import gpudl
    from gpudl.frontend.data import train_dev_test_split
    from gpudl.layers import BatchNormalization, Dense, Dropout, Normalization, ReLU

    gpudl.utils.set_random_seed(args.seed)
    digits = load_digits()
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = train_dev_test_split(
        digits.data.astype(np.float32), digits.target, fractions=(0.6, 0.2, 0.2), stratify=True, seed=args.seed)
    normalize = Normalization()
    normalize.adapt(x_train)  # statistics of the training set only, reused on dev and test
    hidden = dict(kernel_initializer="he_normal", kernel_regularizer=gpudl.regularizers.L2(1e-4))
    model = gpudl.Sequential([
        gpudl.Input((64,)), normalize,
        Dense(128, **hidden), BatchNormalization(), ReLU(), Dropout(0.2),
        Dense(64, **hidden), BatchNormalization(), ReLU(), Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=gpudl.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, validation_data=(x_dev, y_dev),
              verbose=args.verbose)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test)
    print(f"trained {args.epochs} epochs in {seconds:.1f}s on the {gpudl.get_backend().name} backend")
    print(f"test loss {test_loss:.4f}  test accuracy {test_accuracy:.4f}")
    return test_accuracy


def info(args):
    import gpudl

    backend = gpudl.get_backend()
    print(f"gpudl {gpudl.__version__}")
    print(f"backend: {backend.name} ({backend.reason})")
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    for module in ("torch", "triton", "cupy"):
        try:
            version = __import__(module).__version__
        except ImportError:
            version = "not installed"
        print(f"{module}: {version}")
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        names = [cupy.cuda.runtime.getDeviceProperties(i)["name"].decode() for i in range(count)]
        print(f"CUDA devices: {', '.join(names) or 'none'}")
    except Exception:  # no CuPy, or no driver: the host is the only device
        print("CUDA devices: none (CuPy or a CUDA driver is missing)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpudl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train the course's recipe on the digits data set")
    demo_parser.add_argument("--epochs", type=int, default=40)
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    demo_parser.set_defaults(run=demo)
    commands.add_parser("info", help="backend, devices and versions").set_defaults(run=info)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
