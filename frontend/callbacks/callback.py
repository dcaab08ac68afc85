"""Callback, the base of every callback (Keras 3's hooks), and the helpers callbacks share.

Batch logs and the device: fit hands the batch hooks logs whose values stay on the
device until something reads them. A callback that overrides a batch-end hook reads
them every batch (a host sync), as in Keras; the callbacks here that only sometimes
look (the progress bar redraws at most every 0.05 s, TensorBoard writes every
`update_freq` batches, ModelCheckpoint saves every `save_freq` batches) set
`_reads_batch_logs_lazily` and read the values only when they use them. So a plain
`fit(verbose=1)` reads the device about 20 times a second, not once per step.
"""


HOOKS = ("on_batch_begin", "on_batch_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
         "on_predict_batch_end", "on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
         "on_predict_begin", "on_predict_end")


def default(method):
    """Marks a hook of the base class, so that CallbackList can tell which hooks a callback overrides."""
    method._is_default = True
    return method


def overrides(callback, *hooks):
    """Whether `callback` has its own version of any of `hooks` (a subclass method or, as
    LambdaCallback sets them, an instance attribute)."""
    return any(not getattr(getattr(callback, hook), "_is_default", False) for hook in hooks)


class Callback:
    """Base class of callbacks: override the hooks you need.

    Attributes:
        params: dict of fit/evaluate/predict parameters (`verbose`, `epochs`, `steps`).
        model: the model being trained (set by `set_model`).
    """

    params = None
    _model = None
    _reads_batch_logs_lazily = False  # see the module docstring
    _rank_zero_only = False  # a data-parallel run calls it on rank 0 alone (it only writes files)

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    @model.setter
    def model(self, model):
        self._model = model

    @default
    def on_batch_begin(self, batch, logs=None):
        """Alias of `on_train_batch_begin`, kept by Keras for backwards compatibility."""

    @default
    def on_batch_end(self, batch, logs=None):
        """Alias of `on_train_batch_end`, kept by Keras for backwards compatibility."""

    @default
    def on_epoch_begin(self, epoch, logs=None):
        """Start of epoch `epoch` (0-based) in fit."""

    @default
    def on_epoch_end(self, epoch, logs=None):
        """End of epoch `epoch`: `logs` holds the epoch's loss and metrics, and val_* ones."""

    @default
    def on_train_batch_begin(self, batch, logs=None):
        """Start of training batch `batch` (0-based within the epoch)."""
        self.on_batch_begin(batch, logs=logs)

    @default
    def on_train_batch_end(self, batch, logs=None):
        """End of training batch `batch`: `logs` holds the loss and metrics so far this epoch."""
        self.on_batch_end(batch, logs=logs)

    @default
    def on_test_batch_begin(self, batch, logs=None):
        """Start of a batch of evaluate, or of fit's validation."""

    @default
    def on_test_batch_end(self, batch, logs=None):
        """End of a batch of evaluate or of fit's validation: the loss and metrics so far."""

    @default
    def on_predict_batch_begin(self, batch, logs=None):
        """Start of a batch of predict."""

    @default
    def on_predict_batch_end(self, batch, logs=None):
        """End of a batch of predict: `logs["outputs"]` is the batch's output."""

    @default
    def on_train_begin(self, logs=None):
        """Start of fit."""

    @default
    def on_train_end(self, logs=None):
        """End of fit: `logs` are the last epoch's logs."""

    @default
    def on_test_begin(self, logs=None):
        """Start of evaluate, or of fit's validation."""

    @default
    def on_test_end(self, logs=None):
        """End of evaluate or of fit's validation: the final loss and metrics."""

    @default
    def on_predict_begin(self, logs=None):
        """Start of predict."""

    @default
    def on_predict_end(self, logs=None):
        """End of predict."""


def pythonify_logs(logs):
    """Keras's form of logs: a new dict, keys sorted, nested dicts flattened, scalars as
    Python floats (read from the device), arrays as NumPy arrays."""
    from gpudl.backend import get_backend

    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(pythonify_logs(value))
            continue
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            value = get_backend().to_numpy(value)
            if value.ndim == 0:
                value = float(value)
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        result[key] = value
    return result


def learning_rate_value(optimizer):
    """The optimizer's current learning rate as a float (a schedule's rate at the next step)."""
    rate = optimizer.learning_rate
    if callable(rate) and hasattr(optimizer, "current_learning_rate"):
        return float(optimizer.current_learning_rate())
    return float(rate)
