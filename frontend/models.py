"""Sequential: a stack of layers with Keras's compile / fit / evaluate / predict.

The training step runs forward, the loss (value and gradient), backward, one optimizer
update over the flat arena, then the layers' constraints. Losses and metrics accumulate
in device arrays: fit reads them on the host once per epoch, and per batch only when a
callback reads the batch logs (`DeviceLogs`).
"""

import json

import numpy as np

from gpudl import random as gpudl_random
from gpudl.arena import ParameterArena
from gpudl.backend import floatx, get_backend
from gpudl.errors import check_finite_array, invalid_value
from gpudl.frontend import losses as losses_module
from gpudl.frontend import metrics as metrics_module
from gpudl.frontend import optimizers as optimizers_module
from gpudl.frontend.callbacks import CallbackList, History
from gpudl.frontend.data_sources import ArrayBatches, SourceBatches, is_batch_source
from gpudl.frontend.layers import LAYER_CLASSES
from gpudl.frontend.layers.base import Layer, assign_weights, unique_name
from gpudl.frontend.layers.dropout import Dropout
from gpudl.frontend.layers.input import Input
from gpudl.frontend.layers.input_layer import InputLayer

DEFAULT_BATCH_SIZE = 32


class Sequential:
    """A linear stack of layers.

    Args:
        layers: list of layers, optionally starting with `Input(shape)`; a layer given
            `input_shape=` or `input_dim=` also fixes the input shape. A Sequential can
            itself be a layer of another.
        name: model name.
        dtype: "float32" (default: gpudl.floatx()) or "float64".
        seed: the model's seed (dropout masks, shuffling); default drawn from
            gpudl's generator, so `gpudl.utils.set_random_seed` fixes it.
        trainable: False freezes every layer.
    """

    def __init__(self, layers=None, name=None, dtype=None, seed=None, trainable=True):
        self.name = name or unique_name("sequential")
        self.dtype = np.dtype(dtype or floatx()).name
        if self.dtype not in ("float32", "float64"):
            raise invalid_value("dtype", "'float32' or 'float64'", dtype, f"Sequential '{self.name}'")
        self.seed = gpudl_random.new_seed() if seed is None else int(seed)
        self.layers = []
        self._feature_shape = None  # the input shape without the batch axis
        self._input_layer = None  # the InputLayer Keras lists first in the config
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.epochs_done = 0  # completed epochs, saved with the model for fit(initial_epoch=...)
        self._initial_epoch = None  # BackupAndRestore sets it in on_train_begin, as in Keras
        self.input_gradient_needed = True  # as a layer of another model
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._feature_shape is not None and self.layers:
            self.build()
        if not trainable:
            self.trainable = False

    # -- structure ----------------------------------------------------------
    def add(self, layer, rebuild=True):
        """Append a layer (or an `Input`); once the input shape is known the model builds
        as layers arrive, as in Keras."""
        if isinstance(layer, Input):  # keras.Input or an InputLayer
            if self.layers or self._feature_shape is not None:
                raise ValueError(f"Sequential '{self.name}': an Input must be the first element of the model.")
            self._feature_shape = tuple(layer.shape)
            self._input_layer = layer if isinstance(layer, InputLayer) else InputLayer(
                shape=layer.shape, dtype=self.dtype, name=getattr(layer, "name", None))
            return
        if not isinstance(layer, (Layer, Sequential)):
            hint = (" The functional API (keras.Model(inputs, outputs)) is not supported: build a "
                    "gpudl.Sequential." if callable(layer) else "")
            raise TypeError(f"Sequential '{self.name}' can only add layers; received {layer!r}.{hint}")
        declared = getattr(layer, "declared_input_shape", None)  # Dense(..., input_shape=(n,))
        if isinstance(layer, Sequential):  # a model with a known input shape, as Keras's _maybe_rebuild
            declared = layer._feature_shape
        if declared is not None and not self.layers and self._feature_shape is None:
            self._feature_shape = tuple(declared)
            self._input_layer = InputLayer(shape=self._feature_shape, dtype=self.dtype)  # as Keras adds one
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"Sequential '{self.name}' already has a layer named {layer.name!r}: "
                             f"layer names must be unique.")
        self.layers.append(layer)
        self.built = False  # the arena is laid out again, keeping built layers' values
        if rebuild and self._feature_shape is not None:
            self.build()

    def pop(self, rebuild=True):
        """Remove and return the last layer."""
        if not self.layers:
            raise IndexError(f"There are no layers in the model. (Sequential '{self.name}')")
        layer = self.layers.pop()
        self.built = False
        if rebuild and self.layers and self._feature_shape is not None:
            self.build()
        return layer

    def get_layer(self, name=None, index=None):
        """A layer by its name or its index in `layers`."""
        if (name is None) == (index is None):
            raise ValueError("Provide exactly one of `name` or `index` to get_layer.")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Sequential '{self.name}' has {len(self.layers)} layers; received index={index}.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Layers of '{self.name}': "
                         f"{', '.join(layer.name for layer in self.layers)}.")

    def _leaves(self):
        """The layers in order, nested Sequentials expanded."""
        leaves = []
        for layer in self.layers:
            leaves.extend(layer._leaves() if isinstance(layer, Sequential) else [layer])
        return leaves

    def build(self, input_shape=None):
        """Build every layer for inputs of `input_shape` ((None, n) as Keras, or (n,)) and lay
        out the trainable parameters in one arena."""
        if input_shape is not None:
            input_shape = tuple(input_shape)
            if input_shape and input_shape[0] is None:
                input_shape = input_shape[1:]
        input_shape = tuple(input_shape or self._feature_shape or ())
        if not input_shape:
            raise ValueError(f"Model '{self.name}' cannot be built without an input shape: start it "
                             f"with gpudl.Input(shape=...) or call build((None, n)), fit or predict.")
        if not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers.")
        self._feature_shape = input_shape
        leaves = self._leaves()
        shape = input_shape
        for index, layer in enumerate(leaves):
            shape = layer.build_for(shape, self.dtype)
            if isinstance(layer, Dropout):
                layer.base_seed = layer.seed if layer.seed is not None else self.seed
                layer.index = index
        self._output_feature_shape = shape
        # backward stops at the first layer with parameters: nothing below it learns
        with_params = [i for i, layer in enumerate(leaves) if any(p.trainable for p in layer.weights)]
        self._backward_start = (with_params or [len(leaves)])[0]
        for index, layer in enumerate(leaves):
            layer.input_gradient_needed = index > self._backward_start
        trainable = [p for layer in leaves for p in layer.weights if p.trainable]
        self.arena = ParameterArena(trainable, self.dtype)
        for layer in leaves:  # state (moving statistics) moves to the device too
            for p in layer.weights:
                if not p.trainable:
                    p.value = get_backend().asarray(p.value)
        self.built = True
        if self.compiled:
            self.optimizer.build(self.arena)

    def _ensure_built(self, x_shape):
        if not self.built:
            self.build(self._feature_shape or tuple(x_shape[1:]))

    @property
    def input_shape(self):
        """(None, features...) once known, as Keras."""
        return None if self._feature_shape is None else (None, *self._feature_shape)

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError(f"Model '{self.name}' has no output shape until it is built.")
        return (None, *self._output_feature_shape)

    @property
    def trainable(self):
        return all(layer.trainable for layer in self.layers) if self.layers else True

    @trainable.setter
    def trainable(self, value):
        """Keras: setting it on the model sets it on every layer (nested ones included)."""
        for layer in self.layers:
            layer.trainable = bool(value)

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
        self._fused = (not loss.from_logits and loss.fused_activation is not None
                       and getattr(last, "activation", None) == loss.fused_activation)

    @property
    def metrics_names(self):
        """["loss", metric names...] in the order evaluate returns them (Keras 3 says
        "compile_metrics" for the metrics; gpudl names each one)."""
        if not self.compiled:
            return []
        names = [m if isinstance(m, str) else m.name for m in self._metric_names + self._weighted_metric_names]
        return ["loss", *(m.name for m in self.metrics)] if self.metrics else ["loss", *names]

    # -- forward / backward ---------------------------------------------------
    def forward(self, x, training=False, logits=False):
        """Forward through every layer; `logits=True` stops before the last layer's activation."""
        leaves = self._leaves()
        for layer in leaves[:-1]:
            x = layer.forward(x, training=training)
        last = leaves[-1]
        return last.forward(x, training=training, logits=True) if logits else last.forward(x, training=training)

    def backward(self, dy):
        """Backward through every layer down to the first that learns; adds the penalties' gradients."""
        leaves = self._leaves()
        for layer in reversed(leaves[self._backward_start:]):
            dy = layer.backward(dy)
        for layer in leaves:
            layer.add_regularization_gradients()
        return dy

    def regularization_loss(self):
        """The sum of the layers' penalties (weights, and activities of the last forward)."""
        return sum(layer.regularization_loss() for layer in self._leaves())

    def _loss_and_gradient(self, x, y, training, sample_weight=None):
        """Forward, then (loss without penalties, dL/d output, output); the output is
        the logits when the output activation is fused into the loss."""
        output = self.forward(x, training=training, logits=self._fused)
        if self._fused:
            loss, d_output = self.compiled_loss.logits_value_and_gradient(y, output, sample_weight=sample_weight)
        else:
            loss, d_output = self.compiled_loss.value_and_gradient(y, output, sample_weight=sample_weight)
        if getattr(loss, "ndim", 0):  # reduction="none": train on the sum, whose gradient this is
            loss = loss.sum()
        return loss, d_output, output

    def _train_step(self, x, y, sample_weight=None):
        loss, d_output, output = self._loss_and_gradient(x, y, training=True, sample_weight=sample_weight)
        loss = loss + self.regularization_loss()  # of the weights this step's gradient is taken at
        self.backward(d_output)
        if self._trainable_runs is None:
            self._trainable_runs = self._trainable_runs_now()
        self.optimizer.apply_to_arena(self.arena, self._trainable_runs)
        self._apply_constraints()
        self._update_metrics(y, output, sample_weight)
        return loss

    def _apply_constraints(self):
        for layer in self._leaves():
            layer.apply_constraints()

    def _update_metrics(self, y, output, sample_weight):
        """Keras 3: `metrics` ignore sample weights; `weighted_metrics` use them."""
        for metric, weighted in zip(self.metrics, self._metric_weighted):
            metric.update(y, output, logits=self._fused, sample_weight=sample_weight if weighted else None)

    def __call__(self, x, training=False):
        """Forward pass; `training=True` keeps dropout on (Monte Carlo dropout) and
        uses batch statistics in batch-norm. Returns a backend array."""
        x = self._check_x(x, "x")
        self._ensure_built(x.shape)
        return self.forward(get_backend().asarray(x), training=bool(training))

    # -- checking and converting input ----------------------------------------
    def _check_x(self, x, where):
        """Any array-like (NumPy of any layout, a list, a torch CPU tensor) as one C-contiguous
        array of the model's dtype, after checking its dtype, shape and values."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"`{where}` must be a numeric array; received dtype {x.dtype}.")
        if x.ndim == 1 and self._feature_shape == (1,):  # Keras expands rank-1 x for a (None, 1) input
            x = x.reshape(-1, 1)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"`{where}` must be a non-empty array of shape (N, features...); "
                             f"received shape {x.shape}.")
        expected = self._feature_shape
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            first = self.layers[0].name if self.layers else self.name
            raise ValueError(f"Layer '{first}' of model '{self.name}' expected `{where}` of shape "
                             f"(None, {', '.join(map(str, expected))}); received shape {x.shape}.")
        check_finite_array(where, x)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _check_xy(self, x, y, where_x="x", where_y="y"):
        x = self._check_x(x, where_x)
        if y is None:
            raise ValueError(f"`{where_y}` is required: gpudl's losses need targets.")
        y_array = np.asarray(y)
        if y_array.shape[:1] != x.shape[:1]:
            raise ValueError(f"`{where_x}` and `{where_y}` must have the same number of samples; "
                             f"received {x.shape[0]} and {y_array.shape[0] if y_array.ndim else 'a scalar'}.")
        check_finite_array(where_y, y_array)
        self._prepare_to_run(x.shape)
        return x, np.ascontiguousarray(self.compiled_loss.prepare_targets(y_array, self._output_feature_shape, where_y))

    def _check_sample_weight(self, sample_weight, n, where="sample_weight"):
        """None, or a finite non-negative float array of shape (n,) in the model's dtype."""
        if sample_weight is None:
            return None
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.ndim == 2 and weights.shape[1] == 1:
            weights = weights[:, 0]
        if weights.shape != (n,):
            raise ValueError(f"`{where}` must have shape ({n},), one weight per sample; received shape "
                             f"{weights.shape}.")
        check_finite_array(where, weights)
        if (weights < 0).any():
            raise ValueError(f"`{where}` must be non-negative; found {weights.min()} at index "
                             f"{int(np.argmin(weights))}.")
        return weights.astype(self.dtype)

    def _class_weights(self, class_weight, y):
        """Keras's class_weight -> sample_weight: each sample weighs class_weight[its class]."""
        if not isinstance(class_weight, dict):
            raise invalid_value("class_weight", "a dict {class index: weight}", class_weight, "fit")
        labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.round(y.reshape(len(y))).astype(int)
        missing = sorted(set(np.unique(labels).tolist()) - {int(k) for k in class_weight})
        if missing:
            raise ValueError(f"`class_weight` has no weight for class {missing[0]}, which is present in `y` "
                             f"(classes in y without a weight: {missing}). Give every class a weight.")
        table = {int(k): float(v) for k, v in class_weight.items()}
        return self._check_sample_weight([table[int(c)] for c in labels], len(labels), "class_weight")

    # -- fit / evaluate / predict --------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        """Train with mini-batches (shuffled, partitioned, last partial batch kept) from arrays,
        a `gpudl.utils.PyDataset` or a generator of (x, y[, sample_weight]) batches.

        Returns a History whose `.history` maps loss, metrics and val_* to per-epoch lists;
        the epoch loss is the batch-size-weighted mean of the batch losses, penalties included.
        """
        batch_size = _check_batch_size(batch_size)
        epochs = _check_count("epochs", epochs, "fit")
        initial_epoch = _check_count("initial_epoch", initial_epoch, "fit")
        if not 0.0 <= float(validation_split) < 1.0:
            raise invalid_value("validation_split", "a float in [0, 1)", validation_split, "fit")
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: you cannot pass both `class_weight` and `sample_weight`, as in Keras.")
        validation_freq = _check_validation_freq(validation_freq)
        verbose = _resolve_verbose(verbose)
        train, source_class_weight = self._training_source(x, y, sample_weight, class_weight, batch_size,
                                                           steps_per_epoch)
        if validation_data is None and validation_split > 0:
            if not isinstance(train, ArrayBatches):
                raise ValueError("fit: `validation_split` needs arrays; pass `validation_data` with a "
                                 "PyDataset or generator.")
            validation_data = train.split(validation_split)
        validation = (None if validation_data is None else
                      self._evaluation_source(validation_data, validation_batch_size or batch_size,
                                              validation_steps, "validation_data"))

        steps = train.steps
        self._trainable_runs = self._trainable_runs_now() if self.built else None  # else at the first step
        self._fit_epochs, self._fit_steps = epochs, steps
        callback_list = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=epochs, steps=steps)
        history = next(c for c in callback_list.callbacks if isinstance(c, History))
        self.history = history
        self.stop_training = False
        self._initial_epoch = None
        backend = get_backend()
        callback_list.on_train_begin()
        if self._initial_epoch is not None:  # BackupAndRestore resumed a run
            initial_epoch = self._initial_epoch
        training_logs = None
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            callback_list.on_epoch_begin(epoch)
            self.optimizer.prepare_steps(steps or self.optimizer.steps_per_upload)  # one upload per epoch
            loss_sum, seen = backend.xp.zeros((), dtype=np.float64), 0
            for step, (xb, yb, wb) in enumerate(self._epoch_batches(train, source_class_weight, epoch, shuffle)):
                callback_list.on_train_batch_begin(step)
                loss_sum = loss_sum + self._train_step(xb, yb, wb) * xb.shape[0]
                seen += xb.shape[0]
                callback_list.on_train_batch_end(step, self._logs(loss_sum, seen))
                if self.stop_training:
                    break
            if seen == 0:
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
            if self.stop_training:
                break
        callback_list.on_train_end(training_logs)
        self._clear_activity_losses()
        return history

    def epoch_order(self, n, epoch):
        """The shuffled order of epoch `epoch`: a pure function of (model seed, epoch)."""
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _training_source(self, x, y, sample_weight, class_weight, batch_size, steps_per_epoch):
        """fit's batches: ArrayBatches of checked arrays, or SourceBatches of a PyDataset or generator."""
        if steps_per_epoch is not None:
            steps_per_epoch = _check_count("steps_per_epoch", steps_per_epoch, "fit")
        if is_batch_source(x):
            if y is not None:
                raise ValueError("fit: `y` must be None when `x` is a PyDataset or a generator (it yields "
                                 "(x, y) batches).")
            return SourceBatches(x, steps_per_epoch), class_weight
        x, y = self._check_xy(x, y)
        weights = (self._class_weights(class_weight, y) if class_weight is not None
                   else self._check_sample_weight(sample_weight, len(x)))
        return ArrayBatches(x, y, weights, batch_size, steps_per_epoch), None

    def _epoch_batches(self, source, class_weight=None, epoch=None, shuffle=False):
        """One epoch of device batches from an ArrayBatches (shuffled by epoch_order when
        `shuffle`) or a SourceBatches."""
        if isinstance(source, ArrayBatches):
            order = self.epoch_order(len(source.x), epoch) if shuffle else None
            return source.epoch(get_backend(), order)
        order = (self.epoch_order(len(source.source), epoch) if shuffle and source.is_dataset else None)
        return self._source_batches(source, class_weight, "x")(order)  # Keras shuffles a PyDataset's batches

    def _source_batches(self, source, class_weight, where):
        """Checked, converted (x, y, w) batches of a PyDataset or generator."""
        backend = get_backend()

        def batches(order):
            for xb, yb, wb in source.epoch(order):
                xb, yb = self._check_xy(xb, yb, f"{where} batch x", f"{where} batch y")
                wb = (self._class_weights(class_weight, yb) if class_weight is not None
                      else self._check_sample_weight(wb, len(xb)))
                yield (backend.asarray(xb), backend.asarray(yb), None if wb is None else backend.asarray(wb))
        return batches

    def _evaluation_source(self, data, batch_size, steps, where):
        """Batches for evaluation: ArrayBatches of (x, y[, w]), or SourceBatches of a PyDataset/generator."""
        if steps is not None:
            steps = _check_count("steps", steps, where)
        if is_batch_source(data):
            return SourceBatches(data, steps, where)
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise invalid_value(where, "a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)",
                                type(data).__name__, "fit")
        x, y = self._check_xy(data[0], data[1], f"{where}[0]", f"{where}[1]")
        weights = self._check_sample_weight(data[2] if len(data) == 3 else None, len(x), f"{where}[2]")
        return ArrayBatches(x, y, weights, batch_size, steps)

    def _trainable_runs_now(self):
        """Arena runs of the parameters of layers that are trainable at this moment."""
        ids = {id(p) for layer in self._leaves() if layer.trainable for p in layer.weights}
        return self.arena.runs(lambda p: id(p) in ids)

    def _clear_activity_losses(self):
        for layer in self._leaves():
            layer.clear_activity_loss()

    def _reset_metrics(self):
        for metric in self.metrics or []:  # None until the first batch is seen
            metric.reset()

    def _logs(self, loss_sum, seen):
        """Logs of the batches so far, read from the device only when a callback looks."""
        def read():
            logs = {"loss": float(get_backend().to_numpy(loss_sum)) / seen}
            logs.update({m.name: _host_value(m.result()) for m in self.metrics})
            return dict(sorted(logs.items()))  # Keras sorts the log keys
        return DeviceLogs(["loss", *(m.name for m in self.metrics)], read)

    def _run_evaluation(self, source, callback_list):
        """Loss (penalties included) and metrics in inference mode over `source`, with the
        test hooks, in Keras's order; returns the logs read on the host."""
        backend = get_backend()
        self._reset_metrics()
        callback_list.on_test_begin()
        loss_sum, seen = backend.xp.zeros((), dtype=np.float64), 0
        for step, (xb, yb, wb) in enumerate(self._epoch_batches(source)):
            callback_list.on_test_batch_begin(step)
            loss, _, output = self._loss_and_gradient(xb, yb, training=False, sample_weight=wb)
            loss_sum = loss_sum + (loss + self.regularization_loss()) * xb.shape[0]
            seen += xb.shape[0]
            self._update_metrics(yb, output, wb)
            callback_list.on_test_batch_end(step, self._logs(loss_sum, seen))
        logs = dict(self._logs(loss_sum, seen).read())
        callback_list.on_test_end(logs)
        self._clear_activity_losses()
        return logs

    def _results(self, logs, return_dict):
        """Keras's return shape: a dict, the loss alone, or [loss, metrics in compile order]."""
        if return_dict:
            return logs
        values = [logs["loss"], *(logs[m.name] for m in self.metrics)]
        return values[0] if len(values) == 1 else values

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (penalties included) and metrics in inference mode: the loss alone, or
        [loss, metric...] when metrics were compiled, or a dict with return_dict=True."""
        batch_size = _check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        data = x if is_batch_source(x) else (x, y, sample_weight)
        source = self._evaluation_source(data, batch_size, steps, "x")
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                     epochs=1, steps=source.steps)
        return self._results(self._run_evaluation(source, callback_list), return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs in inference mode, as a host NumPy array."""
        batch_size = _check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        backend = get_backend()
        if is_batch_source(x):
            source = SourceBatches(x, steps, "x")
            inputs = (self._check_x(batch[0], "x batch") for batch in source.epoch())
            total = source.steps
        else:
            x = self._check_x(x, "x")
            total = -(-len(x) // batch_size) if steps is None else min(-(-len(x) // batch_size), int(steps))
            inputs = (x[i * batch_size:(i + 1) * batch_size] for i in range(total))
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                     epochs=1, steps=total)
        callback_list.on_predict_begin()
        outputs = []
        for step, xb in enumerate(inputs):
            self._ensure_built(xb.shape)
            callback_list.on_predict_batch_begin(step)
            output = self.forward(backend.asarray(xb), training=False)
            outputs.append(backend.to_numpy(output))
            callback_list.on_predict_batch_end(step, {"outputs": outputs[-1]})
        callback_list.on_predict_end()
        self._clear_activity_losses()
        return np.concatenate(outputs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch: its loss (penalties included, at the weights before
        the step), or [loss, metrics...] when metrics are compiled, or a dict."""
        x, y = self._check_xy(x, y)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("train_on_batch: pass `class_weight` or `sample_weight`, not both.")
        weights = (self._class_weights(class_weight, y) if class_weight is not None
                   else self._check_sample_weight(sample_weight, len(x)))
        self._trainable_runs = self._trainable_runs_now()
        self._reset_metrics()
        backend = get_backend()
        loss = self._train_step(backend.asarray(x), backend.asarray(y),
                                None if weights is None else backend.asarray(weights))
        return self._results(dict(self._logs(loss * len(x), len(x)).read()), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics of one batch in inference mode."""
        return self.evaluate(x, y, batch_size=len(x), verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)

    def predict_on_batch(self, x):
        """Outputs of one batch in inference mode, as a NumPy array."""
        return self.predict(x, batch_size=len(x), verbose=0)

    def compute_gradients(self, x, y, sample_weight=None, training=True):
        """(loss, grads): the loss with penalties and d loss / d w for each array of
        `trainable_weights`, in that order, with nothing applied (a custom training loop's
        first half; `optimizer.apply_gradients(zip(grads, model.trainable_weights))` is the second)."""
        x, y = self._check_xy(x, y)
        weights = self._check_sample_weight(sample_weight, len(x))
        backend = get_backend()
        self.arena.grads[...] = 0
        loss, d_output, _ = self._loss_and_gradient(backend.asarray(x), backend.asarray(y), training=training,
                                                    sample_weight=None if weights is None else backend.asarray(weights))
        loss = loss + self.regularization_loss()
        self.backward(d_output)
        return float(backend.to_numpy(loss)), [p.grad.copy() for p in self.trainable_weights]

    # -- weights and description ---------------------------------------------
    @property
    def weights(self):
        return [p for layer in self.layers for p in layer.weights]

    @property
    def trainable_weights(self):
        return [p for layer in self.layers for p in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [p for layer in self.layers for p in layer.non_trainable_weights]

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    @property
    def losses(self):
        """Keras's `model.losses`: every layer's penalties (activity penalties of the last
        eager call `model(x)`, then one per regularized weight), in layer order."""
        return [loss for layer in self._leaves() for loss in layer.losses]

    def get_weights(self):
        """Host copies of every weight, in Keras order (Dense: kernel, bias; BatchNormalization:
        gamma, beta, moving_mean, moving_variance)."""
        backend = get_backend()
        return [backend.to_numpy(p.value).copy() for p in self.weights]

    def set_weights(self, weights):
        """Copy `weights` (as returned by get_weights) into the model; checks all shapes first."""
        assign_weights(self.weights, weights, f"Model '{self.name}'")

    def save(self, filepath, overwrite=True, zipped=None):
        """Save the model: a `.keras` path writes a Keras 3 archive; any other path writes
        gpudl's own `.npz` (configuration, weights and exact-resume state; see gpudl.saving)."""
        from gpudl.saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights alone to `filepath`, which must end in ".weights.h5" (Keras's rule);
        see gpudl.saving.save_weights for the format."""
        from gpudl.saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Read weights written by save_weights; all shapes are checked before anything changes."""
        from gpudl.saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def export(self, filepath, format="onnx"):
        """Export an inference graph; format="onnx" (see gpudl.onnx_export)."""
        if format != "onnx":
            raise invalid_value("format", "'onnx'", format, f"export of '{self.name}'")
        from gpudl.onnx_export import export_onnx

        export_onnx(self, filepath)

    def get_config(self):
        """Keras's Sequential config: name, trainable, dtype, the layers in Keras's serialized form
        (an InputLayer first when the model was given its input shape) and build_input_shape.
        Rebuilding it with from_config gives the same architecture."""
        layers = [_serialize_layer(layer) for layer in self.layers]
        if self._input_layer is not None:
            layers.insert(0, _serialize_layer(self._input_layer))
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype, "layers": layers,
                "build_input_shape": [None, *self._feature_shape] if self._feature_shape else None}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild from get_config (or from a Keras Sequential config of gpudl's layers); only
        gpudl's layer classes and `custom_objects` can be named, and nothing is imported."""
        known = {**LAYER_CLASSES, "Sequential": Sequential, **(custom_objects or {})}
        layers = []
        for entry in config["layers"]:
            name = entry["class_name"]
            if name not in known:
                raise ValueError(f"Unknown layer class {name!r}: pass it in custom_objects. "
                                 f"Known: {', '.join(sorted(known))}.")
            layer_class = known[name]
            if layer_class is Sequential:
                layers.append(Sequential.from_config(entry["config"], custom_objects))
            else:
                layers.append(layer_class.from_config(entry["config"]))
        head = []
        shape = config.get("build_input_shape")
        if config.get("input_shape"):  # gpudl's files before Keras's form: the shape without the batch axis
            shape = [None, *config["input_shape"]]
        if shape and not any(type(layer).__name__ in ("InputLayer", "Input") for layer in layers[:1]):
            head = [Input(tuple(shape[1:]))]
        return cls(head + layers, name=config["name"], dtype=config.get("dtype"), seed=config.get("seed"),
                   trainable=config.get("trainable", True))

    def to_json(self, **kwargs):
        """The model as Keras's serialize_keras_object gives it (module, class_name, config,
        registered_name, build_config, compile_config), as JSON; gpudl.models.model_from_json
        reads it back (architecture only, as Keras)."""
        from gpudl.saving import serialize_keras_object

        spec = {"module": "keras", "class_name": "Sequential", "config": self.get_config(),
                "registered_name": "Sequential",
                "build_config": {"input_shape": [None, *self._feature_shape]} if self.built else None,
                "compile_config": None}
        if self.compiled:
            spec["compile_config"] = {
                "optimizer": serialize_keras_object(self.optimizer),
                "loss": self.loss if isinstance(self.loss, str) else serialize_keras_object(self.compiled_loss),
                "loss_weights": None,
                "metrics": [m if isinstance(m, str) else serialize_keras_object(m) for m in self._metric_names],
                "weighted_metrics": [m if isinstance(m, str) else serialize_keras_object(m)
                                     for m in self._weighted_metric_names],
                "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
        return json.dumps(spec, **kwargs)

    def clone(self, dtype=None, custom_objects=None):
        """A copy with the same configuration and weights, optionally in another dtype."""
        config = self.get_config()
        config["dtype"] = dtype or self.dtype
        _clear_layer_dtypes(config)
        own_classes = {type(layer).__name__: type(layer) for layer in self._leaves()}  # live classes, not a file
        twin = Sequential.from_config({**config, "seed": self.seed}, {**own_classes, **(custom_objects or {})})
        if self.built:
            twin.build(self._feature_shape)
            twin.set_weights(self.get_weights())
        if self.compiled:
            optimizer = self.optimizer
            twin.compile(optimizer=type(optimizer)(**{**optimizer.get_config(), "learning_rate": optimizer._learning_rate}),
                         loss=(self.loss if isinstance(self.loss, str)
                               else losses_module.deserialize(losses_module.serialize(self.compiled_loss))),
                         metrics=list(self._metric_names), weighted_metrics=list(self._weighted_metric_names))
        return twin

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print a table of layers, output shapes and parameter counts, then the totals with
        their sizes in bytes, as Keras (`Total params: 18,122 (70.79 KB)`)."""
        print_fn = print_fn or print
        if not self.built:
            print_fn(f'Model: "{self.name}" (not built yet: call build, fit or predict)')
            return
        rows, shape = [], self._feature_shape
        for layer in self.layers:
            shape = layer.output_feature_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", f"(None, {', '.join(map(str, shape))})",
                         f"{layer.count_params():,}"))
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in rows + [header]) + 2 for i in range(3)]
        line = "─" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(w) for h, w in zip(header, widths)))
        print_fn(line)
        for row in rows:
            print_fn("".join(c.ljust(w) for c, w in zip(row, widths)))
        print_fn(line)
        itemsize = np.dtype(self.dtype).itemsize
        trainable = sum(int(np.prod(p.shape)) for p in self.trainable_weights)
        weights = self.count_params()
        optimizer = self._optimizer_param_count()  # Keras counts them in the total once built
        print_fn(f" Total params: {weights + optimizer:,} ({readable_memory_size((weights + optimizer) * itemsize)})")
        print_fn(f" Trainable params: {trainable:,} ({readable_memory_size(trainable * itemsize)})")
        print_fn(f" Non-trainable params: {weights - trainable:,} ({readable_memory_size((weights - trainable) * itemsize)})")
        if optimizer:
            print_fn(f" Optimizer params: {optimizer:,} ({readable_memory_size(optimizer * itemsize)})")

    def _optimizer_param_count(self):
        """Keras's optimizer variables once built: the step counter, the learning rate (unless a
        schedule drives it) and the slots; 0 before the first step (Keras builds it then)."""
        if not (self.compiled and self.built and self.optimizer.slots and int(self.optimizer.iterations) > 0):
            return 0
        counter_and_slots = sum(int(np.prod(v.shape)) for v in self.optimizer.variables)
        return counter_and_slots + (0 if callable(self.optimizer._learning_rate) else 1)

    # -- as a layer of another Sequential -------------------------------------
    def build_for(self, input_shape, dtype):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.build_for(shape, dtype)
        self._feature_shape, self._output_feature_shape = tuple(input_shape), shape
        return shape

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape)[0],) + self.output_feature_shape(tuple(input_shape)[1:])

    def output_feature_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_feature_shape(input_shape)
        return tuple(input_shape)

    def apply_constraints(self):
        for layer in self._leaves():
            layer.apply_constraints()

    def add_regularization_gradients(self):
        for layer in self._leaves():
            layer.add_regularization_gradients()


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


def readable_memory_size(size):
    """Bytes in Keras's summary units: 70.79 KB (powers of 1024, two decimals)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _serialize_layer(layer):
    """Keras's serialized form of a layer: module, class_name, config, registered_name."""
    if isinstance(layer, Sequential):
        return {"module": "keras", "class_name": "Sequential", "config": layer.get_config(),
                "registered_name": "Sequential"}
    return {"module": "keras.layers", "class_name": type(layer).__name__, "config": layer.get_config(),
            "registered_name": getattr(type(layer), "_registered_name", None)}


def _clear_layer_dtypes(config):
    for entry in config["layers"]:
        entry["config"] = {**entry["config"], "dtype": None}
        if entry["class_name"] == "Sequential":
            _clear_layer_dtypes(entry["config"])


def _check_batch_size(batch_size):
    """None -> 32 (Keras's default); otherwise a positive integer."""
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise invalid_value("batch_size", "a positive integer", batch_size)
    return int(batch_size)


def _check_count(argument, value, where):
    """A non-negative integer (NumPy integers and integral floats too, as Keras), as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or value != int(value) or value < 0:
        raise invalid_value(argument, "a non-negative integer", value, where)
    return int(value)


def _check_validation_freq(validation_freq):
    """validation_freq -> function(epochs) giving the 1-based epochs that validate."""
    if isinstance(validation_freq, (list, tuple, set)):
        chosen = {int(e) for e in validation_freq}
        return lambda epochs: chosen
    freq = _check_count("validation_freq", validation_freq, "fit")
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
