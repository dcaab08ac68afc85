"""gpudl.saving, as keras.saving: whole models, weights, and objects by name.

One dispatch by suffix: `.keras` is a Keras 3 archive (keras_archive), `.onnx` an inference graph
(onnx_export, through `model.export`), `.weights.h5` the weights alone (weights_file), anything
else gpudl's own `.npz` with the exact-resume training state (npz, training_state). No format
uses pickle, and loading never runs code from a file: classes come from gpudl.registry by name.
"""

import os

from gpudl.registry import CustomObjectScope, custom_object_scope, find, get_custom_objects, register_keras_serializable
from gpudl.saving.atomic import write_atomically
from gpudl.saving.weights_file import WEIGHTS_SUFFIX, load_weights, save_weights

__all__ = ["CustomObjectScope", "WEIGHTS_SUFFIX", "custom_object_scope", "deserialize_keras_object", "export",
           "get_custom_objects", "load_model", "load_weights", "register_keras_serializable", "save_model",
           "save_weights", "serialize_keras_object", "write_atomically"]

LEGACY_SUFFIXES = (".h5", ".hdf5")


def save_model(model, filepath, overwrite=True, **kwargs):
    """Write `model` to `filepath` atomically: a Keras 3 archive for a `.keras` path, else
    gpudl's own npz with the exact-resume state."""
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    if path.endswith(LEGACY_SUFFIXES):
        raise ValueError(f"Cannot save to {path!r}: the legacy Keras HDF5 model format is not supported. "
                         f"Use a '.keras' path (a Keras 3 archive) or '.npz' (gpudl's own format, which "
                         f"also resumes training exactly).")
    if path.endswith(".keras"):
        from gpudl.saving.keras_archive import save_keras_archive

        return save_keras_archive(model, path)
    from gpudl.saving.npz import save_npz

    save_npz(model, path)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild the model saved at `filepath`, with its weights, optimizer state and counters:
    a Keras 3 archive (`.keras`) or gpudl's npz. Nothing in the file is executed."""
    path = os.fspath(filepath)
    custom_objects = {**get_custom_objects(), **(custom_objects or {})}
    if path.endswith(".keras"):
        from gpudl.saving.keras_archive import load_keras_archive

        return load_keras_archive(path, custom_objects=custom_objects, compile=compile)
    from gpudl.saving.npz import load_npz

    return load_npz(path, custom_objects, compile)


def export(model, filepath, format="onnx"):
    """An inference graph of `model` at `filepath`; format="onnx" (opset 17)."""
    from gpudl.errors import invalid_value

    if format != "onnx":
        raise invalid_value("format", "'onnx'", format, f"export of '{model.name}'")
    from gpudl.saving.onnx_export import export_onnx

    export_onnx(model, filepath)


def serialize_keras_object(obj):
    """{"module", "class_name", "config", "registered_name"} of a gpudl object with get_config."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if not hasattr(obj, "get_config"):
        raise TypeError(f"Cannot serialize {obj!r}: it has no get_config().")
    cls = type(obj)
    return {"module": cls.__module__, "class_name": cls.__name__, "config": obj.get_config(),
            "registered_name": getattr(cls, "_registered_name", cls.__name__)}


# the kinds serialize_keras_object's names are looked up in, the first match winning (Keras's
# `Identity` is the initializer here, as `keras.saving.deserialize_keras_object` resolves it)
OBJECT_KINDS = ("schedule", "regularizer", "optimizer", "loss", "initializer", "layer", "model")


def deserialize_keras_object(config, custom_objects=None):
    """The object described by serialize_keras_object's dict, built only from gpudl's own classes,
    registered ones and `custom_objects` (a class is looked up by name, never imported)."""
    if config is None or isinstance(config, (int, float, bool)):
        return config
    if isinstance(config, str):
        name, kwargs = config, {}
    elif isinstance(config, dict) and "class_name" in config:
        registered = config.get("registered_name")
        found = registered is not None and find(registered, OBJECT_KINDS, custom_objects) is not None
        name = registered if found else config["class_name"]
        kwargs = config.get("config") or {}
    else:
        raise ValueError(f"Cannot deserialize {config!r}: expected a dict with 'class_name' and 'config'.")
    cls = find(name, OBJECT_KINDS, custom_objects)
    if cls is None:
        raise ValueError(f"Unknown object {name!r}: register it with gpudl.saving.register_keras_serializable "
                         f"or pass it in custom_objects.")
    return cls.from_config(kwargs) if hasattr(cls, "from_config") else cls(**kwargs)
