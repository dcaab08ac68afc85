"""Trainer: compile, fit / evaluate / predict and the training step, for every model kind.

A model hands the trainer `forward(x, training, logits)`, `backward(dy)`, `regularization_loss()`,
its layers in order (`_leaves()`), its parameter arena once built (`build`), its `dtype`, `seed`
and input and output shapes; the trainer does the rest. One step is

    forward -> loss value and gradient -> backward -> reduce_gradients -> optimizer update
            -> constraints -> metrics

`reduce_gradients` is the one place between backward and the update where a data-parallel
run all-reduces the gradient arena. Losses and metrics accumulate in device arrays: fit reads
them on the host once per epoch, and per batch only when a callback reads the batch logs
(`DeviceLogs`).
"""

import numpy as np

from gpudl import collectives
from gpudl.backend import get_backend
from gpudl.errors import check_count, invalid_value
from gpudl.frontend import losses as losses_module
from gpudl.frontend import metrics as metrics_module
from gpudl.frontend import optimizers as optimizers_module
from gpudl.frontend.callbacks import CallbackList, History
from gpudl.frontend.models import data_adapter, data_parallel, guards
from gpudl.frontend.models.data_adapter import ArrayBatches, SourceBatches, is_batch_source


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch... for a model (see the module docstring)."""

    compiled = False
    stop_training = False
    history = None
    epochs_done = 0  # completed epochs, saved with the model for fit(initial_epoch=...)
    _initial_epoch = None  # BackupAndRestore sets it in on_train_begin, as in Keras
    _started_in_step = False  # data parallel: rank 0's model broadcast once per fit (data_parallel)

    # -- compile ------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, the loss and the metrics (e.g. ["accuracy"]). `run_eagerly`,
        `steps_per_execution`, `jit_compile` and `auto_scale_loss` are accepted for Keras
        scripts: gpudl's step is always its fused kernels."""
        if loss is None:
            raise invalid_value("loss", "a loss name or object", loss, f"compile of '{self.name}'")
        if loss_weights is not None:
            raise ValueError(f"compile of '{self.name}': `loss_weights` (compile's third argument in Keras 3) "
                             f"applies to multi-output models, which gpudl's Sequential is not; received "
                             f"loss_weights={loss_weights!r}. Pass metrics by keyword: metrics=[...].")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss  # as given, like Keras; the Loss object that runs is compiled_loss
        self.compiled_loss = losses_module.loss_object(loss)
        self._metric_names = list(metrics or [])
        self._weighted_metric_names = list(weighted_metrics or [])
        self.metrics = None  # resolved once the output width is known
        self.compiled = True
        if self.built:
            self.optimizer.build(self.arena)

    def _prepare_to_run(self, x_shape):
        """Check that the model is compiled, build it for inputs of `x_shape`, resolve the metrics
        for its output width, and decide whether the output activation is fused into the loss."""
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before using the model. (Model '{self.name}': "
                             f"model.compile(optimizer, loss, metrics=[...]).)")
        self._ensure_built(x_shape)
        if not self.optimizer.slots and self.optimizer.slot_names:
            self.optimizer.build(self.arena)
        if self.metrics is None:
            units = self._output_feature_shape[-1]
            self.metrics = [metrics_module.get(m, self.compiled_loss, units)
                            for m in self._metric_names + self._weighted_metric_names]
            self._metric_weighted = [False] * len(self._metric_names) + [True] * len(self._weighted_metric_names)
        last = self._leaves()[-1]
        loss = self.compiled_loss
        self._fused = (not loss.from_logits and loss.fused_activation is not None and not self.uses_call()
                       and getattr(last, "activation", None) == loss.fused_activation)  # a call() may change the output

    @property
    def metrics_names(self):
        """["loss", metric names...] in the order evaluate returns them (Keras 3 says
        "compile_metrics" for the metrics; gpudl names each one)."""
        if not self.compiled:
            return []
        names = [m if isinstance(m, str) else m.name for m in self._metric_names + self._weighted_metric_names]
        return ["loss", *(m.name for m in self.metrics)] if self.metrics else ["loss", *names]

    # -- checking input: x, then build, then y -------------------------------
    def _check_x(self, x, where):
        first = self.layers[0].name if self.layers else self.name
        return data_adapter.check_x(x, self._feature_shape, self.dtype, where,
                                    f"Layer '{first}' of model '{self.name}'")

    def _check_xy(self, x, y, where_x="x", where_y="y"):
        """(x, y) checked and converted; the model is built for x on the way (y's shape depends on it)."""
        x = self._check_x(x, where_x)
        y = data_adapter.check_y(y, len(x), where_x, where_y)
        data_adapter.check_fits(y, self.dtype, where_y)
        self._prepare_to_run(x.shape)
        return x, np.ascontiguousarray(self.compiled_loss.prepare_targets(y, self._output_feature_shape, where_y))

    # -- the step -------------------------------------------------------------
    def _loss_and_gradient(self, x, y, training, sample_weight=None):
        """Forward, then (loss without penalties, dL/d output, output); the output is
        the logits when the output activation is fused into the loss."""
        output = self.forward(x, training=training, logits=self._fused)
        if data_adapter.rows(x) == 0:  # a data-parallel process's empty rows of a tiny last batch: nothing to add
            return get_backend().xp.zeros((), dtype=output.dtype), get_backend().xp.zeros_like(output), output
        if self._fused:
            loss, d_output = self.compiled_loss.logits_value_and_gradient(y, output, sample_weight=sample_weight)
        else:
            loss, d_output = self.compiled_loss.value_and_gradient(y, output, sample_weight=sample_weight)
        if getattr(loss, "ndim", 0):  # reduction="none": train on the sum, whose gradient this is
            loss = loss.sum()
        return loss, d_output, output

    @guards.whole_step  # a Ctrl-C lands after the step, never inside the update
    def _train_step(self, x, y, sample_weight=None):
        if not self._started_in_step:  # data parallel: every process starts from rank 0's model
            data_parallel.start_in_step(self)
            self._started_in_step = True
        loss, d_output, output = self._loss_and_gradient(x, y, training=True, sample_weight=sample_weight)
        penalty = self.regularization_loss()  # of the weights this step's gradient is taken at
        if not (isinstance(penalty, float) and penalty == 0.0):  # no penalty: no launch adding 0
            loss = loss + penalty
        self.backward(d_output)
        self.reduce_gradients()
        if self._trainable_runs is None:
            self._trainable_runs = self._trainable_runs_now()
        self.optimizer.apply_to_arena(self.arena, self._trainable_runs)
        self.apply_constraints()
        self._update_metrics(y, output, sample_weight)
        return loss

    def reduce_gradients(self):
        """Between backward and the optimizer update: the gradient arena (`arena.grads`) holds this
        process's gradients, which in one process are the step's. A data-parallel distribution
        all-reduces them here; nothing else in the step changes."""
        data_parallel.reduce_gradients(self.arena)

    def _trainable_runs_now(self):
        """Arena runs of the parameters of layers that are trainable at this moment."""
        ids = {id(p) for layer in self._leaves() if layer.trainable for p in layer.weights}
        return self.arena.runs(lambda p: id(p) in ids)

    def _update_metrics(self, y, output, sample_weight):
        """Keras 3: `metrics` ignore sample weights; `weighted_metrics` use them."""
        for metric, weighted in zip(self.metrics, self._metric_weighted):
            metric.update(y, output, logits=self._fused, sample_weight=sample_weight if weighted else None)

    def _reset_metrics(self):
        for metric in self.metrics or []:  # None until the first batch is seen
            metric.reset()

    def _logs(self, loss_sum, seen, reduce=True):
        """Logs of the batches so far, read from the device only when a callback looks; in a
        data-parallel run summed over the processes (unless `reduce` is False: no callback reads them)."""
        if reduce:
            loss_sum, seen, results = data_parallel.reduced_logs(self, loss_sum, seen)
        else:
            results = None

        def read():
            logs = {"loss": float(get_backend().to_numpy(loss_sum)) / seen}
            logs.update({name: _host_value(value) for name, value in
                         (results() if results else {m.name: m.result() for m in self.metrics}).items()})
            return dict(sorted(logs.items()))  # Keras sorts the log keys
        return DeviceLogs(["loss", *(m.name for m in self.metrics)], read)

    # -- fit --------------------------------------------------------------------
    @guards.exclusive  # one call at a time per model, from any thread
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        """Train with mini-batches (shuffled, partitioned, last partial batch kept) from arrays,
        a `gpudl.utils.PyDataset` or a generator of (x, y[, sample_weight]) batches.

        Returns a History whose `.history` maps loss, metrics and val_* to per-epoch lists;
        the epoch loss is the batch-size-weighted mean of the batch losses, penalties included.
        """
        batch_size = data_adapter.check_batch_size(batch_size)
        epochs = check_count("epochs", epochs, "fit")
        initial_epoch = check_count("initial_epoch", initial_epoch, "fit")
        if (isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.integer, np.floating))
                or not 0.0 <= float(validation_split) < 1.0):  # "0.2" too: a number, as Keras takes it
            raise invalid_value("validation_split", "a float in [0, 1)", validation_split, "fit")
        validation_split = float(validation_split)
        if validation_steps is not None:
            validation_steps = check_count("validation_steps", validation_steps, "fit", minimum=1)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: you cannot pass both `class_weight` and `sample_weight`, as in Keras.")
        validation_freq = _check_validation_freq(validation_freq)
        verbose = _resolve_verbose(verbose)
        train = data_adapter.training_batches(x, y, sample_weight, class_weight, batch_size, steps_per_epoch,
                                              self._check_xy, self.dtype)
        if validation_data is None and validation_split > 0:
            if not isinstance(train, ArrayBatches):
                raise ValueError("fit: `validation_split` needs arrays; pass `validation_data` with a "
                                 "PyDataset or generator.")
            validation_data = train.split(validation_split)
        validation = (None if validation_data is None else
                      data_adapter.evaluation_batches(validation_data, validation_batch_size or batch_size,
                                                      validation_steps, "validation_data", self._check_xy,
                                                      self.dtype))

        steps = train.steps
        self._trainable_runs = self._trainable_runs_now() if self.built else None  # else at the first step
        self._fit_epochs, self._fit_steps = epochs, steps
        callback_list = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=epochs, steps=steps)
        history = next(c for c in callback_list.callbacks if isinstance(c, History))
        self.history = history
        self.stop_training = False
        self._started_in_step = False
        self._initial_epoch = None
        backend = get_backend()
        callback_list.on_train_begin()
        if self._initial_epoch is not None:  # BackupAndRestore resumed a run
            initial_epoch = self._initial_epoch
        training_logs = None
        batch_sync = data_parallel.batch_hooks(callback_list, "train")  # data parallel: reduce at each batch end?
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            callback_list.on_epoch_begin(epoch)
            self.optimizer.prepare_steps(steps or self.optimizer.steps_per_upload)  # one upload per epoch
            loss_sum, seen, step = backend.xp.zeros((), dtype=np.float64), 0, -1
            for step, (xb, yb, wb) in enumerate(self._epoch_batches(train, epoch, shuffle)):
                callback_list.on_train_batch_begin(step)
                loss_sum = loss_sum + self._train_step(xb, yb, wb) * data_adapter.rows(xb)
                seen += data_adapter.rows(xb)
                callback_list.on_train_batch_end(step, self._logs(loss_sum, seen, reduce=batch_sync))
                if batch_sync:
                    self.stop_training = data_parallel.any_process(self.stop_training)
                if self.stop_training:
                    break
            if step < 0:
                raise ValueError("fit: the training data gave no batches (an exhausted generator?). "
                                 "Pass steps_per_epoch, or a PyDataset.")
            epoch_logs = dict(self._logs(loss_sum, seen).read())
            if validation is not None and (epoch + 1) in validation_freq(epochs):
                val_logs = self._run_evaluation(validation, callback_list)
                epoch_logs.update({"val_" + key: value for key, value in val_logs.items()})
            self.epochs_done = epoch + 1
            callback_list.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            train.end_epoch()
            self.stop_training = data_parallel.any_process(self.stop_training)
            if self.stop_training:
                break
        data_parallel.end_of_run()
        callback_list.on_train_end(training_logs)
        self.clear_activity_loss()
        return history

    def epoch_order(self, n, epoch):
        """The shuffled order of epoch `epoch`: a pure function of (model seed, epoch)."""
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _epoch_batches(self, source, epoch=None, shuffle=False):
        """One epoch of device batches, shuffled by epoch_order when `shuffle` (a PyDataset's
        batches are shuffled, as Keras does; a generator's never)."""
        order = self.epoch_order(source.length, epoch) if shuffle and source.length is not None else None
        return source.batches(get_backend(), order)

    # -- evaluate / predict -----------------------------------------------------
    def _run_evaluation(self, source, callback_list):
        """Loss (penalties included) and metrics in inference mode over `source`, with the
        test hooks, in Keras's order; returns the logs read on the host."""
        backend = get_backend()
        self._reset_metrics()
        callback_list.on_test_begin()
        loss_sum, seen = backend.xp.zeros((), dtype=np.float64), 0
        batch_sync = data_parallel.batch_hooks(callback_list, "test")  # data parallel: reduce at each batch end?
        for step, (xb, yb, wb) in enumerate(self._epoch_batches(source)):
            callback_list.on_test_batch_begin(step)
            loss, _, output = self._loss_and_gradient(xb, yb, training=False, sample_weight=wb)
            loss_sum = loss_sum + (loss + self.regularization_loss()) * data_adapter.rows(xb)
            seen += data_adapter.rows(xb)
            self._update_metrics(yb, output, wb)
            callback_list.on_test_batch_end(step, self._logs(loss_sum, seen, reduce=batch_sync))
        logs = dict(self._logs(loss_sum, seen).read())
        callback_list.on_test_end(logs)
        self.clear_activity_loss()
        return logs

    def _results(self, logs, return_dict):
        """Keras's return shape: a dict, the loss alone, or [loss, metrics in compile order]."""
        if return_dict:
            return logs
        values = [logs["loss"], *(logs[m.name] for m in self.metrics)]
        return values[0] if len(values) == 1 else values

    @guards.exclusive  # one call at a time per model, from any thread
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (penalties included) and metrics in inference mode: the loss alone, or
        [loss, metric...] when metrics were compiled, or a dict with return_dict=True."""
        batch_size = data_adapter.check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        data = x if is_batch_source(x) else (x, y, sample_weight)
        source = data_adapter.evaluation_batches(data, batch_size, steps, "x", self._check_xy, self.dtype,
                                                 names=("x", "y", "sample_weight"))
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                     epochs=1, steps=source.steps)
        return self._results(self._run_evaluation(source, callback_list), return_dict)

    @guards.exclusive  # one call at a time per model, from any thread
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs in inference mode, as a host NumPy array."""
        batch_size = data_adapter.check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        if steps is not None:
            steps = check_count("steps", steps, "predict", minimum=1)
        backend = get_backend()
        if is_batch_source(x):
            source = SourceBatches(x, steps, "x")
            inputs = (self._check_x(batch[0], "x batch") for batch in source.epoch())
            total = source.steps
        else:
            x = self._check_x(x, "x")
            batches = -(-data_adapter.rows(x) // batch_size)
            total = batches if steps is None else min(batches, int(steps))
            length = min(data_adapter.rows(x), total * batch_size)
            start, stop = data_parallel.predict_part(length)  # data parallel: this process's part
            x, batch_size = data_adapter.take(x, slice(start, stop)), data_parallel.local_batch_size(batch_size)
            total = -(-data_adapter.rows(x) // batch_size)
            self._ensure_built(data_adapter.first(x).shape)
            inputs = (data_adapter.take(x, slice(i * batch_size, (i + 1) * batch_size)) for i in range(total))
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                     epochs=1, steps=total)
        callback_list.on_predict_begin()
        outputs = []
        for step, xb in enumerate(inputs):
            self._ensure_built(data_adapter.first(xb).shape)
            callback_list.on_predict_batch_begin(step)
            output = self.forward(data_adapter.to_device(backend, xb), training=False)
            outputs.append(data_adapter.to_host(backend, output))
            callback_list.on_predict_batch_end(step, {"outputs": outputs[-1]})
        callback_list.on_predict_end()
        self.clear_activity_loss()
        if is_batch_source(x) or not collectives.active():
            return data_adapter.concatenate(outputs)
        outputs = outputs or [np.zeros((0, *self._output_feature_shape), dtype=self.dtype)]
        return data_parallel.gathered_predictions(data_adapter.concatenate(outputs), length)

    # -- one batch ----------------------------------------------------------------
    @guards.exclusive  # one call at a time per model, from any thread
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch: its loss (penalties included, at the weights before
        the step), or [loss, metrics...] when metrics are compiled, or a dict."""
        x, y = self._check_xy(x, y)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("train_on_batch: pass `class_weight` or `sample_weight`, not both.")
        weights = data_adapter.sample_weights(sample_weight, class_weight, y, self.dtype)
        self._trainable_runs = self._trainable_runs_now()
        self._reset_metrics()
        backend = get_backend()
        rows = data_adapter.rows(x)
        data_parallel.own_batch(rows)  # data parallel: each process brought its own rows
        loss = self._train_step(data_adapter.to_device(backend, x), data_adapter.to_device(backend, y),
                                data_adapter.to_device(backend, weights))
        logs = dict(self._logs(loss * rows, rows).read())
        data_parallel.end_of_run()
        return self._results(logs, return_dict)

    @guards.exclusive  # one call at a time per model, from any thread
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics of one batch in inference mode."""
        return self.evaluate(x, y, batch_size=data_adapter.rows(self._check_x(x, "x")), verbose=0,
                             sample_weight=sample_weight,
                             return_dict=return_dict)

    @guards.exclusive  # one call at a time per model, from any thread
    def predict_on_batch(self, x):
        """Outputs of one batch in inference mode, as a NumPy array."""
        return self.predict(x, batch_size=data_adapter.rows(self._check_x(x, "x")), verbose=0)

    @guards.exclusive  # one call at a time per model, from any thread
    def compute_gradients(self, x, y, sample_weight=None, training=True):
        """(loss, grads): the loss with penalties and d loss / d w for each array of
        `trainable_weights`, in that order, with nothing applied (a custom training loop's
        first half; `optimizer.apply_gradients(zip(grads, model.trainable_weights))` is the second)."""
        x, y = self._check_xy(x, y)
        weights = data_adapter.sample_weights(sample_weight, None, y, self.dtype)
        backend = get_backend()
        self.arena.grads[...] = 0
        loss, d_output, _ = self._loss_and_gradient(data_adapter.to_device(backend, x),
                                                    data_adapter.to_device(backend, y), training=training,
                                                    sample_weight=data_adapter.to_device(backend, weights))
        loss = loss + self.regularization_loss()
        self.backward(d_output)
        return float(backend.to_numpy(loss)), [p.grad.copy() for p in self.trainable_weights]


class DeviceLogs(dict):
    """Batch logs whose values stay on the device until a callback reads one: the keys are
    known at once (`len`, `in`, iteration over keys cost nothing); the first value read
    fetches them all from the device in one go."""

    def __init__(self, keys, read):
        super().__init__()
        self._keys, self._read, self._filled = list(keys), read, False

    def __setitem__(self, key, value):
        dict.__setitem__(self, key, value)
        if key not in self._keys:
            self._keys.append(key)

    def read(self):
        if not self._filled:
            self._filled = True
            for key, value in self._read().items():
                dict.setdefault(self, key, value)  # a value a callback already wrote wins
        return self

    def __len__(self):
        return len(self._keys)

    def __bool__(self):
        return bool(self._keys)

    def _values(self):
        self.read()
        return {key: dict.__getitem__(self, key) for key in dict.__iter__(self)}  # a plain dict

    def __iter__(self):
        return iter(self._values())

    def __contains__(self, key):
        return key in self._keys

    def keys(self):
        return self._values().keys()

    def __getitem__(self, key):
        return dict.__getitem__(self.read(), key)

    def get(self, key, default=None):
        return dict.get(self.read(), key, default)

    def items(self):
        return self._values().items()

    def values(self):
        return self._values().values()

    def copy(self):
        return self._values()

    def __repr__(self):
        return repr(self._values())


def _host_value(result):
    """A metric's result as a float (or a NumPy array for multi-threshold metrics)."""
    result = get_backend().to_numpy(result) if not isinstance(result, (int, float)) else result
    return float(result) if np.ndim(result) == 0 else np.asarray(result)


def _check_validation_freq(validation_freq):
    """validation_freq -> function(epochs) giving the 1-based epochs that validate."""
    if isinstance(validation_freq, (list, tuple, set)):
        chosen = {int(e) for e in validation_freq}
        return lambda epochs: chosen
    freq = check_count("validation_freq", validation_freq, "fit")
    if freq < 1:
        raise invalid_value("validation_freq", "a positive integer or a list of epochs", validation_freq, "fit")
    return lambda epochs: set(range(freq, epochs + 1, freq))


def _resolve_verbose(verbose):
    """Keras: "auto" is 1 (a progress bar), 0 is silent, 2 is one line per epoch."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise invalid_value("verbose", "'auto', 0, 1 or 2", verbose)
    return int(verbose)
