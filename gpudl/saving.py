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


def save_model(model, path):
    """Write `model` to `path` atomically."""
    from gpudl.frontend import losses, schedules
    from gpudl.frontend.layers.dropout import Dropout

    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    config = {"format": FORMAT, "version": VERSION, "model": model.get_config(), "compile": None,
              "epochs_done": model.epochs_done,
              "dropout_calls": {str(i): layer.calls for i, layer in enumerate(model.layers)
                                if isinstance(layer, Dropout)}}
    if model.compiled:
        optimizer = model.optimizer
        learning_rate = optimizer.learning_rate
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            learning_rate = {"schedule": schedules.serialize(learning_rate)}
        elif callable(learning_rate):
            warnings.warn(f"The learning rate {learning_rate!r} is a plain callable and cannot be saved; "
                          f"its current value is saved instead. Use a gpudl.schedules object to keep it.")
            learning_rate = optimizer.current_learning_rate()
        config["compile"] = {
            "optimizer": {"class_name": type(optimizer).__name__,
                          "config": {**optimizer.hyperparameters(), "learning_rate": learning_rate}},
            "iterations": optimizer.iterations,
            "loss": losses.serialize(model.loss),
            "metrics": [m if isinstance(m, str) else m.name for m in model._metric_names],
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


def load_model(path, custom_objects=None, compile=True):
    """Rebuild the model saved at `path`, with its weights, optimizer state and counters."""
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
    from gpudl.frontend import losses, optimizers, schedules
    from gpudl.frontend.models import Sequential

    model = Sequential.from_config(config["model"], custom_objects)
    weights = [arrays[f"weight_{i}"] for i in range(sum(1 for k in arrays if k.startswith("weight_")))]
    if weights:
        if not model.built:
            raise ValueError("The saved model has weights but no input shape.")
        model.set_weights(weights)
    model.epochs_done = int(config["epochs_done"])
    for index, calls in config["dropout_calls"].items():
        model.layers[int(index)].calls = int(calls)
    spec = config["compile"]
    if compile and spec:
        classes = {cls.__name__: cls for cls in optimizers.OPTIMIZERS.values()}
        name = spec["optimizer"]["class_name"]
        if name not in classes:
            raise ValueError(f"Unknown optimizer class {name!r}; known: {', '.join(sorted(classes))}.")
        optimizer_config = dict(spec["optimizer"]["config"])
        if isinstance(optimizer_config["learning_rate"], dict):
            optimizer_config["learning_rate"] = schedules.deserialize(optimizer_config["learning_rate"]["schedule"])
        optimizer = classes[name](**optimizer_config)
        model.compile(optimizer=optimizer, loss=losses.deserialize(spec["loss"]), metrics=spec["metrics"])
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
