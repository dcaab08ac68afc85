"""CallbackList, which calls each hook on every callback in Keras's order, and History."""

from gpudl import collectives
from gpudl.frontend.callbacks.callback import Callback, overrides, pythonify_logs
from gpudl.frontend.callbacks.progbar import ProgbarLogger


class CallbackList(Callback):
    """Calls each hook on every callback, in list order (Keras's container).

    Args:
        callbacks: list of callbacks.
        add_history: append a History unless the list has one.
        add_progbar: append a ProgbarLogger unless the list has one.
        model: the model; each callback's `set_model` is called (and `model.history` set).
        **params: passed to each callback's `set_params` (fit: verbose, epochs, steps).

    `needs_train_batch_logs` (and the test/predict twins) say whether some callback reads
    the batch logs every batch; when none does, the batch logs are passed on unread.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks) if callbacks else []
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"CallbackList: every callback must be a gpudl.callbacks.Callback; "
                                f"received {callback!r}.")
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        for callback in self.callbacks:  # BackupAndRestore keeps the others' resume state
            if hasattr(callback, "set_callback_list"):
                callback.set_callback_list(self.callbacks)
        self.set_model(model)
        self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def _needs(self, *hooks):
        return any(overrides(c, *hooks) for c in self.callbacks if not c._reads_batch_logs_lazily)

    @property
    def needs_train_batch_logs(self):
        """Some callback reads the training batch logs every batch."""
        return self._needs("on_train_batch_end", "on_batch_end")

    @property
    def needs_test_batch_logs(self):
        return self._needs("on_test_batch_end")

    @property
    def needs_predict_batch_logs(self):
        return self._needs("on_predict_batch_end")

    def _call(self, hook, *args, logs=None):
        """Each callback's `hook`, in list order, except that at the end of an epoch or batch a
        callback that commits a backup (`_commits_last`: BackupAndRestore) runs after the others,
        so the backup holds what they did there (ModelCheckpoint's best and its file agree).
        Data parallel: callbacks that only write files run on rank 0 alone."""
        callbacks = self.callbacks
        if hook in ("on_epoch_end", "on_train_batch_end"):
            callbacks = sorted(callbacks, key=lambda c: getattr(c, "_commits_last", False))  # stable
        rank_zero = collectives.is_rank_zero()
        for callback in callbacks:
            if rank_zero or not callback._rank_zero_only:
                getattr(callback, hook)(*args, logs=logs)

    def _call_batch_end(self, hook, needed, batch, logs):
        """Batch-end logs are read (pythonified) only when a callback reads every batch's."""
        self._call(hook, batch, logs=pythonify_logs(logs) if needed else (logs if logs is not None else {}))

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs=pythonify_logs(logs))

    def on_batch_end(self, batch, logs=None):
        self._call_batch_end("on_batch_end", self.needs_train_batch_logs, batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=pythonify_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=pythonify_logs(logs))

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=pythonify_logs(logs))

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch_end("on_train_batch_end", self.needs_train_batch_logs, batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=pythonify_logs(logs))

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch_end("on_test_batch_end", self.needs_test_batch_logs, batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=pythonify_logs(logs))

    def on_predict_batch_end(self, batch, logs=None):
        self._call_batch_end("on_predict_batch_end", self.needs_predict_batch_logs, batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=pythonify_logs(logs))

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=pythonify_logs(logs))

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=pythonify_logs(logs))

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=pythonify_logs(logs))

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=pythonify_logs(logs))

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=pythonify_logs(logs))


class History(Callback):
    """Records the epoch logs: `history.history["loss"]` is a list with one value per
    epoch, `history.epoch` the epoch numbers, `history.params` fit's parameters. fit
    returns it and sets `model.history`."""

    def __init__(self):
        super().__init__()
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self
