"""Several inputs and outputs: how a functional model's data, losses and metrics follow its structure.

Data come as one array, a list (in the order of `model.inputs` / `model.outputs`) or a dict (by
input/output name); they are flattened to one array per input and per output before any check.
With several outputs (or `loss_weights`), compile gives each output its loss, weight and metrics, and
Keras 3's names for what is logged:

    loss                    sum_i weight_i * loss_i(y_i, output_i, sample_weight_i) + penalties
    <output>_loss           loss_i, unweighted (only with more than one loss)
    <output>_<metric>       each output's metrics ("<output>_weighted_<metric>" on a clash)

A single sample-weight array weighs every output; a list or dict weighs each output. Keras refuses
class_weight for several outputs, and so does gpudl.
"""

import numpy as np

from gpudl.frontend import losses as losses_module
from gpudl.frontend import metrics as metrics_module
from gpudl.frontend.layers.node import KerasTensor
from gpudl.frontend.models import data_adapter


def flatten_tensors(tensors, argument):
    """One KerasTensor, a list/tuple or a dict of them as a flat list (a dict by sorted key, Keras's
    tree.flatten order)."""
    flat = [tensors[key] for key in sorted(tensors)] if isinstance(tensors, dict) else (
        list(tensors) if isinstance(tensors, (list, tuple)) else [tensors])
    if not flat:
        raise ValueError(f"`{argument}` of keras.Model is empty: give at least one symbolic tensor.")
    for tensor in flat:
        if not isinstance(tensor, KerasTensor):
            raise ValueError(f"All `{argument}` values must be KerasTensors (keras.Input and layers called on "
                             f"it). Received: {argument}={tensors!r} including invalid value {tensor!r} of type "
                             f"{type(tensor).__name__}.")
    return flat


def _is_array_list(value):
    """A list/tuple of arrays (not a nested Python list of numbers, which is one array)."""
    return isinstance(value, (list, tuple)) and bool(value) and all(hasattr(v, "shape") for v in value)


def by_name(mapping, names, keys, unknown_key_message):
    """A dict keyed by input/output name (or by the key it was given with) as one entry per name,
    None where it has none; a key that names nothing raises ValueError(unknown_key_message(key))."""
    index = {**{name: i for i, name in enumerate(names)}, **{key: i for i, key in enumerate(keys)}}
    unknown = [key for key in mapping if key not in index]
    if unknown:
        raise ValueError(unknown_key_message(unknown[0]))
    flat = [None] * len(names)
    for key, value in mapping.items():
        flat[index[key]] = value
    return flat


def flatten_data(data, names, keys, argument, what, model_name):
    """`data` (an array, a list in `names` order, or a dict by name or key) as one entry per name.
    `names`: the inputs'/outputs' names; `keys`: the dict keys they were given with (or the names)."""
    count = len(names)
    if isinstance(data, dict):
        flat = by_name(data, names, keys, lambda key: f"Model '{model_name}': `{argument}` has the key {key!r}, "
                       f"which names no {what} of the model. Its {what}s: {list(keys)}.")
        missing = [keys[i] for i, value in enumerate(flat) if value is None]
        if missing and what == "input":
            raise ValueError(f"Model '{model_name}': `{argument}` has no array for the {what} {missing[0]!r}. Its "
                             f"{what}s: {list(keys)}.")
        return flat
    if count == 1:
        return [data[0] if _is_array_list(data) and len(data) == 1 else data]
    if data is None:
        return [None] * count
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"Model '{model_name}' has {count} {what}s {list(keys)}: pass `{argument}` as a list of "
                         f"{count} arrays or a dict by {what} name; received {type(data).__name__}.")
    if len(data) != count:
        raise ValueError(f"Model '{model_name}' has {count} {what}s {list(keys)}; `{argument}` is a list of "
                         f"{len(data)} arrays.")
    return list(data)


def per_output(spec, names, keys, argument, nested):
    """A compile argument (loss, loss_weights, metrics) as one entry per output: the same for every
    output (`nested=False`: one loss), a list in output order, or a dict by output name."""
    count = len(names)
    if spec is None or nested and isinstance(spec, (list, tuple, dict)) and not spec:  # Keras: none at all
        return [None] * count
    if isinstance(spec, dict):
        return by_name(spec, names, keys, lambda key: f"compile: `{argument}` has the key {key!r}, which names no "
                       f"output of the model. Its outputs: {list(keys)}.")
    if isinstance(spec, (list, tuple)):
        if len(spec) != count:
            raise ValueError(f"compile: `{argument}` is a list of {len(spec)}, but the model has {count} outputs "
                             f"{list(keys)}: give one entry per output (a list of lists for several metrics), or a "
                             f"dict by output name. Received: {argument}={spec!r}")
        return list(spec)
    if nested:
        raise ValueError(f"compile: `{argument}` must be a list with one entry per output or a dict by output name; "
                         f"received {spec!r}.")
    return [spec] * count


class OutputLoss:
    """The mean of one output's loss over the batches seen (Keras's `<output>_loss`), on the device."""

    def __init__(self, name):
        self.name = name
        self.reset()

    def record(self, value, rows):
        self.total, self.count = self.total + value * rows, self.count + rows

    def update(self, y, output, logits=False, sample_weight=None):
        """Fed by the loss itself (record), not by the metric update."""

    def reset(self):
        self.total, self.count = 0.0, 0

    def result(self):
        return self.total / max(self.count, 1)


class OutputMetric:
    """A metric of one output: it reads that output's targets, predictions and sample weights."""

    def __init__(self, metric, index, name):
        self.metric, self.index, self.name = metric, index, name

    def update(self, y, output, logits=False, sample_weight=None):
        flag = logits[self.index] if isinstance(logits, (list, tuple)) else logits
        weights = sample_weight[self.index] if isinstance(sample_weight, (list, tuple)) else sample_weight
        self.metric.update(y[self.index], output[self.index], logits=flag, sample_weight=weights)

    def reset(self):
        self.metric.reset()

    def result(self):
        return self.metric.result()


class OutputLosses:
    """compile's losses of a model with several outputs: total = sum_i weight_i * loss_i (see the module
    docstring); the gradient of each output is weight_i * d loss_i / d output_i."""

    from_logits = True  # the trainer's one-output fusing stays off; `fused` decides per output
    fused_activation = None

    def __init__(self, losses, weights, names):
        self.losses = [None if loss is None else losses_module.loss_object(loss) for loss in losses]
        if all(loss is None for loss in self.losses):
            raise ValueError("compile: every output's loss is None; give at least one output a loss.")
        self.weights = [None if w is None else float(w) for w in weights]
        self.names = names
        self.fused = [False] * len(self.losses)
        self.order = list(range(len(self.losses)))  # the order their `<output>_loss` logs are listed in
        several = sum(loss is not None for loss in self.losses) > 1
        self.trackers = [OutputLoss(f"{name}_loss") if several and loss is not None else None
                         for name, loss in zip(names, self.losses)]

    def value_and_gradient(self, y_true, y_pred, sample_weight=None):
        total, grads = 0.0, []
        for i, loss in enumerate(self.losses):
            if loss is None:
                grads.append(None)
                continue
            weights = sample_weight[i] if isinstance(sample_weight, (list, tuple)) else sample_weight
            if self.fused[i]:
                value, grad = loss.logits_value_and_gradient(y_true[i], y_pred[i], sample_weight=weights)
            else:
                value, grad = loss.value_and_gradient(y_true[i], y_pred[i], sample_weight=weights)
            if getattr(value, "ndim", 0):  # reduction="none": train on the sum, whose gradient this is
                value = value.sum()
            if self.trackers[i] is not None:
                self.trackers[i].record(value, y_pred[i].shape[0])
            if self.weights[i] is not None:
                value, grad = value * self.weights[i], grad * self.weights[i]
            total = total + value
            grads.append(grad)
        return total, grads

    def ordered_trackers(self):
        return [self.trackers[i] for i in self.order if self.trackers[i] is not None]

    logits_value_and_gradient = value_and_gradient  # logits or not is `fused`, output by output


def keras_metric_names(entries):
    """Keras 3's names of compiled metrics: (output name or None, metric name, weighted) -> the logged
    name, `<output>_<name>`, a clash of a weighted one with an earlier one -> `<output>_weighted_<name>`,
    and further clashes numbered (`_1`, `_2`)."""
    names, counters = [], {}
    for output, name, weighted in entries:
        full = f"{output}_{name}" if output else name
        if full in counters and weighted:
            full = f"{output}_weighted_{name}" if output else f"weighted_{name}"
        if full in counters:
            counters[full] += 1
            full = f"{full}_{counters[full] - 1}"
        else:
            counters[full] = 1
        names.append(full)
    return names


class StructuredTraining:
    """The Trainer's entry points for a model with several inputs or outputs (a Functional): data
    flattened per input and output, per-output losses and metrics, predictions as the outputs were
    given (a list or a dict). With one input and one output everything is the Trainer's own."""

    # -- names and keys ----------------------------------------------------------
    def _input_keys(self):
        struct = self._inputs_struct
        return sorted(struct) if isinstance(struct, dict) else [t.name for t in self._input_tensors]

    def _output_keys(self):
        struct = self._outputs_struct
        return sorted(struct) if isinstance(struct, dict) else list(self.output_names)

    def _packed_outputs(self, outputs):
        """Flat outputs as the model's outputs were given: one array, a list, or a dict."""
        if isinstance(self._outputs_struct, dict):
            return dict(zip(self._output_keys(), outputs if isinstance(outputs, list) else [outputs]))
        if isinstance(self._outputs_struct, (list, tuple)) and len(self._output_tensors) > 1:
            return list(outputs)
        return outputs

    def _flat_weights(self, sample_weight, argument="sample_weight"):
        """sample_weight as the Trainer takes it: one array (every output), or a list per output."""
        if sample_weight is None or hasattr(sample_weight, "shape") and len(self._output_tensors) > 1:
            return sample_weight
        if len(self._output_tensors) == 1 and not isinstance(sample_weight, dict):
            return sample_weight
        flat = flatten_data(sample_weight, self.output_names, self._output_keys(), argument, "output", self.name)
        return flat[0] if len(flat) == 1 else flat

    # -- compile -----------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                **kwargs):
        """Keras's compile: `loss` one for all outputs, a list or a dict by output name; `loss_weights` a
        list or dict; `metrics` / `weighted_metrics` a list of lists or a dict (one output: a list)."""
        names, keys = self.output_names, self._output_keys()
        single = len(names) == 1
        arguments = dict(loss=loss, loss_weights=loss_weights, metrics=metrics, weighted_metrics=weighted_metrics)

        def metric_specs(spec, argument):
            if single:  # all of them apply to the one output, as in Keras
                spec = per_output(spec, names, keys, argument, nested=True)[0] if isinstance(spec, dict) else spec
                return [[m for entry in _as_list(spec) for m in _as_list(entry)]]
            return [_as_list(m) for m in per_output(spec, names, keys, argument, nested=True)]

        specs = (metric_specs(metrics, "metrics"), metric_specs(weighted_metrics, "weighted_metrics"))
        losses = per_output(loss, names, keys, "loss", nested=False)
        if single and loss_weights is None:
            self._output_metric_specs, self._compile_arguments = None, arguments
            return super().compile(optimizer, losses[0], None, specs[0][0] or None, specs[1][0] or None, **kwargs)
        weights = per_output(loss_weights, names, keys, "loss_weights", nested=True)
        compiled = OutputLosses(losses, weights, names)  # checks the losses before anything changes
        if isinstance(loss, dict) and isinstance(self._outputs_struct, dict):  # Keras logs them in the dict's order
            lookup = {**dict(zip(names, range(len(names)))), **dict(zip(keys, range(len(keys))))}
            compiled.order = [lookup[key] for key in loss]
        super().compile(optimizer, next(l for l in compiled.losses if l is not None), None, None, None, **kwargs)
        self.loss, self.compiled_loss, self._output_metric_specs = loss, compiled, specs
        self._output_metrics_built, self._compile_arguments = False, arguments

    def _prepare_to_run(self, x_shape):
        super()._prepare_to_run(x_shape)
        if getattr(self, "_output_metric_specs", None) is None:
            return
        compiled, single = self.compiled_loss, len(self._output_tensors) == 1
        fusable = self.fusable_outputs()
        for i, (loss, layer) in enumerate(zip(compiled.losses, self.output_layers())):
            compiled.fused[i] = bool(loss is not None and fusable[i] and not loss.from_logits
                                     and loss.fused_activation is not None
                                     and getattr(layer, "activation", None) == loss.fused_activation)
        self._fused = list(compiled.fused) if not single else compiled.fused[0]
        if self._output_metrics_built:
            return
        self._output_metrics_built = True
        entries, metrics, weighted = [], [], []
        for flag, specs in ((False, self._output_metric_specs[0]), (True, self._output_metric_specs[1])):
            for i, spec in enumerate(specs):
                loss = compiled.losses[i] or losses_module.loss_object("mse")
                for identifier in spec:
                    metric = metrics_module.get(identifier, loss, self._output_tensors[i].shape[-1])
                    entries.append((None if single else self.output_names[i], metric.name, flag))
                    metrics.append((metric, i))
                    weighted.append(flag)
        names = keras_metric_names(entries)
        trackers = compiled.ordered_trackers()
        self.metrics = trackers + [OutputMetric(metric, i, name) for (metric, i), name in zip(metrics, names)]
        self._metric_weighted = [False] * len(trackers) + weighted

    @property
    def metrics_names(self):
        if getattr(self, "_output_metric_specs", None) is None or not self.compiled:
            return super().metrics_names
        return ["loss", *(m.name for m in self.metrics or [])]

    def _results(self, logs, return_dict):
        """Keras's evaluate list: the loss, each output's loss, then the other logs by sorted name."""
        if return_dict or getattr(self, "_output_metric_specs", None) is None:
            return super()._results(logs, return_dict)
        first = ["loss", *(t.name for t in self.compiled_loss.ordered_trackers())]
        values = [logs[k] for k in first] + [logs[k] for k in sorted(logs) if k not in first]
        return values[0] if len(values) == 1 else values

    # -- data ----------------------------------------------------------------------
    def _check_x(self, x, where):
        arrays = flatten_data(x, [t.name for t in self._input_tensors], self._input_keys(), where, "input", self.name)
        keys = self._input_keys()
        checked = []
        for i, (array, tensor) in enumerate(zip(arrays, self._input_tensors)):
            label = where if len(arrays) == 1 else f"{where}[{keys[i]!r}]"
            checked.append(data_adapter.check_x(array, tuple(tensor.shape[1:]), self.dtype, label,
                                                f"Input '{tensor.name}' of model '{self.name}'"))
        _same_rows(checked, [where if len(keys) == 1 else f"{where}[{k!r}]" for k in keys])
        return checked[0] if len(checked) == 1 else checked

    def _check_xy(self, x, y, where_x="x", where_y="y"):
        x = self._check_x(x, where_x)
        rows = data_adapter.rows(x)
        keys = self._output_keys()
        targets = flatten_data(y, self.output_names, keys, where_y, "output", self.name)
        self._prepare_to_run(data_adapter.first(x).shape)
        losses = getattr(self.compiled_loss, "losses", [self.compiled_loss])
        prepared = []
        for i, (target, tensor, loss) in enumerate(zip(targets, self._output_tensors, losses)):
            label = where_y if len(keys) == 1 else f"{where_y}[{keys[i]!r}]"
            if target is None and loss is None:
                prepared.append(None)
                continue
            target = data_adapter.check_y(target, rows, where_x, label)
            data_adapter.check_fits(target, self.dtype, label)
            if loss is not None:
                target = loss.prepare_targets(target, tuple(tensor.shape[1:]), label)
            prepared.append(np.ascontiguousarray(target))
        return x, prepared[0] if len(prepared) == 1 else prepared

    # -- entry points: flatten dict sample weights, pack predictions ----------------------
    def fit(self, x=None, y=None, *args, sample_weight=None, validation_data=None, **kwargs):
        if isinstance(validation_data, (list, tuple)) and len(validation_data) == 3:
            validation_data = (*validation_data[:2], self._flat_weights(validation_data[2], "validation_data[2]"))
        return super().fit(x, y, *args, sample_weight=self._flat_weights(sample_weight),
                           validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, **kwargs):
        return super().evaluate(x, y, batch_size, verbose, self._flat_weights(sample_weight), **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        return super().train_on_batch(x, y, self._flat_weights(sample_weight), class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return super().test_on_batch(x, y, self._flat_weights(sample_weight), return_dict)

    def compute_gradients(self, x, y, sample_weight=None, training=True):
        return super().compute_gradients(x, y, self._flat_weights(sample_weight), training)

    def predict(self, x, *args, **kwargs):
        """Outputs as the model's outputs were given: an array, a list, or a dict."""
        return self._packed_outputs(super().predict(x, *args, **kwargs))


def _as_list(metrics):
    if metrics is None:
        return []
    return list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]


def _same_rows(arrays, labels):
    """Every input (or output) array must have the same number of samples."""
    rows = [len(a) for a in arrays]
    if len(set(rows)) > 1:
        sizes = ", ".join(f"{label}: {n}" for label, n in zip(labels, rows))
        raise ValueError(f"Data cardinality is ambiguous: make sure all arrays contain the same number of samples. "
                         f"Sizes: {sizes}.")

