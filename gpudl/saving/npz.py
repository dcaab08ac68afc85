"""gpudl's own model file: one .npz (a zip of .npy arrays, no pickle) holding the JSON
configuration and every array (weights, optimizer slots and step, random layers' call counters,
epochs done: see training_state). Loading builds only registered classes (and those in
`custom_objects`) and reads arrays with allow_pickle=False, so it runs no code from the file."""

import json
import math
import os
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from gpudl import registry
from gpudl.backend import get_backend
from gpudl.saving import limits, training_state
from gpudl.saving.atomic import write_atomically

FORMAT, VERSION = "gpudl-model", 1


def save_npz(model, path, metadata=None):
    """Write `model` (configuration, weights and their names, training state) to `path`
    atomically; `metadata`, a JSON-able dict, is stored in the configuration (BackupAndRestore
    keeps its epoch there, so the one file is the one commit point) and returned by
    `load_npz(..., metadata=True)`."""
    from gpudl.frontend import losses, metrics

    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    state, slots = training_state.capture(model)
    iterations = state.pop("iterations", None)
    config = {"format": FORMAT, "version": VERSION, "model": model.get_config(), "compile": None, **state}
    if model.compiled:
        optimizer = model.optimizer
        optimizer_config = optimizer.get_config()  # a schedule comes serialized
        if callable(optimizer_config["learning_rate"]):
            warnings.warn(f"The learning rate {optimizer_config['learning_rate']!r} is a plain callable and cannot "
                          f"be saved; its current value is saved instead. Use a gpudl.schedules object to keep it.")
            optimizer_config["learning_rate"] = optimizer.current_learning_rate()
        config["compile"] = {"optimizer": {"class_name": type(optimizer).__name__, "config": optimizer_config},
                             "iterations": iterations}
        if getattr(model, "_output_metric_specs", None) is not None:  # losses and metrics per output
            arguments = model._compile_arguments
            config["compile"].update({
                "loss": _per_output(arguments["loss"], lambda v: losses.serialize(losses.loss_object(v))),
                "loss_weights": arguments["loss_weights"],
                "metrics": _per_output(arguments["metrics"], metrics.serialize),
                "weighted_metrics": _per_output(arguments["weighted_metrics"], metrics.serialize)})
        else:
            config["compile"].update({
                "loss": model.loss if isinstance(model.loss, str) else losses.serialize(model.compiled_loss),
                "metrics": [m if isinstance(m, str) else metrics.serialize(m) for m in model._metric_names],
                "weighted_metrics": [m if isinstance(m, str) else metrics.serialize(m)
                                     for m in model._weighted_metric_names]})
        arrays.update({f"optimizer_{name}": slot for name, slot in slots.items()})
    if metadata is not None:
        config["metadata"] = metadata
    arrays["names"] = np.frombuffer(json.dumps([p.path for p in model.weights]).encode("utf-8"), dtype=np.uint8)
    try:
        text = json.dumps(config, allow_nan=False)
    except ValueError as error:
        raise ValueError(f"Cannot save {os.fspath(path)!r}: its configuration holds a non-finite number ({error}); "
                         f"gpudl's loader refuses Infinity and NaN.") from None
    arrays["config"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    write_atomically(os.fspath(path), lambda f: np.savez(f, **arrays))


def _per_output(value, serialize):
    """A compile argument given per output (dict, list, nested lists) with each object serialized
    (names and numbers stay as they are)."""
    if isinstance(value, dict):
        return {key: _per_output(entry, serialize) for key, entry in value.items()}
    if isinstance(value, (list, tuple)):
        return [_per_output(entry, serialize) for entry in value]
    return value if value is None or isinstance(value, (str, int, float)) else serialize(value)


def _deserialize_per_output(value, deserialize):
    if isinstance(value, dict) and "class_name" not in value:
        return {key: _deserialize_per_output(entry, deserialize) for key, entry in value.items()}
    if isinstance(value, list):
        return [_deserialize_per_output(entry, deserialize) for entry in value]
    return value if value is None or isinstance(value, (str, int, float)) else deserialize(value)


def load_npz(path, custom_objects=None, compile=True, metadata=False):
    """The model saved by save_npz at `path`, with its weights and training state (and, with
    `metadata=True`, the `metadata` dict save_npz was given, as a second value).

    Everything is checked before it is inflated, allocated or built: the zip's central directory
    (member names and count, declared sizes, expansion ratio), each .npy header (dtype, shape,
    byte size against the member), the configuration (size, depth, finite numbers, counters),
    the weights the configuration implies (built shape-only) against the members' exact dtypes,
    shapes and names, and the optimizer slots. Each refusal is a ValueError naming the file,
    the member and what was expected; nothing is returned half-loaded."""
    path = os.fspath(path)
    try:
        _check_member_count(path)
        with zipfile.ZipFile(path) as archive:
            members = _members(archive)
            headers = {name: _header(archive, info) for name, info in members.items()}
            config = _config(archive, members, headers)
            model, extra = _restore(config, _Arrays(archive, members, headers), custom_objects, compile)
    except _Refusal as refusal:
        raise ValueError(f"Cannot load {path!r}: {refusal}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as error:
        raise ValueError(f"Cannot load {path!r}: not a readable gpudl model file "
                         f"(truncated or corrupted?): {error}") from None
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ValueError(f"Cannot load {path!r}: its configuration is malformed ({error!r}).") from None
    except ValueError as error:  # a class or an argument the configuration names
        raise ValueError(f"Cannot load {path!r}: {error}") from None
    return (model, extra) if metadata else model


def _check_member_count(path):
    """Refuse a zip whose end record declares more than MAX_MEMBERS members, before zipfile
    reads its central directory into memory (a ZipInfo per member)."""
    with open(path, "rb") as f:
        record = zipfile._EndRecData(f)  # the end-of-central-directory record alone (zip64 aware)
    if record is not None and record[zipfile._ECD_ENTRIES_TOTAL] > limits.MAX_MEMBERS:
        raise _Refusal(f"it declares {record[zipfile._ECD_ENTRIES_TOTAL]} members; at most "
                       f"{limits.MAX_MEMBERS} are accepted")


class _Refusal(ValueError):
    """A check failed; load_npz names the file in front of the reason."""


def _members(archive):
    """{array name: ZipInfo} from the central directory alone: np.savez's `<name>.npy` members,
    each known, once, plain (stored or deflated, not encrypted) and not a bomb."""
    infos = archive.infolist()
    if len(infos) > limits.MAX_MEMBERS:
        raise _Refusal(f"it has {len(infos)} members; at most {limits.MAX_MEMBERS} are accepted")
    members = {}
    for info in infos:
        name = info.filename[:-len(".npy")] if info.filename.endswith(".npy") else None
        if name is None or not (name in ("config", "names") or MEMBER.fullmatch(name)):
            raise _Refusal(f"member {info.filename!r} is not part of a gpudl model file (expected config.npy, "
                           f"names.npy, weight_<i>.npy and optimizer_<slot>.npy)")
        if name in members:
            raise _Refusal(f"member {info.filename!r} appears twice")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refusal(f"member {info.filename!r} is encrypted or compressed with method {info.compress_type}; "
                           f"expected stored or deflated")
        if limits.too_expanded(info.file_size, info.compress_size):
            raise _Refusal(f"member {info.filename!r} declares {info.file_size} bytes but stores only "
                           f"{info.compress_size}: refusing a possible zip bomb (more than "
                           f"{limits.MAX_EXPANSION}x expansion)")
        members[name] = info
    if "config" not in members:
        raise _Refusal("it has no config.npy member: not a gpudl model file")
    return members


MEMBER = re.compile(r"weight_(0|[1-9][0-9]{0,8})|optimizer_[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class _Header:
    """What a .npy member declares, read from its header alone."""

    member: str
    shape: tuple
    fortran_order: bool
    dtype: np.dtype
    offset: int  # where the data starts in the member

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self):
        return f"dtype {self.dtype} and shape {self.shape}"


def _header(archive, info):
    """The member's .npy header, checked: version 1.0 or 2.0, a plain numeric dtype (no object,
    structured or sub-array dtype), a shape of non-negative integers whose byte size is exactly
    what the member holds after its header."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(
                    member, max_header_size=limits.MAX_NPY_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(
                    member, max_header_size=limits.MAX_NPY_HEADER_BYTES)
            else:
                raise ValueError(f"format version {version}; expected 1.0 or 2.0")
        except ValueError as error:
            raise _Refusal(f"member {info.filename!r} is not a readable .npy array: {error}") from None
        offset = member.tell()
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "fiu":
        raise _Refusal(f"member {info.filename!r} holds an array of dtype {dtype} (kind {dtype.kind!r}); only plain "
                       f"float and integer arrays are accepted")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _Refusal(f"member {info.filename!r} declares the shape {shape}")
    header = _Header(info.filename, tuple(shape), bool(fortran_order), dtype, offset)
    if offset + header.nbytes != info.file_size:
        raise _Refusal(f"member {info.filename!r} declares {header.describe()} ({header.nbytes} bytes) but holds "
                       f"{info.file_size - offset} bytes of data")
    return header


class _Arrays:
    """The members' headers, and their data read on demand (after every check)."""

    def __init__(self, archive, members, headers):
        self.archive, self.members, self.headers = archive, members, headers

    def names(self, prefix):
        return [name for name in self.headers if name.startswith(prefix)]

    def read(self, name):
        header, info = self.headers[name], self.members[name]
        data = bytearray(header.nbytes)
        with self.archive.open(info) as member:
            member.read(header.offset)
            view, done = memoryview(data), 0
            while done < len(data):
                count = member.readinto(view[done:])
                if not count:
                    raise _Refusal(f"member {info.filename!r} ends after {done} of {len(data)} bytes")
                done += count
            if member.read(1):  # also makes zipfile check the CRC
                raise _Refusal(f"member {info.filename!r} holds more than its header declares")
        array = np.frombuffer(data, dtype=header.dtype)
        return array.reshape(header.shape[::-1]).T if header.fortran_order else array.reshape(header.shape)


def _config(archive, members, headers):
    """The JSON configuration, checked against the limits and its top-level form."""
    header = headers["config"]
    if header.dtype != np.uint8 or len(header.shape) != 1:
        raise _Refusal(f"member 'config.npy' has {header.describe()}; expected uint8 bytes of shape (n,)")
    if header.nbytes > limits.MAX_JSON_BYTES:
        raise _Refusal(f"member 'config.npy' is {header.nbytes} bytes; at most {limits.MAX_JSON_BYTES} are accepted")
    config = _check(limits.parse_json, bytes(_Arrays(archive, members, headers).read("config")), "member 'config.npy'")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise _Refusal(f"it is not a {FORMAT} file")
    if not isinstance(config.get("model"), dict):
        raise _Refusal("member 'config.npy': 'model' must be a Sequential configuration (a JSON object)")
    if _layer_count(config["model"]) > limits.MAX_LAYERS:
        raise _Refusal(f"member 'config.npy': the model declares {_layer_count(config['model'])} layers; at most "
                       f"{limits.MAX_LAYERS} are accepted")
    _check(limits.counter, config.get("epochs_done"), "member 'config.npy': epochs_done")
    calls = config.get("dropout_calls")
    if not isinstance(calls, dict):
        raise _Refusal(f"member 'config.npy': dropout_calls is {calls!r}; expected an object of call counts")
    for index, count in calls.items():
        _check(limits.counter, count, f"member 'config.npy': dropout_calls[{index!r}]")
    seed = config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 64):
        raise _Refusal(f"member 'config.npy': seed is {seed!r}; expected an integer in [0, 2**64)")
    spec = config.get("compile")
    if spec is not None:
        if not isinstance(spec, dict) or not isinstance(spec.get("optimizer"), dict):
            raise _Refusal("member 'config.npy': compile must be an object with an optimizer")
        _check(limits.counter, spec.get("iterations"), "member 'config.npy': compile.iterations")
    return config


def _layer_count(model_config):
    """The layers a Sequential configuration declares, nested models' included."""
    count, pending = 0, [model_config]
    while pending:
        layers = pending.pop().get("layers")
        for entry in layers if isinstance(layers, list) else ():
            count += 1
            inner = entry.get("config") if isinstance(entry, dict) else None
            if isinstance(inner, dict) and "layers" in inner:
                pending.append(inner)
    return count


def _check(check, value, what):
    try:
        return check(value, what)
    except ValueError as error:
        raise _Refusal(str(error)) from None


def _restore(config, arrays, custom_objects, compile):
    from gpudl.frontend import losses, metrics

    sequential = registry.find("Sequential", ("model",))
    model_config = {**config["model"], "seed": config.get("seed", config["model"].get("seed"))}
    functional = "input_layers" in model_config
    expected = (_expected_functional_weights(model_config, custom_objects) if functional
                else _expected_weights(sequential, model_config, custom_objects))
    _check_weights(expected or [], arrays)
    # the shapes are now those of the file's members, whose sizes the zip's directory bounds
    if functional:
        model = registry.find("Functional", ("model",)).from_config(model_config, custom_objects)
    else:
        model = sequential.from_config(model_config if expected is not None else _unbuilt(model_config),
                                       custom_objects)
    if [(p.shape, p.dtype) for p in model.weights] != [(p.shape, p.dtype) for p in expected or []]:
        raise _Refusal("the rebuilt model's weights differ from the configuration's (a layer builds "
                       "differently when rebuilt)")
    spec = config["compile"]
    optimizer_arrays = arrays.names("optimizer_")
    if compile and spec:
        classes = registry.classes("optimizer")
        name = spec["optimizer"]["class_name"]
        if name not in classes:
            raise ValueError(f"Unknown optimizer class {name!r}; known: {', '.join(sorted(classes))}.")
        optimizer_config = dict(spec["optimizer"]["config"])
        learning_rate = optimizer_config["learning_rate"]
        if isinstance(learning_rate, dict) and "schedule" in learning_rate:  # files written before Keras's form
            optimizer_config["learning_rate"] = learning_rate["schedule"]
        optimizer = classes[name].from_config(optimizer_config, custom_objects)
        resolve = _deserialize_per_output(spec["metrics"], lambda m: metrics.deserialize(m, custom_objects))
        weighted = _deserialize_per_output(spec.get("weighted_metrics", []),
                                           lambda m: metrics.deserialize(m, custom_objects))
        loss = _deserialize_per_output(spec["loss"], lambda m: losses.deserialize(m, custom_objects))
        weights = {"loss_weights": spec["loss_weights"]} if spec.get("loss_weights") is not None else {}
        model.compile(optimizer=optimizer, loss=loss, metrics=resolve, weighted_metrics=weighted, **weights)
        _check_slots(model, arrays, optimizer_arrays)
    state = {"epochs_done": config["epochs_done"], "dropout_calls": config["dropout_calls"]}
    if compile and spec:
        state["iterations"] = spec["iterations"]
    weights = [arrays.read(f"weight_{i}") for i in range(len(expected or []))]
    slots = {name[len("optimizer_"):]: arrays.read(name) for name in optimizer_arrays} if "iterations" in state else {}
    try:
        training_state.restore(model, state, slots)
    except ValueError as error:
        raise _Refusal(f"member 'config.npy' or the optimizer slots: {error}") from None
    if weights:
        model.set_weights(weights)
    metadata = config.get("metadata")
    return model, metadata if isinstance(metadata, dict) else None


def _check_weights(expected, arrays):
    """Every weight the configuration implies is a member with exactly its dtype and shape (and
    name, where the file lists names); no other weight member is there."""
    present = arrays.names("weight_")
    wanted = [f"weight_{i}" for i in range(len(expected))]
    if sorted(present) != sorted(wanted):
        if not present:
            raise _Refusal(f"its configuration's model has {len(expected)} weights but the file holds none "
                           f"(refusing to return a freshly initialised model)")
        raise _Refusal(f"its configuration's model has {len(expected)} weights ({', '.join(wanted[:3])}"
                       f"{', ...' if len(wanted) > 3 else ''}); the file holds {len(present)}")
    for member, parameter in zip(wanted, expected):
        header = arrays.headers[member]
        want = (np.dtype(parameter.dtype), tuple(parameter.shape))
        if (header.dtype, header.shape) != want:
            raise _Refusal(f"member {header.member!r} has {header.describe()}; weight '{parameter.path}' needs "
                           f"dtype {want[0]} and shape {want[1]}")
    if "names" in arrays.headers:
        header = arrays.headers["names"]
        if header.dtype != np.uint8 or len(header.shape) != 1 or header.nbytes > limits.MAX_JSON_BYTES:
            raise _Refusal(f"member 'names.npy' has {header.describe()}; expected uint8 JSON bytes")
        names = _check(limits.parse_json, bytes(arrays.read("names")), "member 'names.npy'")
        if not isinstance(names, list):
            raise _Refusal(f"member 'names.npy' holds {type(names).__name__}; expected a JSON list of weight names")
        paths = [p.path for p in expected]
        if names != paths:
            wrong = next((i for i, (a, b) in enumerate(zip(names, paths)) if a != b), min(len(names), len(paths)))
            raise _Refusal(f"member 'names.npy' lists {len(names)} weights whose #{wrong} is "
                           f"{names[wrong] if wrong < len(names) else None!r}; the model's weight #{wrong} is "
                           f"{paths[wrong] if wrong < len(paths) else None!r} (expected the names {paths})")


def _check_slots(model, arrays, present):
    """The optimizer's slot members have exactly its slots' dtypes and shapes, none missing."""
    optimizer = model.optimizer
    names = tuple(optimizer.slot_names) if model.built else ()
    wanted = {f"optimizer_{name}" for name in names}
    if set(present) != wanted:
        missing, extra = sorted(wanted - set(present)), sorted(set(present) - wanted)
        raise _Refusal(f"{type(optimizer).__name__} needs the members {sorted(n + '.npy' for n in wanted)}; "
                       + (f"missing {[n + '.npy' for n in missing]}" if missing else "")
                       + ("; " if missing and extra else "")
                       + (f"unexpected {[n + '.npy' for n in extra]}" if extra else ""))
    if names and not optimizer.slots:
        optimizer.build(model.arena)
    for name in names:
        header, slot = arrays.headers[f"optimizer_{name}"], optimizer.slots[name]
        want = (np.dtype(slot.dtype), tuple(slot.shape))
        if (header.dtype, header.shape) != want:
            raise _Refusal(f"member {header.member!r} has {header.describe()}; optimizer slot {name!r} needs "
                           f"dtype {want[0]} and shape {want[1]}")


DRY_BUILD_BYTES = 256 << 20  # real zero weights of a shape-only build, in all; beyond: zero-strided views
DRY_WEIGHT_ELEMENTS = 1 << 20  # a weight larger than this is always a zero-strided view


def _expected_weights(sequential, config, custom_objects):
    """The Parameters the configuration's model would have, built shape-only, or None when the
    configuration declares no input shape (the model is not built). Small weights are real zero
    arrays of the backend (a layer that learns its output shape by running one sample, as
    BatchNormalization does, runs its kernels on them: GPU kernels take only contiguous arrays)
    up to DRY_BUILD_BYTES in all; larger ones are zero-strided views, so a Dense asking for 100 GB
    costs nothing. Every layer's feature shape is checked against MAX_SAMPLE_ELEMENTS on the way."""
    shape = _input_shape(config)
    if shape is None:
        return None
    dry = sequential.from_config(_unbuilt(config), custom_objects)
    expected, budget = [], [DRY_BUILD_BYTES]
    for leaf in dry._leaves():
        _check_features(shape, f"the input of layer '{leaf.name}'")
        leaf.add_weight = _shape_only_weight(leaf, expected, budget)
        shape = tuple(leaf.build_for(shape, dry.dtype))
    _check_features(shape, "the model's output")
    return expected


def _expected_functional_weights(config, custom_objects):
    """The Parameters a functional configuration's model would have, its layers called shape-only
    (as _expected_weights does for a Sequential), in the order of config["layers"]. A model nested
    in it is refused here: gpudl's .npz holds functional models of layers."""
    functional = registry.find("Functional", ("model",))
    layers = functional.layers_from_config(config, custom_objects)
    per_layer, budget = {}, [DRY_BUILD_BYTES]
    for name, layer in layers.items():
        if hasattr(layer, "_leaves"):
            raise _Refusal(f"member 'config.npy': layer {name!r} is a model; gpudl's .npz holds functional models "
                           f"of layers (save models inside models as .keras)")
        if type(layer).__name__ == "InputLayer":
            _check_features(tuple(layer.feature_shape), f"input {name!r}")
            continue
        per_layer[name] = []
        layer.add_weight = _shape_only_weight(layer, per_layer[name], budget)
    functional.call_layers_from_config(config, layers)
    return [p for name in layers if name in per_layer for p in per_layer[name]]


def _shape_only_weight(layer, expected, budget):
    """A stand-in for `layer.add_weight` that records each weight's shape and dtype; `budget` is
    the one-element list of bytes left for real zero arrays."""
    from gpudl.frontend.layers.base import Parameter

    def add_weight(name=None, shape=None, initializer=None, regularizer=None, trainable=True, constraint=None,
                   dtype=None):
        name = name or "variable"
        dtype = np.dtype(dtype or layer.dtype or "float32")
        shape = tuple(int(d) for d in (shape or ()))
        if any(d < 0 for d in shape):
            raise _Refusal(f"layer '{layer.name}' asks for weight {name!r} of shape {shape}")
        xp, size = get_backend().xp, math.prod(shape)
        if size <= DRY_WEIGHT_ELEMENTS and size * dtype.itemsize <= budget[0]:
            budget[0] -= size * dtype.itemsize
            value = xp.zeros(shape, dtype)
        else:
            value = xp.broadcast_to(xp.zeros((), dtype), shape)
        parameter = Parameter(name, value, trainable=trainable, path=f"{layer.name}/{name}")
        layer._weights.append(parameter)
        expected.append(parameter)
        return parameter

    return add_weight


def _check_features(shape, where):
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape) or (
            math.prod(shape) > limits.MAX_SAMPLE_ELEMENTS):
        raise _Refusal(f"member 'config.npy': {where} has shape {shape}; expected positive integers with at most "
                       f"{limits.MAX_SAMPLE_ELEMENTS} elements in all")


def _input_shape(config):
    """The feature shape (no batch axis) a Sequential configuration declares, or None."""
    for key, drop in (("build_input_shape", 1), ("input_shape", 0)):
        if config.get(key):
            return _shape_of(config[key][drop:])
    layers = config.get("layers") or []
    if not layers or not isinstance(layers[0], dict):
        return None
    first = layers[0].get("config") or {}
    if layers[0].get("class_name") == "InputLayer":
        if first.get("batch_shape") or first.get("batch_input_shape"):
            return _shape_of((first.get("batch_shape") or first.get("batch_input_shape"))[1:])
        return _shape_of(first.get("shape") or first.get("input_shape"))
    if "layers" in first:
        return _input_shape(first)
    if first.get("input_dim") is not None:
        return _shape_of([first["input_dim"]])
    if first.get("batch_input_shape"):
        return _shape_of(first["batch_input_shape"][1:])
    return _shape_of(first["input_shape"]) if first.get("input_shape") else None


def _shape_of(dims):
    if not isinstance(dims, (list, tuple)) or not dims:
        raise _Refusal(f"member 'config.npy': the input shape {dims!r} is not a list of positive integers")
    shape = tuple(dims)
    _check_features(shape, "the input")
    return shape


def _unbuilt(config):
    """The configuration without any input shape (nested models' too): from_config then builds
    nothing, so nothing is allocated."""
    config = {key: value for key, value in config.items() if key not in ("build_input_shape", "input_shape")}
    layers = []
    for entry in config.get("layers") or []:
        if isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
            continue
        if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
            inner = entry["config"]
            declared = ("input_shape", "input_dim", "batch_input_shape")
            inner = _unbuilt(inner) if "layers" in inner else {
                key: value for key, value in inner.items() if key not in declared}
            entry = {**entry, "config": inner}
        layers.append(entry)
    return {**config, "layers": layers}
