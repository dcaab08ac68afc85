"""Keras 3 `.keras` archives, both ways: `save_keras_archive(model, path)` writes one
that `keras.saving.load_model` reads, `load_keras_archive(path)` reads one that Keras
(or gpudl) wrote, for the classes in KERAS_CLASSES below.

The archive (Keras's keras/src/saving/saving_lib.py) is a zip of stored members:
    metadata.json     {"keras_version", "date_saved"}
    config.json       the model in Keras's serialization schema: every object is
                      {"module", "class_name", "config", "registered_name"}; the model adds
                      "build_config" ({"input_shape": [null, ...]}) and "compile_config"
                      (optimizer, loss, metrics, weighted_metrics)
    model.weights.h5  HDF5 groups holding datasets "0", "1", ... in Keras's variable order:
                      vars                        the model's own variables (none)
                      layers/<group>/vars         a layer's trainable then non-trainable
                                                  variables; <group> is the snake_case Keras
                                                  class name, "_1", "_2", ... for repeats; a
                                                  nested Sequential's layers go below its group
                      optimizer/vars              iterations, learning_rate (absent for a
                                                  schedule), then the slots of each trainable
                                                  variable (KerasClass.slots gives the order)

Loading runs no code from the file: JSON and HDF5 are data, nothing is unpickled or
imported, and a class is built only when its kind and Keras class name are in KERAS_CLASSES
(or in `custom_objects`, a user's explicit choice). Everything is checked before anything is
built or assigned; what gpudl cannot honour is listed by name in one error. Refused: lambda
layers and functions (Keras's CVE-2024-3660), modules or classes outside the table such as a
config naming `os.system` (CVE-2025-1550), truncated or corrupted zips, members that inflate
beyond MAX_EXPANSION times their stored size (zip bombs), HDF5 links, external or virtual
datasets, and variables whose count, shape or dtype differ from the model's.

Optimizers: the config maps option by option (gpudl's optimizers take Keras's arguments);
slots map one to one except where the conventions differ (shared/DESIGN.md):
    Adam/AdamW  Keras m, v are gpudl m, v (same moving averages). Keras adds epsilon to
                sqrt(v) before bias correction, gpudl to sqrt(v_hat): the number is copied,
                so gpudl's eps acts as Keras's eps / sqrt(1 - beta_2^t); steps agree while
                sqrt(v_hat) >> eps.
    RMSprop     Keras divides by sqrt(s + eps), gpudl by sqrt(s) + eps: eps is copied as a number.
    SGD         Keras's momentum m = mu m - lr g is -lr times gpudl's velocity v = mu v + g
                (exact at a constant rate; at a scheduled rate the current rate is used).
    Momentum    (the course's v = b v + (1 - b) g, w -= lr v) is written as Keras
                SGD(learning_rate=lr (1 - b), momentum=b) with m = -lr v: the same steps; it
                loads back as gpudl SGD.
    Nadam       Keras's extra u_product variable is computed from the step count.
Not carried by a .keras file (gpudl's .npz keeps them): the model seed, dropout call
counters and epochs done.
"""

import datetime
import inspect
import io
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from gpudl import registry
from gpudl.backend import get_backend
from gpudl.naming import snake_case

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
KERAS_LAYOUT_VERSION = "3.15.1"  # the Keras whose saving_lib this layout follows (tests load with it)
MAX_JSON_BYTES = 64 << 20  # config.json / metadata.json: far above any model gpudl can hold
MAX_EXPANSION = 100  # Keras stores members uncompressed; a member inflating more than this is a bomb
EXPANSION_FLOOR_BYTES = 1 << 20  # below this, any ratio is harmless
INSTALL_HINT = 'install h5py with: pip install "gpudl[keras]"'

ANY = object()  # a Keras option that does not change what gpudl computes: any value is accepted


def _nadam_u_product(optimizer):
    """Keras's Nadam keeps P_t = mu_1 ... mu_t as a variable; gpudl computes it from t."""
    return [np.asarray(math.prod(optimizer.momentum_schedule(t) for t in range(1, optimizer.iterations + 1)))]


@dataclass(frozen=True)
class KerasClass:
    """How one Keras class maps onto the gpudl class of the same name.

    Options the gpudl class takes (its __init__ arguments, through **kwargs to its bases) pass
    through by name; a layer's variables are its `weights`, in Keras's order.
    fixed: Keras-only options with the one value gpudl implements (ANY: ignored; a callable:
        a test). Any other option gpudl lacks is refused by name.
    slots: optimizers: gpudl slot names in Keras's variable order; each tuple is one Keras
        add_optimizer_variables call, interleaved per trainable variable. Slots the optimizer
        does not have (RMSprop without momentum) are skipped, as Keras creates none.
    extra: optimizers: Keras variables after the slots, computed from the gpudl optimizer.
    """

    fixed: dict = field(default_factory=dict)
    slots: tuple = ()
    extra: object = None


def _plain_entries(*names):
    return {name: KerasClass() for name in names}


KERAS_MODULES = {"layer": "keras.layers", "initializer": "keras.initializers", "regularizer": "keras.regularizers",
                 "constraint": "keras.constraints", "loss": "keras.losses", "metric": "keras.metrics",
                 "optimizer": "keras.optimizers", "schedule": "keras.optimizers.schedules"}

# Keras options that every class of a kind may carry.
COMMON_FIXED = {
    "layer": {"activity_regularizer": None},
    "initializer": {"input_axes": None, "output_axes": None},
    "optimizer": {"name": ANY, "ema_momentum": ANY},
}

# The one Keras <-> gpudl table: kind -> Keras class name -> KerasClass.
KERAS_CLASSES = {
    "layer": {
        "Dense": KerasClass(fixed={"lora_rank": None, "lora_alpha": ANY, "quantization_config": None}),
        "BatchNormalization": KerasClass(fixed={
            "synchronized": False, "renorm": False, "renorm_clipping": None, "renorm_momentum": ANY}),
        "Dropout": KerasClass(fixed={"noise_shape": None}),
        "LayerNormalization": KerasClass(fixed={"rms_scaling": False}),
        **_plain_entries("Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Flatten", "Reshape",
                         "Normalization", "Rescaling", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                         "ActivityRegularization", "Identity", "UnitNormalization",
                         "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"),
    },
    "initializer": _plain_entries(
        "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
        "HeNormal", "HeUniform", "GlorotNormal", "GlorotUniform", "LecunNormal", "LecunUniform", "Orthogonal",
        "Identity"),
    "regularizer": _plain_entries("L1", "L2", "L1L2", "OrthogonalRegularizer"),
    "constraint": _plain_entries("MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"),
    "loss": _plain_entries(
        "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
        "Huber", "LogCosh", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
        "CosineSimilarity", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
        "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy"),
    "metric": _plain_entries(
        "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy", "Precision", "Recall", "AUC", "TruePositives", "TrueNegatives",
        "FalsePositives", "FalseNegatives", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError", "RootMeanSquaredError", "LogCoshError", "CosineSimilarity", "Hinge",
        "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson", "BinaryCrossentropy",
        "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "PrecisionAtRecall", "RecallAtPrecision",
        "SensitivityAtSpecificity", "SpecificityAtSensitivity", "F1Score", "FBetaScore", "R2Score"),
    "optimizer": {  # Keras's slot names in the comments
        "SGD": KerasClass(slots=(("velocity",),)),  # momentum (= -lr * velocity)
        "RMSprop": KerasClass(slots=(("mean_square",), ("momentum",), ("average_gradient",))),  # velocity, ...
        "Adam": KerasClass(slots=(("m", "v"), ("v_max",))),  # momentum, velocity; velocity_hat
        "AdamW": KerasClass(slots=(("m", "v"), ("v_max",))),
        "Adagrad": KerasClass(slots=(("accumulator",),)),
        "Adadelta": KerasClass(slots=(("accumulated_grad", "accumulated_delta_var"),)),
        "Adamax": KerasClass(slots=(("m", "u"),)),  # momentum, norm
        "Nadam": KerasClass(slots=(("m", "v"),), extra=_nadam_u_product),  # momentum, velocity; u_product
        "Lion": KerasClass(slots=(("m",),)),  # momentum
        "Lamb": KerasClass(slots=(("m", "v"),)),  # momentum, velocity
        "Ftrl": KerasClass(slots=(("accumulator", "linear"),)),
    },
    "schedule": _plain_entries("ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay", "PolynomialDecay",
                               "CosineDecay", "CosineDecayRestarts"),
}


def _gpudl_class(kind, keras_name):
    """The gpudl class for a Keras class, or None when the table or gpudl lacks it."""
    return registry.classes(kind).get(keras_name) if keras_name in KERAS_CLASSES[kind] else None


def _keras_name_of(kind, gpudl_class):
    """The Keras class name for a gpudl class (None: no Keras equivalent in the table)."""
    name = gpudl_class.__name__
    return name if name in KERAS_CLASSES[kind] and registry.classes(kind).get(name) is gpudl_class else None


def _h5py(what="Keras archives (.keras) are"):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{what} written and read with h5py, which is not installed; {INSTALL_HINT}") from None
    return h5py


def _nested_kind(key):
    """The kind of object a config option holds, by Keras's naming (kernel_initializer, ...)."""
    for suffix in ("initializer", "regularizer", "constraint"):
        if key.endswith("_" + suffix):
            return suffix
    return None


def _keras_object(kind, class_name, config):
    return {"module": KERAS_MODULES[kind], "class_name": class_name, "config": config, "registered_name": None}


def _feature_shape(model):
    """The model's input shape without the batch axis, or None."""
    shape = model.input_shape
    if shape is None:
        return None
    return tuple(shape[1:]) if shape and shape[0] is None else tuple(shape)


def _is_sequential(layer):
    """A model (Sequential or functional): a layer holding layers."""
    return hasattr(layer, "layers") and hasattr(layer, "_leaves")


def _is_functional(layer):
    return _is_sequential(layer) and hasattr(layer, "_nodes")


def _layer_class_name(layer):
    """The Keras class name of a gpudl layer (a nested model is a Sequential or a Functional), or None."""
    if _is_sequential(layer):
        return "Functional" if _is_functional(layer) else "Sequential"
    return _keras_name_of("layer", type(layer))


def _variables(layer):
    """A layer's variables in its group; an input layer (a functional graph's) has none."""
    return getattr(layer, "weights", [])


def _group_class_name(layer):
    """The class name Keras names a layer's HDF5 group after: its Keras class, or for a layer
    without one (a user's custom layer) its own class name, as Keras does for custom layers."""
    return _layer_class_name(layer) or type(layer).__name__


def _optimizer_parameters(model):
    """The parameters Keras's optimizer tracks: trainable weights of trainable layers (nested
    models' layers in place), in order."""
    return [p for layer in model._leaves() if layer.trainable for p in layer.weights if p.trainable]


def _keras_optimizer_name(optimizer):
    """gpudl Momentum is written as the Keras SGD that takes the same steps."""
    return "SGD" if type(optimizer).__name__ == "Momentum" else _keras_name_of("optimizer", type(optimizer))


def _slot_order(optimizer, parameters):
    """[(parameter, gpudl slot name)] in Keras's order of optimizer variables."""
    order = []
    for group in KERAS_CLASSES["optimizer"][_keras_optimizer_name(optimizer)].slots:
        present = [slot for slot in group if slot in optimizer.slot_names]
        order += [(p, slot) for p in parameters for slot in present]
    return order


def _slot_scale(optimizer):
    """keras_slot = scale * gpudl_slot: SGD and Momentum m = -lr v; the others 1."""
    return -optimizer.current_learning_rate() if _keras_optimizer_name(optimizer) == "SGD" else 1.0


def _arena_slices(model):
    return {id(p): slice(int(start), int(stop)) for p, start, stop in
            zip(model.arena.parameters, model.arena.offsets[:-1], model.arena.offsets[1:])}


def _group_name(keras_class_name, used):
    """layers/<snake class name>, then _1, _2, ... for repeats (Keras's _get_unique_name)."""
    name = snake_case(keras_class_name)
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------

def save_keras_archive(model, path):
    """Write `model` (configuration, weights, optimizer state) to `path` as a Keras 3
    archive, atomically (a crash mid-save leaves the previous file whole)."""
    from gpudl.saving.atomic import write_atomically

    h5py = _h5py()
    config = json.dumps(_model_to_keras(model), default=_json_default)
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        _write_variables(h5, model)
    metadata = {"keras_version": KERAS_LAYOUT_VERSION, "producer": "gpudl",
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write(file):
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(METADATA, json.dumps(metadata))
            archive.writestr(CONFIG, config)
            archive.writestr(WEIGHTS, weights.getvalue())

    write_atomically(os.fspath(path), write)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return np.asarray(value).tolist()
    raise TypeError(f"{value!r} cannot be written to a Keras config.")


def _model_to_keras(model):
    """The Keras config.json of `model`; refuses, listing them, what Keras cannot hold."""
    problems = []
    if _is_functional(model):
        entry = _functional_to_keras(model, problems)
    else:
        entry = _sequential_to_keras(model, _feature_shape(model), model.dtype, problems)
    entry["compile_config"] = _compile_to_keras(model, problems) if model.compiled else None
    if problems:
        raise ValueError(f"Cannot save model '{model.name}' as a Keras archive: " + "; ".join(problems)
                         + ". gpudl's own format (a .npz path) keeps everything.")
    return entry


def _dtype_policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


def _sequential_to_keras(model, shape, dtype, problems):
    """A (possibly nested) Sequential as Keras writes it: an InputLayer first when the input
    shape is known, then the layers, each with its own trainable flag (Keras's Sequential.from_config
    reads no model-level one)."""
    layers = [_layer_to_keras(layer, dtype, problems) for layer in model.layers]
    config = {"name": model.name, "trainable": True, "dtype": _dtype_policy(dtype), "layers": layers}
    entry = {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None}
    if shape is not None:
        layers.insert(0, _keras_object("layer", "InputLayer", {
            "batch_shape": [None, *shape], "dtype": dtype, "name": f"{model.name}_input"}))
        config["build_input_shape"] = [None, *shape]
        entry["build_config"] = {"input_shape": [None, *shape]}
    return entry


def _functional_to_keras(model, problems):
    """A functional model as Keras writes it: its config (gpudl.frontend.models.functional_config,
    Keras's layout) with each layer in Keras's form."""
    config = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    layers = []
    for entry in config["layers"]:
        layer = by_name[entry["name"]]
        if entry["class_name"] == "InputLayer":
            keras_entry = _keras_object("layer", "InputLayer", {
                "batch_shape": [None, *layer.feature_shape], "dtype": layer.dtype or model.dtype, "sparse": False,
                "ragged": False, "name": layer.name, "optional": False})
        else:
            keras_entry = _layer_to_keras(layer, model.dtype, problems)
        if keras_entry is not None:
            layers.append({**keras_entry, "name": entry["name"], "inbound_nodes": entry["inbound_nodes"]})
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {**config, "layers": layers}, "registered_name": "Functional",
            "build_config": {"input_shape": None}}


def _layer_to_keras(layer, model_dtype, problems):
    if _is_functional(layer):
        return _functional_to_keras(layer, problems)
    if _is_sequential(layer):
        leaves = layer._leaves()
        shape = tuple(leaves[0].input_shape) if leaves and leaves[0].built else None
        return _sequential_to_keras(layer, shape, model_dtype, problems)
    keras_name = _keras_name_of("layer", type(layer))
    if keras_name is None:
        problems.append(f"layer '{layer.name}' is a {type(layer).__name__}, which has no Keras equivalent in "
                        f"gpudl.saving.keras_archive.KERAS_CLASSES")
        return None
    config = {key: _value_to_keras(key, value, f"layer '{layer.name}'", problems)
              for key, value in layer.get_config().items()}
    config["dtype"] = _dtype_policy(layer.dtype or model_dtype)
    entry = _keras_object("layer", keras_name, config)
    if layer.built:
        shapes = [[None, *shape] for shape in layer.input_shape] if layer.takes_list else None
        entry["build_config"] = {"input_shape": shapes or [None, *layer.input_shape]}
    return entry


def _value_to_keras(key, value, where, problems):
    """A gpudl config value in Keras's form: a nested initializer, regularizer or constraint
    becomes a Keras object; the rest is plain JSON."""
    kind = _nested_kind(key)
    if kind is None or not isinstance(value, dict):
        return value
    if value["class_name"] not in KERAS_CLASSES[kind]:
        problems.append(f"{where}: the {kind} {value['class_name']} of {key} has no Keras equivalent")
    return _keras_object(kind, value["class_name"], value["config"])


def _compile_to_keras(model, problems):
    """Keras's compile_config; a loss given by name stays the name, as Keras writes it."""
    from gpudl.frontend import losses

    arguments = getattr(model, "_compile_arguments", None)
    if getattr(model, "_output_metric_specs", None) is not None:  # several outputs (or loss_weights)
        return {"optimizer": _optimizer_to_keras(model.optimizer, problems),
                "loss": _structure_to_keras(arguments["loss"], lambda v: _loss_to_keras(v, problems)),
                "loss_weights": arguments["loss_weights"],
                "metrics": _structure_to_keras(arguments["metrics"], lambda v: _metrics_to_keras(v, problems)),
                "weighted_metrics": _structure_to_keras(arguments["weighted_metrics"],
                                                        lambda v: _metrics_to_keras(v, problems))}
    loss = model.compiled_loss
    if _keras_name_of("loss", type(loss)) is None:
        problems.append(f"the loss {type(loss).__name__} has no Keras equivalent")
    named = isinstance(model.loss, str) and model.loss in losses.LOSSES
    return {"optimizer": _optimizer_to_keras(model.optimizer, problems),
            "loss": model.loss if named else _keras_object("loss", type(loss).__name__, loss.get_config()),
            "loss_weights": None,
            "metrics": _metrics_to_keras(model._metric_names, problems),
            "weighted_metrics": _metrics_to_keras(model._weighted_metric_names, problems)}


def _structure_to_keras(value, convert):
    """A compile argument given per output (a dict or list of them) with `convert` applied to each."""
    if isinstance(value, dict):
        return {key: convert(entry) for key, entry in value.items()}
    return convert(value)


def _loss_to_keras(loss, problems):
    """One output's loss: a name stays the name; a Loss object becomes a Keras object."""
    from gpudl.frontend import losses

    if loss is None or isinstance(loss, str) and loss in losses.LOSSES:
        return loss
    if isinstance(loss, (list, tuple)):
        return [_loss_to_keras(entry, problems) for entry in loss]
    loss = losses.loss_object(loss)
    if _keras_name_of("loss", type(loss)) is None:
        problems.append(f"the loss {type(loss).__name__} has no Keras equivalent")
    return _keras_object("loss", type(loss).__name__, loss.get_config())


def _metrics_to_keras(metrics, problems):
    """Names stay names (Keras resolves "accuracy" by the loss, as gpudl does); objects become
    Keras objects."""
    if metrics is None:
        return None
    if isinstance(metrics, (list, tuple)) and any(isinstance(m, (list, tuple)) or m is None for m in metrics):
        return [_metrics_to_keras(m, problems) or [] for m in metrics]  # one list per output
    entries = []
    for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
        if isinstance(metric, str):
            entries.append(metric)
        elif _keras_name_of("metric", type(metric)) is None:
            problems.append(f"the metric {type(metric).__name__} has no Keras equivalent")
        else:
            entries.append(_keras_object("metric", type(metric).__name__, metric.get_config()))
    return entries or None


def _optimizer_to_keras(optimizer, problems):
    """Keras's optimizer object; gpudl Momentum becomes the SGD that takes the same steps."""
    name = _keras_optimizer_name(optimizer)
    if name is None:
        problems.append(f"the optimizer {type(optimizer).__name__} has no Keras equivalent")
        return None
    config = optimizer.get_config()
    rate = config["learning_rate"]
    if isinstance(rate, dict):
        if rate["class_name"] not in KERAS_CLASSES["schedule"]:
            problems.append(f"the learning-rate schedule {rate['class_name']} has no Keras equivalent")
        config["learning_rate"] = _keras_object("schedule", rate["class_name"], rate["config"])
    elif callable(rate):
        problems.append(f"the learning rate {rate!r} is a plain callable; use a gpudl.schedules object")
    if type(optimizer).__name__ == "Momentum":
        if not isinstance(rate, float):
            problems.append("gpudl Momentum with a learning-rate schedule has no Keras equivalent")
        else:
            config = {**config, "name": snake_case(name), "learning_rate": rate * (1.0 - optimizer.beta),
                      "momentum": optimizer.beta, "nesterov": False}
            del config["beta"]
    return _keras_object("optimizer", name, config)


def _write_layers(h5, prefix, layers):
    """<prefix>layers/<group>/vars/<i> for each layer; a nested model's layers below its group."""
    used = {}
    for layer in layers:
        path = f"{prefix}layers/{_group_name(_group_class_name(layer), used)}"
        h5.create_group(f"{path}/vars").attrs["name"] = layer.name
        if _is_sequential(layer):
            _write_layers(h5, path + "/", layer.layers)
            continue
        for i, p in enumerate(_variables(layer)):
            h5[f"{path}/vars/{i}"] = get_backend().to_numpy(p.value)


def _write_variables(h5, model, include_optimizer=True):
    """Keras's weights layout: the model's vars, its layers' and (compiled, include_optimizer)
    its optimizer's."""
    backend = get_backend()
    h5.create_group("vars").attrs["name"] = model.name
    _write_layers(h5, "", model.layers)
    if not (model.compiled and include_optimizer):
        return
    optimizer = model.optimizer
    group = h5.create_group("optimizer/vars")
    group.attrs["name"] = optimizer.name
    arrays = [np.asarray(optimizer.iterations, np.int64)]
    rate = _optimizer_to_keras(optimizer, [])["config"]["learning_rate"]
    if not isinstance(rate, dict):  # a schedule has no variable
        arrays.append(np.asarray(rate, np.float32))
    if model.built and optimizer.slots:
        where, scale = _arena_slices(model), _slot_scale(optimizer)
        for p, slot in _slot_order(optimizer, _optimizer_parameters(model)):
            values = backend.to_numpy(optimizer.slots[slot][where[id(p)]]).reshape(p.shape)
            arrays.append((values * scale).astype(values.dtype))
        extra = KERAS_CLASSES["optimizer"][_keras_optimizer_name(optimizer)].extra
        arrays += [np.asarray(value, model.dtype) for value in (extra(optimizer) if extra else [])]
    for i, array in enumerate(arrays):
        group.create_dataset(str(i), data=array)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

class _Refusal(ValueError):
    """Why the archive is refused (reported as a ValueError naming the file)."""


class _Mismatch(_Refusal):
    """A group's variables differ in number, shape or dtype from the model's (load_weights'
    skip_mismatch keeps the layer's own weights instead)."""


def load_keras_archive(path, custom_objects=None, compile=True):
    """Rebuild the Sequential saved in the Keras 3 archive at `path`, with its weights and,
    when `compile`, its optimizer (state included), loss and metrics. `custom_objects` maps
    a Keras class or registered name to a gpudl Layer subclass that stands for it."""
    path = os.fspath(path)
    h5py = _h5py()
    try:
        config_text, weights = _read_archive(path)
        config = _parse_json(config_text)
    except _Refusal as error:
        raise ValueError(f"Cannot load {path!r}: {error}") from None
    problems = []
    plan = _plan_model(config, dict(custom_objects or {}), compile, problems)
    if problems:
        raise ValueError(f"Cannot load {path!r}: it uses what gpudl does not support or refuses to read: "
                         + "; ".join(problems) + ".")
    try:
        model = _build(plan)
        with h5py.File(io.BytesIO(weights), "r") as h5:
            layer_arrays = _read_layer_variables(h5, _plan_of(model) if _is_functional(model) else plan, model)
            optimizer_arrays = _read_optimizer_variables(h5, plan, model) if model.compiled else None
    except _Refusal as error:
        raise ValueError(f"Cannot load {path!r}: {error}") from None
    except (OSError, KeyError, RuntimeError) as error:  # h5py's errors for a corrupted file
        raise ValueError(f"Cannot load {path!r}: {WEIGHTS} is not a readable HDF5 file ({error}).") from None
    if layer_arrays:
        model.set_weights(layer_arrays)
    if optimizer_arrays is not None:
        _assign_optimizer_state(model, *optimizer_arrays)
    return model


def _read_archive(path):
    """(config.json text, model.weights.h5 bytes), refusing corrupted zips and bombs."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for required in (CONFIG, WEIGHTS):
                if required not in names:
                    other = " (sharded or .npz weights are not supported)" if required == WEIGHTS else ""
                    raise _Refusal(f"the archive has no {required}{other}; found {names}")
            config = _read_member(archive, CONFIG, MAX_JSON_BYTES)
            weights = _read_member(archive, WEIGHTS)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise _Refusal(f"not a readable Keras archive (truncated or corrupted zip?): {error}") from None
    except RuntimeError as error:  # encrypted members
        raise _Refusal(f"unreadable archive member: {error}") from None
    try:
        return config.decode("utf-8"), weights
    except UnicodeDecodeError:
        raise _Refusal(f"{CONFIG} is not UTF-8 text") from None


def _read_member(archive, name, limit=None):
    """The bytes of one member after checking its declared size: at most `limit`, and at most
    MAX_EXPANSION times what it stores (a zip bomb declares far more than it stores)."""
    info = archive.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise _Refusal(f"{name} declares {info.file_size} bytes; at most {limit} are accepted")
    if info.file_size > EXPANSION_FLOOR_BYTES and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise _Refusal(f"{name} declares {info.file_size} bytes but stores only {info.compress_size}: "
                       f"refusing a possible zip bomb (more than {MAX_EXPANSION}x expansion)")
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _Refusal(f"{name} holds {len(data)} bytes but declares {info.file_size}")
    return data


def _parse_json(text):
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise _Refusal(f"{CONFIG} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise _Refusal(f"{CONFIG} must hold a JSON object; found {type(config).__name__}")
    return config


@dataclass
class _Plan:
    """A checked, converted description of the model: nothing built yet."""

    name: str
    dtype: str
    input_shape: tuple
    layers: list  # (gpudl layer or the _Plan of a nested model, Keras class name)
    compile: dict = None  # optimizer, loss, metrics, schedule (bool)


def _unpack(entry, kind, where, problems, custom_objects=None):
    """(class name, config, class) of a Keras object, or None after noting why it is refused.
    Only classes in KERAS_CLASSES (or `custom_objects`, for layers) are ever looked up."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        problems.append(f"{where}: expected a Keras object with a class_name; found {_short(entry)}")
        return None
    class_name, module = entry["class_name"], entry.get("module")
    config = entry.get("config", {})
    if class_name in ("Lambda", "__lambda__", "function") or _mentions_lambda(config):
        problems.append(f"{where}: a lambda ({class_name}) holds Python bytecode; gpudl never runs code "
                        f"from a file (rewrite it as a layer with its own backward)")
        return None
    custom_objects = custom_objects or {}
    custom = custom_objects.get(entry.get("registered_name"), custom_objects.get(class_name))
    if custom is not None:
        from gpudl.frontend.layers.base import Layer

        if kind == "layer" and isinstance(custom, type) and issubclass(custom, Layer) and isinstance(config, dict):
            return class_name, config, custom
    cls = _gpudl_class(kind, class_name) if module == KERAS_MODULES[kind] else None
    if cls is None:
        known = sorted(name for name in KERAS_CLASSES[kind] if _gpudl_class(kind, name))
        problems.append(f"{where}: {kind} {module}.{class_name} (registered_name="
                        f"{entry.get('registered_name')!r}) is not supported; supported: {KERAS_MODULES[kind]}."
                        f"{{{', '.join(known)}}}")
        return None
    if entry.get("registered_name") not in (None, class_name) or not isinstance(config, dict):
        problems.append(f"{where}: {class_name} with registered_name={entry.get('registered_name')!r} "
                        f"and config {_short(config)} is not a built-in Keras object")
        return None
    return class_name, config, cls


def _mentions_lambda(value):
    if isinstance(value, dict):
        return value.get("class_name") == "__lambda__" or any(_mentions_lambda(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_lambda(v) for v in value)
    return False


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _accepted_options(cls):
    """The keyword arguments of the gpudl class's __init__, and of its bases' while **kwargs
    passes them on."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def _options(kind, class_name, config, cls, where, problems):
    """The Keras options as gpudl keyword arguments; Keras-only options must hold the one
    value gpudl implements (KerasClass.fixed), anything else is noted as unsupported."""
    fixed = {**COMMON_FIXED.get(kind, {}), **KERAS_CLASSES[kind].get(class_name, KerasClass()).fixed}
    accepted = _accepted_options(cls)
    options = {}
    for key, value in config.items():
        if key in accepted and key not in fixed:
            options[key] = _value_from_keras(key, value, f"{where}.{key}", problems)
        elif key in fixed:
            expected = fixed[key]
            if expected is not ANY and not (expected(value) if callable(expected) else value == expected):
                shown = "its default" if callable(expected) else repr(expected)
                problems.append(f"{where}: option {key}={_short(value)} (gpudl implements only {shown})")
        else:
            problems.append(f"{where}: option {key}={_short(value)} is not supported")
    return options


def _value_from_keras(key, value, where, problems):
    """A Keras option value in gpudl's form: a nested initializer, regularizer or constraint
    as {"class_name", "config"}, an activation as its name, the rest as plain JSON data."""
    from gpudl.frontend import activations

    kind = _nested_kind(key)
    if kind is not None:
        if value is None:
            return None
        if isinstance(value, str):  # "glorot_uniform", "l2"
            names = {snake_case(name): name for name in KERAS_CLASSES[kind]}
            value = _keras_object(kind, names.get(value, value), {})
        unpacked = _unpack(value, kind, where, problems)
        if unpacked is None:
            return None
        class_name, config, cls = unpacked
        return {"class_name": cls.__name__, "config": _options(kind, class_name, config, cls, where, problems)}
    if key == "activation":
        name = value
        if isinstance(value, dict) and value.get("module") == "keras.activations" and not _mentions_lambda(value):
            name = value.get("config")
        if name is None or (isinstance(name, str) and name in activations.ACTIVATIONS):
            return name
        problems.append(f"{where}: activation {_short(value)} is not supported; supported: "
                        f"{', '.join(sorted(activations.ACTIVATIONS))}")
        return None
    return _plain(value, where, problems)


def _plain(value, where, problems):
    """JSON data (numbers, strings, lists); Keras's tuple and array wrappers become lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where, problems) for v in value]
    if isinstance(value, dict) and value.get("class_name") in ("__tuple__", "__numpy__", "__tensor__"):
        inner = value.get("config", {})
        return _plain(inner.get("value") if isinstance(inner, dict) else None, where, problems)
    problems.append(f"{where}: the object {_short(value)} is not supported here")
    return None


def _dtype_name(value, where, problems):
    """'float32' or 'float64' from a dtype string or a Keras DTypePolicy object."""
    name = value
    if isinstance(value, dict):
        config = value.get("config")
        ok = (value.get("module") == "keras" and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
              and isinstance(config, dict))
        name = config.get("name") if ok else None
    if name in ("float32", "float64"):
        return name
    problems.append(f"{where}: dtype {_short(value)} is not supported (float32 or float64)")
    return None


def _plan_model(entry, custom_objects, compile, problems):
    if isinstance(entry, dict) and entry.get("class_name") == "Functional":
        plan = _plan_functional(entry, "the model", custom_objects, problems)
    else:
        plan = _plan_sequential(entry, "the model", None, custom_objects, problems)
    compile_config = entry.get("compile_config") if compile and isinstance(entry, dict) else None
    if plan is not None and compile_config:  # Keras writes {} for a model never compiled
        plan.compile = _plan_compile(compile_config, problems)
    return plan


def _plan_sequential(entry, where, outer_dtype, custom_objects, problems):
    """The _Plan of a keras.Sequential (the model, or one nested in it as a layer)."""
    if not (isinstance(entry, dict) and entry.get("class_name") == "Sequential"
            and entry.get("module") in ("keras", "keras.models") and isinstance(entry.get("config"), dict)):
        found = f"{entry.get('module')}.{entry.get('class_name')}" if isinstance(entry, dict) else _short(entry)
        problems.append(f"{where} is {found}; gpudl loads keras.Sequential models")
        return None
    config = entry["config"]
    for key in config:
        if key not in ("name", "trainable", "dtype", "layers", "build_input_shape"):
            problems.append(f"{where}: option {key}={_short(config[key])} is not supported")
    dtype = _dtype_name(config.get("dtype", outer_dtype or "float32"), where, problems)
    if outer_dtype is not None and dtype != outer_dtype:
        problems.append(f"{where}: dtype {dtype} differs from the model's {outer_dtype} (gpudl keeps one dtype)")
    entries = config.get("layers")
    if not isinstance(entries, list):
        problems.append(f"{where}: layers {_short(entries)} are not a list")
        return None
    input_shape = _shape(config.get("build_input_shape"), "build_input_shape", problems)
    if entries and isinstance(entries[0], dict) and entries[0].get("class_name") == "InputLayer":
        input_shape = _input_layer_shape(entries[0], problems)
        entries = entries[1:]
    layers = [_plan_layer(e, f"layer {i} ({_layer_label(e)})", dtype, custom_objects, problems)
              for i, e in enumerate(entries)]
    return _Plan(str(config.get("name", "sequential")), dtype, input_shape, layers)


@dataclass
class _FunctionalPlan:
    """A checked functional model: its config in gpudl's functional layout (functional_config) and
    the layers already built from their Keras entries, by name; nothing is called yet."""

    name: str
    config: dict
    layers: dict  # layer name -> gpudl layer, or the _FunctionalPlan / _Plan of a nested model
    compile: dict = None


FUNCTIONAL_KEYS = ("name", "trainable", "layers", "input_layers", "output_layers")


def _plan_functional(entry, where, custom_objects, problems):
    """The _FunctionalPlan of a keras.Model(inputs, outputs) (the model, or one nested in it)."""
    if not (isinstance(entry, dict) and entry.get("module") in ("keras.src.models.functional", "keras", "keras.models")
            and isinstance(entry.get("config"), dict) and isinstance(entry["config"].get("layers"), list)):
        problems.append(f"{where} is {_short(entry)}; gpudl loads keras.Model(inputs, outputs) models")
        return None
    config = entry["config"]
    for key in config:
        if key not in FUNCTIONAL_KEYS:
            problems.append(f"{where}: option {key}={_short(config[key])} is not supported")
    for key in ("input_layers", "output_layers"):
        if not isinstance(config.get(key), (list, dict)):
            problems.append(f"{where}: a functional model needs {key} (its graph's ends); found {_short(config.get(key))}")
    dtypes = {e["config"].get("dtype") for e in config["layers"]
              if isinstance(e, dict) and e.get("class_name") == "InputLayer" and isinstance(e.get("config"), dict)}
    dtype = _dtype_name(sorted(d for d in dtypes if d)[0] if any(dtypes) else "float32", where, problems)
    layers, entries = {}, []
    for i, layer_entry in enumerate(config["layers"]):
        if not isinstance(layer_entry, dict) or not isinstance(layer_entry.get("name"), str):
            problems.append(f"{where}: layer {i} {_short(layer_entry)} has no name")
            continue
        label = f"{where}: layer {i} ({layer_entry['name']!r}, {layer_entry.get('class_name')})"
        for node in layer_entry.get("inbound_nodes") or []:
            if not isinstance(node, dict) or any(v is not None for v in (node.get("kwargs") or {}).values()):
                problems.append(f"{label}: a call with arguments {_short(node)} is not supported")
        keras_object = {key: value for key, value in layer_entry.items() if key not in ("name", "inbound_nodes")}
        if layer_entry.get("class_name") == "InputLayer":
            _input_layer_shape(layer_entry, problems)
            gpudl_config = {key: value for key, value in layer_entry["config"].items() if key != "batch_input_shape"}
            entries.append({**layer_entry, "module": "keras.layers", "config": gpudl_config})
            continue
        if layer_entry.get("class_name") == "Functional":
            layers[layer_entry["name"]] = _plan_functional(keras_object, label, custom_objects, problems)
        elif layer_entry.get("class_name") == "Sequential":
            layers[layer_entry["name"]] = _plan_sequential(keras_object, label, dtype, custom_objects, problems)
        else:
            planned = _plan_layer(keras_object, label, dtype, custom_objects, problems)
            layers[layer_entry["name"]] = planned[0] if planned else None
        entries.append(layer_entry)
    gpudl_config = {key: config.get(key) for key in FUNCTIONAL_KEYS}
    return _FunctionalPlan(str(config.get("name", "functional")), {**gpudl_config, "layers": entries}, layers)


def _build_functional(plan):
    """The functional model of a _FunctionalPlan: its layers called node by node as the config says."""
    Functional = registry.find("Functional", ("model",))
    built = {name: _build_plan(layer) for name, layer in plan.layers.items()}
    try:
        return Functional.from_config(plan.config, layers=built)
    except MemoryError:
        raise _Refusal("its layers declare more parameters than fit in memory") from None
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise _Refusal(f"its graph cannot be rebuilt: {error}") from None


def _build_plan(planned):
    if isinstance(planned, _FunctionalPlan):
        return _build_functional(planned)
    return _build_sequential(planned) if isinstance(planned, _Plan) else planned


def _layer_label(entry):
    if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
        return f"{entry['config'].get('name')!r}, {entry.get('class_name')}"
    return "?"


def _shape(value, where, problems):
    """A (None, d1, ...) Keras shape as gpudl's feature shape (d1, ...), or None."""
    if value is None:
        return None
    if (isinstance(value, list) and len(value) >= 2 and value[0] is None
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value[1:])):
        return tuple(value[1:])
    problems.append(f"{where}={_short(value)} is not a (None, d1, ...) shape of positive sizes")
    return None


def _input_layer_shape(entry, problems):
    config = entry.get("config") if entry.get("module") == "keras.layers" else None
    if not isinstance(config, dict):
        problems.append(f"input layer {_short(entry)} is not keras.layers.InputLayer")
        return None
    for key, value in config.items():
        if key in ("sparse", "ragged", "optional") and value:
            problems.append(f"input layer option {key}={value!r} is not supported")
        elif key not in ("batch_shape", "batch_input_shape", "dtype", "name", "sparse", "ragged", "optional"):
            problems.append(f"input layer option {key}={_short(value)} is not supported")
    return _shape(config.get("batch_shape", config.get("batch_input_shape")), "input batch_shape", problems)


def _plan_layer(entry, where, model_dtype, custom_objects, problems):
    if isinstance(entry, dict) and entry.get("class_name") == "Sequential":
        return _plan_sequential(entry, where, model_dtype, custom_objects, problems), "Sequential"
    unpacked = _unpack(entry, "layer", where, problems, custom_objects)
    if unpacked is None:
        return None
    class_name, config, cls = unpacked
    config = dict(config)
    dtype = _dtype_name(config.pop("dtype", None) or model_dtype, where, problems)
    if dtype is not None and model_dtype is not None and dtype != model_dtype:
        problems.append(f"{where}: dtype {dtype} differs from the model's {model_dtype} (gpudl keeps one dtype)")
    count = len(problems)
    options = _options("layer", class_name, config, cls, where, problems)
    if len(problems) > count:
        return None
    try:
        return cls.from_config(options), class_name
    except (ValueError, TypeError) as error:
        problems.append(f"{where}: {error}")
        return None


def _plan_compile(config, problems):
    """The optimizer, loss and metrics of compile_config, as gpudl objects."""
    from gpudl.frontend import losses, metrics

    if not isinstance(config, dict):
        problems.append(f"compile_config {_short(config)} is not an object")
        return None
    for key, value in config.items():
        if key == "loss_weights" and not (value is None or isinstance(value, (list, dict)) and all(
                isinstance(w, (int, float)) and not isinstance(w, bool)
                for w in (value.values() if isinstance(value, dict) else value))):
            problems.append(f"compile option {key}={_short(value)} is not a list or dict of numbers")
        elif key not in ("optimizer", "loss", "metrics", "loss_weights", "weighted_metrics", "run_eagerly",
                         "steps_per_execution", "jit_compile", "auto_scale_loss"):
            problems.append(f"compile option {key}={_short(value)} is not supported")
    plan = _plan_optimizer(config.get("optimizer"), problems) or {}
    loss = config.get("loss")
    if loss is None:
        problems.append("compile_config has no loss (gpudl compiles with one); load it with compile=False")
    def one_loss(entry, where):
        if entry is None or isinstance(entry, str) and entry in losses.LOSSES:
            return entry
        return _plan_object(entry, "loss", where, problems)

    if isinstance(loss, dict):  # one per output, as compile took them
        plan["loss"] = {key: one_loss(entry, f"loss[{key!r}]") for key, entry in loss.items()}
    elif isinstance(loss, list):
        plan["loss"] = [one_loss(entry, f"loss[{i}]") for i, entry in enumerate(loss)]
    else:
        plan["loss"] = one_loss(loss, "loss")
    plan["loss_weights"] = config.get("loss_weights")
    names = (*metrics.METRICS, *metrics.FUNCTIONS, "accuracy", "acc")

    def metric_list(entries, where):
        if isinstance(entries, (list, tuple)) and any(isinstance(e, (list, tuple)) for e in entries):
            return [metric_list(e, f"{where}[{i}]") for i, e in enumerate(entries)]  # one list per output
        return [metric if isinstance(metric, str) and metric in names
                else _plan_object(metric, "metric", f"{where}[{i}]", problems)
                for i, metric in enumerate(entries if isinstance(entries, (list, tuple)) else [entries] if entries
                                           else [])]

    for key in ("metrics", "weighted_metrics"):
        value = config.get(key)
        plan[key] = ({name: metric_list(entries, f"{key}[{name!r}]") for name, entries in value.items()}
                     if isinstance(value, dict) else metric_list(value, key))
    return plan


def _plan_object(entry, kind, where, problems):
    """A gpudl object (loss, metric, schedule) built from a Keras object, or None."""
    unpacked = _unpack(entry, kind, where, problems)
    if unpacked is None:
        return None
    class_name, config, cls = unpacked
    options = _options(kind, class_name, config, cls, where, problems)
    try:
        return cls(**options)
    except (ValueError, TypeError) as error:
        problems.append(f"{where}: {error}")
        return None


def _plan_optimizer(entry, problems):
    if isinstance(entry, str):  # compile(optimizer="adam")
        names = {name.lower(): name for name in KERAS_CLASSES["optimizer"]}
        entry = _keras_object("optimizer", names.get(entry.lower(), entry), {})
    unpacked = _unpack(entry, "optimizer", "optimizer", problems)
    if unpacked is None:
        return None
    class_name, config, cls = unpacked
    rate = config.get("learning_rate")
    schedule = isinstance(rate, dict)
    plain = {key: value for key, value in config.items() if not (schedule and key == "learning_rate")}
    options = _options("optimizer", class_name, plain, cls, "optimizer", problems)
    if schedule:
        options["learning_rate"] = _plan_object(rate, "schedule", "learning_rate", problems)
    try:
        return {"optimizer": cls(**options), "schedule": schedule}
    except (ValueError, TypeError) as error:
        problems.append(f"optimizer {class_name}: {error}")
        return None


def _build(plan):
    model = _build_plan(plan)
    if plan.compile:
        weights = {"loss_weights": plan.compile["loss_weights"]} if plan.compile.get("loss_weights") else {}
        model.compile(optimizer=plan.compile["optimizer"], loss=plan.compile["loss"],
                      metrics=plan.compile["metrics"], weighted_metrics=plan.compile["weighted_metrics"], **weights)
    return model


def _build_sequential(plan):
    from gpudl.frontend.layers.input import Input

    Sequential = registry.find("Sequential", ("model",))
    head = [Input(plan.input_shape)] if plan.input_shape else []
    layers = [_build_sequential(layer) if isinstance(layer, _Plan) else layer for layer, _ in plan.layers]
    try:
        model = Sequential(head + layers, name=plan.name, dtype=plan.dtype)
    except MemoryError:
        raise _Refusal("its layers declare more parameters than fit in memory") from None
    except ValueError as error:
        raise _Refusal(str(error)) from None
    return model


def _h5_group(parent, path):
    """The group at `path` (None if absent), refusing soft and external links on the way."""
    h5py = _h5py()
    node = parent
    for part in path.split("/"):
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise _Refusal(f"{WEIGHTS} links {path} elsewhere ({type(link).__name__}); links are refused")
        node = node[part]
        if not isinstance(node, h5py.Group):
            raise _Refusal(f"{WEIGHTS}: {path} is not a group")
    return node


def _h5_arrays(group, path, expected):
    """Read datasets "0".."n-1" of `group` after checking their number, kind, shape and dtype
    against `expected` [(shape, dtype kinds)], so nothing of a wrong size is ever read."""
    h5py = _h5py()
    names = sorted(group.keys()) if group is not None else []
    wanted = [str(i) for i in range(len(expected))]
    if names != sorted(wanted):
        raise _Mismatch(f"{WEIGHTS}: {path} holds variables {names}; the model needs {len(expected)} "
                       f"({wanted})")
    datasets = []
    for name, (shape, kinds) in zip(wanted, expected):
        link = group.get(name, getlink=True)
        dataset = group[name] if isinstance(link, h5py.HardLink) else None
        if not isinstance(dataset, h5py.Dataset) or dataset.external or dataset.is_virtual:
            raise _Refusal(f"{WEIGHTS}: {path}/{name} is not a plain dataset (links, external and virtual "
                           f"datasets are refused)")
        if tuple(dataset.shape) != tuple(shape) or dataset.dtype.kind not in kinds:
            raise _Mismatch(f"{WEIGHTS}: {path}/{name} has shape {tuple(dataset.shape)} and dtype "
                           f"{dataset.dtype}; the model needs shape {tuple(shape)} ({kinds!r} dtype kinds)")
        datasets.append(dataset)
    return [np.asarray(dataset[()]) for dataset in datasets]


def _read_layer_variables(h5, plan, model, prefix="", skipped=None):
    """Every layer's weights in model.weights order (nested models' in place), all checked
    before any is returned. With a `skipped` list, a layer whose variables differ in number or
    shape keeps its own weights and its group path is appended (load_weights' skip_mismatch)."""
    arrays, used = [], {}
    for layer, (planned, class_name) in zip(model.layers, plan.layers):
        path = f"{prefix}layers/{_group_name(class_name, used)}"
        if isinstance(planned, _Plan):
            arrays += _read_layer_variables(h5, planned, layer, path + "/", skipped)
            continue
        expected = [(p.shape, "f" if p.value.dtype.kind == "f" else "iu") for p in _variables(layer)]
        try:
            arrays += _h5_arrays(_h5_group(h5, path + "/vars"), path + "/vars", expected)
        except _Mismatch as error:
            if skipped is None:
                weights = ", ".join(f"'{p.path}' {p.shape}" for p in _variables(layer)) or "none"
                raise _Mismatch(f"layer '{layer.name}' (weights: {weights}): {error}") from None
            skipped.append(path)
            arrays += [p.numpy() for p in _variables(layer)]
    return arrays


def _plan_of(model, compile=None):
    """The _Plan of a built gpudl model (its layers with the class names Keras groups
    them by), for reading a weights file into it."""
    layers = [(_plan_of(layer) if _is_sequential(layer) else layer, _group_class_name(layer))
              for layer in model.layers]
    return _Plan(model.name, model.dtype, None, layers, compile)


def _read_optimizer_variables(h5, plan, model):
    """(iterations, slot arrays in Keras's order or None, before any step), all checked."""
    optimizer, path = model.optimizer, "optimizer/vars"
    group = _h5_group(h5, path)
    head = [((), "iu")] + ([] if plan.compile["schedule"] else [((), "f")])
    extra = KERAS_CLASSES["optimizer"][_keras_optimizer_name(optimizer)].extra
    full = head + [(p.shape, "f") for p, _ in _slot_order(optimizer, _optimizer_parameters(model))] + [
        ((), "f")] * (len(extra(optimizer)) if extra else 0)
    stored = len(group.keys()) if group is not None else 0
    values = _h5_arrays(group, path, head if stored == len(head) else full)  # head only: never built
    iterations = int(values[0])
    if iterations < 0:
        raise _Refusal(f"{WEIGHTS}: optimizer iterations is {iterations}; expected >= 0")
    slot_count = len(full) - len(head) - (len(extra(optimizer)) if extra else 0)
    return iterations, values[len(head):len(head) + slot_count] if len(values) > len(head) else None


def _assign_optimizer_state(model, iterations, slots):
    optimizer = model.optimizer
    optimizer.iterations = iterations
    if slots is None:
        return
    where, scale, backend = _arena_slices(model), _slot_scale(optimizer), get_backend()
    for (p, slot), values in zip(_slot_order(optimizer, _optimizer_parameters(model)), slots):
        buffer = optimizer.slots[slot]
        buffer[where[id(p)]] = backend.asarray((values / scale).reshape(-1), dtype=buffer.dtype)
