"""gpudl.models, as keras.models: Model, Sequential, cloning, JSON and whole-model saving."""

import json

from gpudl.frontend.models import Model, Sequential
from gpudl.saving import load_model, save_model


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture and freshly initialized weights (Keras's rule:
    the weights are not copied; use `model.clone()` for a copy with the same weights)."""
    if input_tensors is not None or clone_function is not None:
        raise ValueError("clone_model: gpudl clones a model whole; `input_tensors` and `clone_function` are not "
                         "supported.")
    config = model.get_config()
    config = {**config, "seed": None}
    own_classes = {type(layer).__name__: type(layer) for layer in model._leaves()}
    if "input_layers" in config:  # a functional model
        return Model.from_config(config, own_classes)
    return Sequential.from_config(config, own_classes)


def model_from_json(json_string, custom_objects=None):
    """The (unbuilt-weights) model described by `model.to_json()`."""
    spec = json.loads(json_string)
    if isinstance(spec, dict) and spec.get("class_name") == "Functional":
        return Model.from_config(spec["config"], custom_objects)
    if not isinstance(spec, dict) or spec.get("class_name") != "Sequential":
        raise ValueError("model_from_json reads the JSON of a Sequential's or functional model's to_json(); "
                         f"received a description of "
                         f"{spec.get('class_name') if isinstance(spec, dict) else type(spec).__name__!r}.")
    return Sequential.from_config(spec["config"], custom_objects)


__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]
