"""Saving and loading models: one .npz file (a zip of .npy arrays, no pickle) holding
the JSON configuration and every array (weights, optimizer slots and step, dropout
step counters, epochs done). Loading builds only registered classes (and those in
`custom_objects`) and reads arrays with allow_pickle=False, so it runs no code from
the file. Writes go to a temporary file that is renamed over the target, so a crash
mid-save leaves the previous file whole."""

import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from gpudl.backend import get_backend

FORMAT, VERSION = "gpudl-model", 1


def save_model(model, filepath, overwrite=True, **kwargs):
    """Write `model` to `filepath` atomically: a Keras 3 archive for a `.keras` path (see
    gpudl.keras_archive), else gpudl's own npz with the exact-resume state."""
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    if path.endswith(".h5") or path.endswith(".hdf5"):
        raise ValueError(f"Cannot save to {path!r}: the legacy Keras HDF5 model format is not supported. "
                         f"Use a '.keras' path (a Keras 3 archive) or '.npz' (gpudl's own format, which "
                         f"also resumes training exactly).")
    if path.endswith(".keras"):
        from gpudl.keras_archive import save_keras_archive

        return save_keras_archive(model, path)
    _save_npz(model, path)


def _save_npz(model, path):
    from gpudl.frontend import losses, metrics

    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    config = {"format": FORMAT, "version": VERSION, "model": model.get_config(), "seed": model.seed, "compile": None,
              "epochs_done": model.epochs_done,
              # training-call counters of the random layers (dropout, noise): exact resume
              "dropout_calls": {str(i): layer.calls for i, layer in enumerate(model._leaves())
                                if hasattr(layer, "calls")}}
    if model.compiled:
        optimizer = model.optimizer
        optimizer_config = optimizer.get_config()  # a schedule comes serialized
        if callable(optimizer_config["learning_rate"]):
            warnings.warn(f"The learning rate {optimizer_config['learning_rate']!r} is a plain callable and cannot "
                          f"be saved; its current value is saved instead. Use a gpudl.schedules object to keep it.")
            optimizer_config["learning_rate"] = optimizer.current_learning_rate()
        config["compile"] = {
            "optimizer": {"class_name": type(optimizer).__name__, "config": optimizer_config},
            "iterations": optimizer.iterations,
            "loss": model.loss if isinstance(model.loss, str) else losses.serialize(model.compiled_loss),
            "metrics": [m if isinstance(m, str) else metrics.serialize(m) for m in model._metric_names],
            "weighted_metrics": [m if isinstance(m, str) else metrics.serialize(m)
                                 for m in model._weighted_metric_names],
        }
        for name in optimizer.slot_names if model.built and optimizer.slots else ():
            arrays[f"optimizer_{name}"] = get_backend().to_numpy(optimizer.slots[name])
    arrays["config"] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    write_atomically(os.fspath(path), lambda f: np.savez(f, **arrays))


def write_atomically(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it over `path`: a crash
    mid-write leaves the previous file whole."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".gpudl-save-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild the model saved at `filepath`, with its weights, optimizer state and counters:
    a Keras 3 archive (`.keras`) or gpudl's npz. Nothing in the file is executed."""
    path = filepath
    custom_objects = {**_CUSTOM_OBJECTS, **(custom_objects or {})}
    if os.fspath(path).endswith(".keras"):
        from gpudl.keras_archive import load_keras_archive

        return load_keras_archive(os.fspath(path), custom_objects=custom_objects, compile=compile)
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            config = json.loads(bytes(data["config"]).decode("utf-8"))
            arrays = {name: data[name] for name in data.files if name != "config"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot load {os.fspath(path)!r}: not a readable gpudl model file "
                         f"(truncated or corrupted?): {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"Cannot load {os.fspath(path)!r}: it is not a {FORMAT} file.")
    try:
        return _restore(config, arrays, custom_objects, compile)
    except (KeyError, TypeError, IndexError) as error:
        raise ValueError(f"Cannot load {os.fspath(path)!r}: its configuration is malformed ({error!r}).") from None


def _restore(config, arrays, custom_objects, compile):
    from gpudl.frontend import losses, metrics, optimizers
    from gpudl.frontend.models import Sequential

    model = Sequential.from_config({**config["model"], "seed": config.get("seed", config["model"].get("seed"))},
                                   custom_objects)
    weights = [arrays[f"weight_{i}"] for i in range(sum(1 for k in arrays if k.startswith("weight_")))]
    if weights:
        if not model.built:
            raise ValueError("The saved model has weights but no input shape.")
        model.set_weights(weights)
    model.epochs_done = int(config["epochs_done"])
    for index, calls in config["dropout_calls"].items():
        model._leaves()[int(index)].calls = int(calls)
    spec = config["compile"]
    if compile and spec:
        classes = {cls.__name__: cls for cls in optimizers.OPTIMIZERS.values()}
        name = spec["optimizer"]["class_name"]
        if name not in classes:
            raise ValueError(f"Unknown optimizer class {name!r}; known: {', '.join(sorted(classes))}.")
        optimizer_config = dict(spec["optimizer"]["config"])
        learning_rate = optimizer_config["learning_rate"]
        if isinstance(learning_rate, dict) and "schedule" in learning_rate:  # files written before Keras's form
            optimizer_config["learning_rate"] = learning_rate["schedule"]
        optimizer = classes[name].from_config(optimizer_config, custom_objects)
        resolve = [m if isinstance(m, str) else metrics.deserialize(m, custom_objects) for m in spec["metrics"]]
        weighted = [m if isinstance(m, str) else metrics.deserialize(m, custom_objects)
                    for m in spec.get("weighted_metrics", [])]
        loss = spec["loss"] if isinstance(spec["loss"], str) else losses.deserialize(spec["loss"], custom_objects)
        model.compile(optimizer=optimizer, loss=loss, metrics=resolve,
                      weighted_metrics=weighted)
        optimizer.iterations = int(spec["iterations"])
        if model.built:
            for slot in optimizer.slot_names:
                saved = arrays.get(f"optimizer_{slot}")
                if saved is not None:
                    if saved.shape != optimizer.slots[slot].shape:
                        raise ValueError(f"Optimizer slot {slot!r} has shape {saved.shape}; the model "
                                         f"needs {optimizer.slots[slot].shape}.")
                    optimizer.slots[slot][...] = saved
    return model


WEIGHTS_SUFFIX = ".weights.h5"


def save_weights(model, filepath, overwrite=True):
    """Write the model's weights (get_weights order) to `filepath`, which must end in
    ".weights.h5" as in Keras. The content is gpudl's safe format: a zip of .npy arrays
    (np.savez), read back with allow_pickle=False."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"The filename must end in `{WEIGHTS_SUFFIX}`. Received: filepath={path}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    names = np.frombuffer(json.dumps([p.name for p in model.weights]).encode("utf-8"), dtype=np.uint8)
    write_atomically(path, lambda f: np.savez(f, names=names, **arrays))


def load_weights(model, filepath, skip_mismatch=False):
    """Read weights written by save_weights into `model`; every count and shape is checked
    (naming the weight and both shapes) before any weight changes."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"load_weights reads files written by save_weights, ending in `{WEIGHTS_SUFFIX}`. "
                         f"Received: filepath={path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            count = sum(1 for name in data.files if name.startswith("weight_"))
            weights = [data[f"weight_{i}"] for i in range(count)]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot load weights from {path!r}: not a gpudl weights file "
                         f"(truncated, or written by Keras's HDF5 writer?): {error}") from None
    params = model.weights
    if len(weights) != len(params):
        raise ValueError(f"{path!r} holds {len(weights)} weights but model '{model.name}' has {len(params)}.")
    if skip_mismatch:
        keep = [w if w.shape == p.shape else model.get_weights()[i] for i, (w, p) in enumerate(zip(weights, params))]
        weights = keep
    model.set_weights(weights)


_CUSTOM_OBJECTS = {}


def register_keras_serializable(package="Custom", name=None):
    """Decorator: register a user class (layer, loss, metric...) so that saved models naming
    it load without `custom_objects`, under "package>name" and its plain name."""
    def register(cls):
        registered = f"{package}>{name or cls.__name__}"
        if registered in _CUSTOM_OBJECTS:
            raise ValueError(f"{registered} has already been registered to {_CUSTOM_OBJECTS[registered]}")
        _CUSTOM_OBJECTS[registered] = cls
        _CUSTOM_OBJECTS[name or cls.__name__] = cls
        cls._registered_name = registered
        return cls
    return register


class custom_object_scope:
    """`with custom_object_scope({"MyLayer": MyLayer}):` makes those names known to loading
    for the duration of the block, as Keras's CustomObjectScope."""

    def __init__(self, custom_objects=None):
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self):
        self.saved = dict(_CUSTOM_OBJECTS)
        _CUSTOM_OBJECTS.update(self.custom_objects)
        return self

    def __exit__(self, *exc_info):
        _CUSTOM_OBJECTS.clear()
        _CUSTOM_OBJECTS.update(self.saved)


CustomObjectScope = custom_object_scope


def get_custom_objects():
    """The global dict of registered classes (name -> class); you may also add to it."""
    return _CUSTOM_OBJECTS


def serialize_keras_object(obj):
    """{"module", "class_name", "config", "registered_name"} of a gpudl object with get_config."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if not hasattr(obj, "get_config"):
        raise TypeError(f"Cannot serialize {obj!r}: it has no get_config().")
    cls = type(obj)
    return {"module": cls.__module__, "class_name": cls.__name__, "config": obj.get_config(),
            "registered_name": getattr(cls, "_registered_name", cls.__name__)}


def deserialize_keras_object(config, custom_objects=None):
    """The object described by serialize_keras_object's dict, built only from gpudl's own classes,
    registered ones and `custom_objects` (a class is looked up by name, never imported)."""
    if config is None or isinstance(config, (int, float, bool)):
        return config
    known = {**_known_classes(), **_CUSTOM_OBJECTS, **(custom_objects or {})}
    if isinstance(config, str):
        name, kwargs = config, {}
    elif isinstance(config, dict) and "class_name" in config:
        name = config.get("registered_name") if config.get("registered_name") in known else config["class_name"]
        kwargs = config.get("config") or {}
    else:
        raise ValueError(f"Cannot deserialize {config!r}: expected a dict with 'class_name' and 'config'.")
    if name not in known:
        raise ValueError(f"Unknown object {name!r}: register it with gpudl.saving.register_keras_serializable "
                         f"or pass it in custom_objects.")
    cls = known[name]
    return cls.from_config(kwargs) if hasattr(cls, "from_config") else cls(**kwargs)


def _known_classes():
    """gpudl's serializable classes by name."""
    from gpudl.frontend import initializers, layers, losses, optimizers, regularizers, schedules
    from gpudl.frontend.models import Sequential

    classes = {"Sequential": Sequential, **layers.LAYER_CLASSES}
    for module in (initializers, losses, optimizers, regularizers, schedules):
        classes.update({name: value for name, value in vars(module).items()
                        if isinstance(value, type) and hasattr(value, "get_config")})
    return classes
