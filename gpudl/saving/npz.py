"""gpudl's own model file: one .npz (a zip of .npy arrays, no pickle) holding the JSON
configuration and every array (weights, optimizer slots and step, random layers' call counters,
epochs done: see training_state). Loading builds only registered classes (and those in
`custom_objects`) and reads arrays with allow_pickle=False, so it runs no code from the file."""

import json
import os
import warnings
import zipfile

import numpy as np

from gpudl import registry
from gpudl.saving import training_state
from gpudl.saving.atomic import write_atomically

FORMAT, VERSION = "gpudl-model", 1


def save_npz(model, path):
    """Write `model` (configuration, weights, training state) to `path` atomically."""
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
        config["compile"] = {
            "optimizer": {"class_name": type(optimizer).__name__, "config": optimizer_config},
            "iterations": iterations,
            "loss": model.loss if isinstance(model.loss, str) else losses.serialize(model.compiled_loss),
            "metrics": [m if isinstance(m, str) else metrics.serialize(m) for m in model._metric_names],
            "weighted_metrics": [m if isinstance(m, str) else metrics.serialize(m)
                                 for m in model._weighted_metric_names],
        }
        arrays.update({f"optimizer_{name}": slot for name, slot in slots.items()})
    arrays["config"] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    write_atomically(os.fspath(path), lambda f: np.savez(f, **arrays))


def load_npz(path, custom_objects=None, compile=True):
    """The model saved by save_npz at `path`, with its weights and training state."""
    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(bytes(data["config"]).decode("utf-8"))
            arrays = {name: data[name] for name in data.files if name != "config"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot load {path!r}: not a readable gpudl model file "
                         f"(truncated or corrupted?): {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"Cannot load {path!r}: it is not a {FORMAT} file.")
    try:
        return _restore(config, arrays, custom_objects, compile)
    except (KeyError, TypeError, IndexError) as error:
        raise ValueError(f"Cannot load {path!r}: its configuration is malformed ({error!r}).") from None


def _restore(config, arrays, custom_objects, compile):
    from gpudl.frontend import losses, metrics

    sequential = registry.find("Sequential", ("model",))
    model = sequential.from_config({**config["model"], "seed": config.get("seed", config["model"].get("seed"))},
                                   custom_objects)
    weights = [arrays[f"weight_{i}"] for i in range(sum(1 for k in arrays if k.startswith("weight_")))]
    if weights:
        if not model.built:
            raise ValueError("The saved model has weights but no input shape.")
        model.set_weights(weights)
    state = {"epochs_done": config["epochs_done"], "dropout_calls": config["dropout_calls"]}
    spec = config["compile"]
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
        resolve = [m if isinstance(m, str) else metrics.deserialize(m, custom_objects) for m in spec["metrics"]]
        weighted = [m if isinstance(m, str) else metrics.deserialize(m, custom_objects)
                    for m in spec.get("weighted_metrics", [])]
        loss = spec["loss"] if isinstance(spec["loss"], str) else losses.deserialize(spec["loss"], custom_objects)
        model.compile(optimizer=optimizer, loss=loss, metrics=resolve, weighted_metrics=weighted)
        state["iterations"] = spec["iterations"]
    slots = {key[len("optimizer_"):]: array for key, array in arrays.items() if key.startswith("optimizer_")}
    training_state.restore(model, state, slots)
    return model
