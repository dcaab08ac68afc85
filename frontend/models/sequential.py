"""Sequential: a stack of layers, each feeding the next (structure only; the Trainer trains it).

Structure: add / pop / build (every layer, then one parameter arena), forward and backward
through the chain, and the description Keras gives it (get_config, to_json, summary, clone).
"""

import json

import numpy as np

from gpudl import random as gpudl_random
from gpudl import registry
from gpudl.backend import floatx
from gpudl.errors import invalid_value
from gpudl.frontend import losses as losses_module
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers.input import Input
from gpudl.frontend.layers.input_layer import InputLayer
from gpudl.frontend.models.model import Model
from gpudl.naming import unique_name


class Sequential(Model):
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
        self._weights = []  # a model's weights are its layers' (Layer.weights)
        self._activity_loss = 0.0
        self._feature_shape = None  # the input shape without the batch axis
        self._input_layer = None  # the InputLayer Keras lists first in the config
        self.built = False
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
            self._feature_shape = tuple(layer.feature_shape)
            self._input_layer = layer if isinstance(layer, InputLayer) else InputLayer(
                shape=layer.feature_shape, dtype=self.dtype, name=getattr(layer, "name", None))
            return
        if isinstance(layer, Model) and not isinstance(layer, Sequential):
            raise NotImplementedError(f"Sequential '{self.name}': a functional model as a layer of a Sequential is not "
                                      f"in gpudl yet; add its layers, or call it in a functional graph.")
        if not isinstance(layer, Layer):
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
        for layer in leaves:
            shape = layer.build_for(shape, self.dtype)
        self._output_feature_shape = shape
        # backward stops at the first layer with parameters: nothing below it learns
        with_params = [i for i, layer in enumerate(leaves) if any(p.trainable for p in layer.weights)]
        self._backward_start = (with_params or [len(leaves)])[0]
        for index, layer in enumerate(leaves):
            layer.input_gradient_needed = index > self._backward_start
        self._lay_out()

    @property
    def input_shape(self):
        """(None, features...) once known, as Keras."""
        return None if self._feature_shape is None else (None, *self._feature_shape)

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError(f"Model '{self.name}' has no output shape until it is built.")
        return (None, *self._output_feature_shape)

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
        self.add_regularization_gradients()
        return dy

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
        layers = []
        for entry in config["layers"]:
            name = entry["class_name"]
            layer_class = registry.find(name, ("model", "layer"), custom_objects)
            if layer_class is None:
                known = {**registry.classes("layer"), **registry.classes("model"), **(custom_objects or {})}
                raise ValueError(f"Unknown layer class {name!r}: pass it in custom_objects. "
                                 f"Known: {', '.join(sorted(known))}.")
            if issubclass(layer_class, Sequential):
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

    def _summary_rows(self):
        """(layer (type), output shape, parameters) of each layer, as Keras lists them."""
        rows, shape = [], self._feature_shape
        for layer in self.layers:
            shape = layer.output_feature_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", f"(None, {', '.join(map(str, shape))})",
                         f"{layer.count_params():,}"))
        return rows

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


registry.register("model", (Sequential,))
