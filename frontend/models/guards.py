"""Two guards of a model's state: one caller at a time, and a training step is whole.

`exclusive(method)`: fit / evaluate / predict / train_on_batch ... of one model take the
model's lock (reentrant: a callback may call model.evaluate inside fit), so calls from
several threads run one after another and each gives the result it would give alone. A
model keeps per-call state (the layers' saved activations for backward, the metrics' running
sums, the arena built at the first call), so two calls at once would mix them. Different
models run in parallel.

`whole_step(method)`: a KeyboardInterrupt (SIGINT) that arrives during a training step is
held until the step ends and raised then, so the weights, optimizer slots, step counter
and running statistics are those before or after a whole step, never a mix. The handler is
installed only around the step and only in the main thread (the one that receives SIGINT;
Python allows `signal.signal` nowhere else), and only over a Python-level handler (the
default raises KeyboardInterrupt; a user's own is called after the step instead).
"""

import functools
import signal
import threading
import weakref

_locks = weakref.WeakKeyDictionary()  # model -> its RLock (not an attribute: models are deep-copied)
_locks_lock = threading.Lock()


def model_lock(model):
    """The reentrant lock that serializes the public calls of `model`."""
    with _locks_lock:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


def exclusive(method):
    """Run `method` holding the model's lock (module docstring)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with model_lock(self):
            return method(self, *args, **kwargs)
    return locked


def whole_step(method):
    """Run `method` (one training step) with SIGINT held until it returns (module docstring)."""
    @functools.wraps(method)
    def uninterrupted(self, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return method(self, *args, **kwargs)
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # SIG_IGN, SIG_DFL or a handler set outside Python: leave it alone
            return method(self, *args, **kwargs)
        held = []
        signal.signal(signal.SIGINT, lambda signum, frame: held.append((signum, frame)))
        try:
            return method(self, *args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)
            if held:
                previous(*held[0])  # the default handler raises KeyboardInterrupt here
    return uninterrupted
