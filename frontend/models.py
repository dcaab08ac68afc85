"""Sequential: a stack of layers with Keras's compile / fit / evaluate / predict."""

import math
import sys

import numpy as np

from gpudl import random as gpudl_random
from gpudl.arena import ParameterArena
from gpudl.backend import floatx, get_backend
from gpudl.errors import check_finite_array, invalid_value
from gpudl.frontend import losses as losses_module
from gpudl.frontend import metrics as metrics_module
from gpudl.frontend import optimizers as optimizers_module
from gpudl.frontend.callbacks import CallbackList, History, ProgbarLogger
from gpudl.frontend.layers import LAYER_CLASSES
from gpudl.frontend.layers.base import Layer, unique_name
from gpudl.frontend.layers.dropout import Dropout
from gpudl.frontend.layers.input import Input


class Sequential:
    """A linear stack of layers.

    Args:
        layers: list of layers, optionally starting with `Input(shape)`.
        name: model name.
        dtype: "float32" (default: gpudl.floatx()) or "float64".
        seed: the model's seed (dropout masks, shuffling); default drawn from
            gpudl's generator, so `gpudl.utils.set_random_seed` fixes it.
    """

    def __init__(self, layers=None, name=None, dtype=None, seed=None):
        self.name = name or unique_name("sequential")
        self.dtype = np.dtype(dtype or floatx()).name
        if self.dtype not in ("float32", "float64"):
            raise invalid_value("dtype", "'float32' or 'float64'", dtype, f"Sequential '{self.name}'")
        self.seed = gpudl_random.new_seed() if seed is None else int(seed)
        self.layers = []
        self.input_shape = None
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.epochs_done = 0  # completed epochs, saved with the model for fit(initial_epoch=...)
        for layer in layers or []:
            self.add(layer)
        if self.input_shape is not None and self.layers:
            self.build()

    # -- structure ----------------------------------------------------------
    def add(self, layer):
        if isinstance(layer, Input):
            if self.layers or self.input_shape is not None:
                raise ValueError("Input must be the first element of a Sequential model.")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}' can only add Layer instances; received {layer!r}.")
        self.layers.append(layer)
        self.built = False  # the arena is laid out again, keeping built layers' values

    def build(self, input_shape=None):
        """Build every layer for inputs of `input_shape` (batch axis excluded) and lay
        out the trainable parameters in one arena."""
        input_shape = tuple(input_shape or self.input_shape or ())
        if not input_shape:
            raise ValueError(f"Model '{self.name}' cannot be built without an input shape: start it "
                             f"with gpudl.Input(shape=...) or call fit/predict on data.")
        if not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers.")
        self.input_shape = input_shape
        shape = input_shape
        for index, layer in enumerate(self.layers):
            shape = layer.build_for(shape, self.dtype)
            if isinstance(layer, Dropout):
                layer.base_seed = layer.seed if layer.seed is not None else self.seed
                layer.index = index
        self.output_shape = shape
        # backward stops at the first layer with parameters: nothing below it learns
        with_params = [i for i, layer in enumerate(self.layers) if any(p.trainable for p in layer.weights)]
        with_params = with_params or [len(self.layers)]
        self._backward_start = with_params[0]
        for index, layer in enumerate(self.layers):
            layer.input_gradient_needed = index > self._backward_start
        trainable = [p for layer in self.layers for p in layer.weights if p.trainable]
        self.arena = ParameterArena(trainable, self.dtype)
        for layer in self.layers:  # state (moving statistics) moves to the device too
            for p in layer.weights:
                if not p.trainable:
                    p.value = get_backend().asarray(p.value)
        self.built = True
        if self.compiled:
            self.optimizer.build(self.arena)

    def _ensure_built(self, x_shape):
        if not self.built:
            self.build(self.input_shape or x_shape[1:])

    # -- compile ------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Set the optimizer, the loss and the metrics (e.g. ["accuracy"])."""
        if loss is None:
            raise invalid_value("loss", "a loss name or object", loss, f"compile of '{self.name}'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self._metric_names = list(metrics or [])
        self.metrics = None  # resolved once the output width is known
        self.compiled = True
        if self.built:
            self.optimizer.build(self.arena)

    def _prepare_to_run(self, x_shape):
        if not self.compiled:
            raise RuntimeError(f"Model '{self.name}' must be compiled before fit/evaluate: "
                               f"call model.compile(optimizer, loss, metrics).")
        self._ensure_built(x_shape)
        if not self.optimizer.slots and self.optimizer.slot_names:
            self.optimizer.build(self.arena)
        if self.metrics is None:
            self.metrics = [metrics_module.get(m, self.loss, self.output_shape[-1]) for m in self._metric_names]
        last = self.layers[-1]
        self._fused = (not self.loss.from_logits and self.loss.fused_activation is not None
                       and getattr(last, "activation", None) == self.loss.fused_activation)

    # -- forward / backward ---------------------------------------------------
    def _forward(self, x, training, logits=False):
        for layer in self.layers[:-1]:
            x = layer.forward(x, training=training)
        last = self.layers[-1]
        return last.forward(x, training=training, logits=True) if logits else last.forward(x, training=training)

    def _backward(self, dy):
        for layer in reversed(self.layers[self._backward_start:]):
            dy = layer.backward(dy)
        for layer in self.layers:
            layer.add_regularization_gradients()

    def regularization_loss(self):
        """The sum of the layers' weight penalties (part of the reported loss)."""
        return sum(layer.regularization_loss() for layer in self.layers)

    def _loss_and_gradient(self, x, y, training):
        """Forward, then (loss without penalties, dL/d output, output); the output is
        the logits when the output activation is fused into the loss."""
        output = self._forward(x, training=training, logits=self._fused)
        if self._fused:
            loss, d_output = self.loss.logits_value_and_gradient(y, output)
        else:
            loss, d_output = self.loss.value_and_gradient(y, output)
        return loss, d_output, output

    def _train_step(self, x, y):
        loss, d_output, output = self._loss_and_gradient(x, y, training=True)
        loss += self.regularization_loss()  # of the weights this step's gradient is taken at
        self._backward(d_output)
        self.optimizer.apply(self.arena, self._trainable_runs)
        for metric in self.metrics:
            metric.update(y, output, logits=self._fused)
        return loss

    def __call__(self, x, training=False):
        """Forward pass; `training=True` keeps dropout on (Monte Carlo dropout) and
        uses batch statistics in batch-norm."""
        x = self._check_x(x, "x")
        self._ensure_built(x.shape)
        return self._forward(get_backend().asarray(x), training=training)

    # -- checking input -------------------------------------------------------
    def _check_x(self, x, where):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"`{where}` must be a numeric array; received dtype {x.dtype}.")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"`{where}` must be a non-empty array of shape (N, features...); "
                             f"received shape {x.shape}.")
        expected = self.input_shape
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            first = self.layers[0].name if self.layers else self.name
            raise ValueError(f"Layer '{first}' of model '{self.name}' expected `{where}` of shape "
                             f"(None, {', '.join(map(str, expected))}); received shape {x.shape}.")
        check_finite_array(where, x)
        return x.astype(self.dtype, copy=False)

    def _check_xy(self, x, y, where_x="x", where_y="y"):
        x = self._check_x(x, where_x)
        y_array = np.asarray(y)
        if y_array.shape[:1] != x.shape[:1]:
            raise ValueError(f"`{where_x}` and `{where_y}` must have the same number of samples; "
                             f"received {x.shape[0]} and {y_array.shape[0] if y_array.ndim else 'a scalar'}.")
        check_finite_array(where_y, y_array)
        self._prepare_to_run(x.shape)
        return x, self.loss.prepare_targets(y_array, self.output_shape, where_y)

    # -- fit / evaluate / predict --------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0):
        """Train with mini-batches (shuffled, partitioned, last partial batch kept).

        Returns a History whose `.history` maps loss, metrics and val_* to per-epoch lists;
        the epoch loss is the batch-size-weighted mean of the batch losses, penalties included.
        """
        batch_size = _check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise invalid_value("epochs", "a non-negative integer", epochs, "fit")
        if not 0.0 <= float(validation_split) < 1.0:
            raise invalid_value("validation_split", "a float in [0, 1)", validation_split, "fit")
        x, y = self._check_xy(x, y)
        if validation_data is None and validation_split > 0:
            split_at = int(math.floor(x.shape[0] * (1.0 - validation_split)))
            if split_at == 0 or split_at == x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {x.shape[0]} samples.")
            validation_data = (x[split_at:], y[split_at:])
            x, y = x[:split_at], y[:split_at]
        elif validation_data is not None:
            if len(validation_data) != 2:
                raise invalid_value("validation_data", "a tuple (x_val, y_val)", type(validation_data), "fit")
            validation_data = self._check_xy(*validation_data, "validation_data[0]", "validation_data[1]")

        backend = get_backend()
        x_device, y_device = backend.asarray(x), backend.asarray(y)
        n = x.shape[0]
        steps = -(-n // batch_size)
        self._trainable_runs = self._trainable_runs_now()
        self._fit_epochs, self._fit_steps = epochs, steps
        history = History()
        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 2
        callback_list = CallbackList(
            list(callbacks or []) + [history] + ([ProgbarLogger(verbose)] if verbose else []), self)
        self.stop_training = False
        callback_list.call("on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            callback_list.call("on_epoch_begin", epoch, {})
            self.optimizer.prepare_steps(steps)  # the epoch's step scalars: one upload
            order = self.epoch_order(n, epoch) if shuffle else np.arange(n)
            for metric in self.metrics:
                metric.reset()
            loss_sum = 0.0
            for step in range(steps):
                callback_list.call("on_train_batch_begin", step, {})
                index = order[step * batch_size:(step + 1) * batch_size]
                batch_loss = self._train_step(x_device[index], y_device[index])
                loss_sum += batch_loss * len(index)
                seen = min((step + 1) * batch_size, n)
                logs = {"loss": loss_sum / seen, **{m.name: m.result() for m in self.metrics}}
                callback_list.call("on_train_batch_end", step, logs)
                if self.stop_training:
                    break
            logs = {"loss": loss_sum / seen, **{m.name: m.result() for m in self.metrics}}
            if validation_data is not None:
                val = self._evaluate_arrays(*validation_data, batch_size)
                logs.update({"val_" + key: value for key, value in val.items()})
            self.epochs_done = epoch + 1
            callback_list.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        callback_list.call("on_train_end", {})
        return history

    def epoch_order(self, n, epoch):
        """The shuffled order of epoch `epoch`: a pure function of (model seed, epoch)."""
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _trainable_runs_now(self):
        """Arena runs of the parameters of layers that are trainable at this moment."""
        ids = {id(p) for layer in self.layers if layer.trainable for p in layer.weights}
        return self.arena.runs(lambda p: id(p) in ids)

    def train_on_batch(self, x, y):
        """One optimizer step on one batch; returns its loss (penalties included)."""
        x, y = self._check_xy(x, y)
        self._trainable_runs = self._trainable_runs_now()
        for metric in self.metrics:
            metric.reset()
        backend = get_backend()
        return self._train_step(backend.asarray(x), backend.asarray(y))

    def evaluate(self, x, y, batch_size=32, verbose=0, return_dict=False):
        """Loss (penalties included) and metrics in inference mode: the loss alone, or
        [loss, metric...] when metrics were compiled, or a dict with return_dict=True."""
        batch_size = _check_batch_size(batch_size)
        x, y = self._check_xy(x, y)
        results = self._evaluate_arrays(x, y, batch_size)
        if verbose:
            print(" - ".join(f"{key}: {value:.4f}" for key, value in results.items()))
        if return_dict:
            return results
        values = list(results.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_arrays(self, x, y, batch_size):
        backend = get_backend()
        for metric in self.metrics:
            metric.reset()
        loss_sum = 0.0
        for start in range(0, x.shape[0], batch_size):
            xb = backend.asarray(x[start:start + batch_size])
            yb = backend.asarray(y[start:start + batch_size])
            output = self._forward(xb, training=False, logits=self._fused)
            value_and_gradient = (self.loss.logits_value_and_gradient if self._fused
                                  else self.loss.value_and_gradient)
            loss_sum += value_and_gradient(yb, output)[0] * xb.shape[0]
            for metric in self.metrics:
                metric.update(yb, output, logits=self._fused)
        results = {"loss": loss_sum / x.shape[0] + self.regularization_loss()}
        results.update({m.name: m.result() for m in self.metrics})
        return results

    def predict(self, x, batch_size=32, verbose=0):
        """Outputs in inference mode, as a host NumPy array."""
        batch_size = _check_batch_size(batch_size)
        x = self._check_x(x, "x")
        self._ensure_built(x.shape)
        backend = get_backend()
        outputs = [backend.to_numpy(self._forward(backend.asarray(x[start:start + batch_size]), False))
                   for start in range(0, x.shape[0], batch_size)]
        return np.concatenate(outputs)

    # -- weights and description ---------------------------------------------
    @property
    def weights(self):
        return [p for layer in self.layers for p in layer.weights]

    def get_weights(self):
        """Host copies of every weight, in Keras order (Dense: kernel, bias; BatchNormalization:
        gamma, beta, moving_mean, moving_variance)."""
        backend = get_backend()
        return [backend.to_numpy(p.value).copy() for p in self.weights]

    def set_weights(self, weights):
        """Copy `weights` (as returned by get_weights) into the model; checks all shapes first."""
        params = self.weights
        if len(weights) != len(params):
            raise ValueError(f"set_weights of model '{self.name}' expects {len(params)} arrays; "
                             f"received {len(weights)}.")
        arrays = [np.asarray(w) for w in weights]
        for p, w in zip(params, arrays):
            if w.shape != p.shape:
                raise ValueError(f"Weight '{p.name}' has shape {p.shape}; received an array of shape {w.shape}.")
        backend = get_backend()
        for p, w in zip(params, arrays):
            p.value[...] = backend.asarray(w, dtype=p.value.dtype)

    def save(self, path):
        """Save configuration, weights and training state to one file (see gpudl.saving)."""
        from gpudl.saving import save_model

        save_model(self, path)

    def get_config(self):
        """A JSON-able description: rebuilding it with from_config gives the same architecture."""
        return {"name": self.name, "dtype": self.dtype, "seed": self.seed,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild from get_config; only gpudl's layer classes and `custom_objects` can be named."""
        known = {**LAYER_CLASSES, **(custom_objects or {})}
        layers = []
        for entry in config["layers"]:
            if entry["class_name"] not in known:
                raise ValueError(f"Unknown layer class {entry['class_name']!r}: pass it in custom_objects. "
                                 f"Known: {', '.join(sorted(known))}.")
            layers.append(known[entry["class_name"]].from_config(entry["config"]))
        head = [Input(tuple(config["input_shape"]))] if config["input_shape"] else []
        return cls(head + layers, name=config["name"], dtype=config["dtype"], seed=config["seed"])

    def clone(self, dtype=None, custom_objects=None):
        """A copy with the same configuration and weights, optionally in another dtype."""
        config = self.get_config()
        config["dtype"] = dtype or self.dtype
        for entry in config["layers"]:
            entry["config"] = {**entry["config"], "dtype": None}
        own_classes = {type(layer).__name__: type(layer) for layer in self.layers}  # live classes, not a file
        twin = Sequential.from_config(config, {**own_classes, **(custom_objects or {})})
        if self.built:
            twin.build(self.input_shape)
            twin.set_weights(self.get_weights())
        if self.compiled:
            optimizer = self.optimizer
            twin.compile(optimizer=type(optimizer)(**{**optimizer.get_config(), "learning_rate": optimizer.learning_rate}),
                         loss=losses_module.deserialize(losses_module.serialize(self.loss)),
                         metrics=list(self._metric_names))
        return twin

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts."""
        if not self.built:
            print_fn(f'Model: "{self.name}" (not built yet: call build, fit or predict)')
            return
        rows, shape = [], self.input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", f"(None, {', '.join(map(str, shape))})",
                         f"{layer.count_params():,}"))
        widths = [max(len(r[i]) for r in rows + [("Layer (type)", "Output Shape", "Param #")]) + 2
                  for i in range(3)]
        line = "─" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(w) for h, w in zip(("Layer (type)", "Output Shape", "Param #"), widths)))
        print_fn(line)
        for row in rows:
            print_fn("".join(c.ljust(w) for c, w in zip(row, widths)))
        print_fn(line)
        trainable = sum(int(np.prod(p.shape)) for layer in self.layers for p in layer.trainable_weights)
        total = self.count_params()
        print_fn(f" Total params: {total:,}")
        print_fn(f" Trainable params: {trainable:,}")
        print_fn(f" Non-trainable params: {total - trainable:,}")


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise invalid_value("batch_size", "a positive integer", batch_size)
    return int(batch_size)
