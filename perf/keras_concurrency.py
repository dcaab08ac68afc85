"""What Keras 3 (on JAX) does with one model used from several threads, and after a Ctrl-C
inside fit: the measurements README's "Threads and Ctrl-C" line quotes (gpudl's own behaviour
is tested in tests/test_step_guards.py).

    KERAS_BACKEND=jax python perf/keras_concurrency.py

Prints one row per measurement; the last line is the headline.
"""

import os
import threading

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(512, 8)).astype(np.float32)
Y = RNG.integers(0, 3, 512)


def model(build=True):
    layers = [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    m = keras.Sequential(([keras.Input((8,))] if build else []) + layers)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def in_threads(target, count):
    """Run target(i) in `count` threads; the set of errors they raised (type and message start)."""
    errors = set()

    def run(i):
        try:
            target(i)
        except Exception as error:  # noqa: BLE001 - what Keras raises is the measurement
            errors.add(f"{type(error).__name__}: {str(error).splitlines()[0][:80]}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def evaluate_from_threads(trials=6):
    m = model()
    parts = [(X[i::8], Y[i::8]) for i in range(8)]
    expected = [m.evaluate(a, b, batch_size=16, verbose=0) for a, b in parts]
    wrong, raised, errors = 0, 0, set()
    for _ in range(trials):
        results = [None] * 8
        errors |= in_threads(lambda i: results.__setitem__(i, m.evaluate(*parts[i], batch_size=16, verbose=0)), 8)
        wrong += sum(r is not None and not np.allclose(r, e, rtol=1e-5) for r, e in zip(results, expected))
        raised += sum(r is None for r in results)
    return f"evaluate, 8 threads x {trials}: {wrong} wrong, {raised} of {8 * trials} raised; {sorted(errors)}"


def first_predict_from_threads(trials=10):
    broken, errors = 0, set()
    for _ in range(trials):
        m = model(build=False)
        errors |= in_threads(lambda i: m.predict(X[:64], verbose=0), 8)
        try:
            m.predict(X[:64], verbose=0)
        except Exception:  # noqa: BLE001
            broken += 1
    return f"first predict on an unbuilt model, 8 threads: model unusable afterwards in {broken} of {trials}; " \
           f"{sorted(errors)[:2]}"


def fit_from_threads():
    m = model()
    errors = in_threads(lambda i: m.fit(X, Y, batch_size=32, epochs=1, verbose=0), 4)
    try:
        state = f"iterations {int(m.optimizer.iterations.numpy())} of 64"
    except Exception as error:  # noqa: BLE001
        state = f"model unreadable afterwards ({type(error).__name__})"
    return f"fit, 4 threads: {state}; {sorted(errors)[:2]}"


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            raise KeyboardInterrupt


def keyboard_interrupt_in_fit():
    m = model()
    try:
        m.fit(X, Y, batch_size=32, epochs=1, verbose=0, callbacks=[Interrupt()])
    except KeyboardInterrupt:
        pass
    try:
        return f"KeyboardInterrupt after step 4 of fit: iterations {int(m.optimizer.iterations.numpy())}, " \
               f"weights readable ({len(m.get_weights())} arrays)"
    except Exception as error:  # noqa: BLE001
        return f"KeyboardInterrupt after step 4 of fit: model unreadable afterwards ({type(error).__name__}: " \
               f"{str(error)[:60]})"


if __name__ == "__main__":
    rows = [evaluate_from_threads(), first_predict_from_threads(), fit_from_threads(), keyboard_interrupt_in_fit()]
    for row in rows:
        print(row)
    print(f"keras {keras.__version__} on {keras.backend.backend()}: one model is not safe to share between threads")
