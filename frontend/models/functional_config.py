"""A functional model described and rebuilt: Keras 3's functional config and summary rows.

    {"name": ..., "trainable": ...,
     "layers": [{module, class_name, config, registered_name, "name": layer name,
                 "inbound_nodes": [{"args": [tensor or [tensors]], "kwargs": {}}, ...]}, ...],
     "input_layers": [name, node, 0] (or a list/dict of them), "output_layers": likewise}

A tensor in a node is `{"class_name": "__keras_tensor__", "config": {"shape", "dtype",
"keras_history": [layer name, node index, 0]}}`, the node index counting only the layer's calls that
belong to the model. In `input_layers` / `output_layers` a nested functional model's first call is
node 1: Keras gives every functional model a node of its own at 0,
which inbound_nodes do not count. The same layout is what keras/src/models/functional.py writes and reads.
"""

from gpudl import registry
from gpudl.frontend.layers.input_layer import InputLayer
from gpudl.frontend.models.model import Model

FUNCTIONAL_NODE_OFFSET = 1  # Keras's functional model owns node 0 (its inputs to its outputs)


def _is_functional(layer):
    return type(layer).__name__ == "Functional" or hasattr(layer, "_nodes") and isinstance(layer, Model)


def serialize_layer(layer):
    """Keras's serialized form of a layer or model: module, class_name, config, registered_name."""
    from gpudl.frontend.models.sequential import _serialize_layer

    if _is_functional(layer):
        return {"module": "keras.src.models.functional", "class_name": "Functional", "config": layer.get_config(),
                "registered_name": "Functional"}
    return _serialize_layer(layer)


def _node_indices(model):
    """id(node) -> its index among its layer's calls that belong to `model` (Keras's reindexing)."""
    own = {id(node) for node in model._nodes}
    indices = {}
    for layer in model._graph_layers:
        kept = [node for node in layer.__dict__.get("_inbound_nodes", []) if id(node) in own]
        indices.update({id(node): i for i, node in enumerate(kept)})
    return indices


def _history(model, tensor, indices, own_node=0):
    """[layer name, node index, 0] of a tensor of `model`'s graph; `own_node`: what a functional
    layer's own node adds to its index (1 in input_layers and output_layers, as Keras writes them)."""
    if tensor.node is None:  # a model input: its InputLayer's one node
        return [tensor.name, 0, 0]
    offset = own_node if _is_functional(tensor.node.layer) else 0
    return [tensor.node.layer.name, offset + indices[id(tensor.node)], 0]


def _map_structure(struct, function):
    if isinstance(struct, dict):
        return {key: function(struct[key]) for key in struct}
    if isinstance(struct, (list, tuple)):
        return [function(t) for t in struct]
    return function(struct)


def functional_config(model):
    """Keras's get_config of a functional model (see the module docstring)."""
    indices = _node_indices(model)

    def tensor_config(tensor):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(tensor.shape), "dtype": tensor.dtype or model.dtype,
                           "keras_history": _history(model, tensor, indices)}}

    layers = []
    own = {id(node) for node in model._nodes}
    for layer in model.layers:
        nodes = []
        for node in layer.__dict__.get("_inbound_nodes", []):
            if id(node) in own:
                tensors = [tensor_config(t) for t in node.inputs]
                nodes.append({"args": [tensors if layer.takes_list else tensors[0]], "kwargs": {}})
        layers.append({**serialize_layer(layer), "name": layer.name, "inbound_nodes": nodes})
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": _map_structure(model._inputs_struct, lambda t: _history(model, t, indices, 1)),
            "output_layers": _map_structure(model._outputs_struct, lambda t: _history(model, t, indices, 1))}


def _layer_from(entry, custom_objects):
    """The layer (or model, or InputLayer) an entry of config["layers"] describes."""
    from gpudl.frontend.models.sequential import Sequential

    name = entry["class_name"]
    if name == "InputLayer":
        return InputLayer.from_config(entry["config"])
    layer_class = registry.find(name, ("model", "layer"), custom_objects)
    if layer_class is None:
        known = {**registry.classes("layer"), **registry.classes("model"), **(custom_objects or {})}
        raise ValueError(f"Unknown layer class {name!r} (layer {entry.get('name')!r}): pass it in custom_objects. "
                         f"Known: {', '.join(sorted(known))}.")
    if issubclass(layer_class, (Sequential,)) or name == "Functional":
        return layer_class.from_config(entry["config"], custom_objects)
    return layer_class.from_config(entry["config"])


def create_layers(config, custom_objects=None):
    """{name: layer} of every entry of config["layers"], created (not yet called: unbuilt)."""
    return {entry["name"]: _layer_from(entry, custom_objects) for entry in config["layers"]}


def functional_from_config(cls, config, custom_objects=None, layers=None):
    """The functional model (of class `cls`) a config describes, its layers called node by node in the
    order their inputs become available (Keras's functional_from_config). `layers`: layers already
    made from their entries, by name (a loader that checks and builds them itself); with cls=None the
    layers are only called (built), and nothing is returned."""
    created, outputs_of, pending = {}, {}, []  # outputs_of[(layer name, node index)] -> tensor
    for entry in config["layers"]:
        layer = (layers or {}).get(entry["name"]) or _layer_from(entry, custom_objects)
        created[entry["name"]] = layer
        if isinstance(layer, InputLayer):
            outputs_of[(entry["name"], 0)] = layer
        pending.extend((entry["name"], node) for node in entry.get("inbound_nodes", []))

    def tensor(history, where):
        name, index = history[0], history[1]
        if (name, index) not in outputs_of:
            return None
        return outputs_of[(name, index)]

    def arguments(node):
        def resolve(value):
            if isinstance(value, list):
                return [resolve(v) for v in value]
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                return tensor(value["config"]["keras_history"], value)
            return value
        return [resolve(arg) for arg in node.get("args", [])]

    calls = {name: 0 for name in created}
    while pending:
        waiting = []
        for name, node in pending:
            args = arguments(node)
            flat = [a for arg in args for a in (arg if isinstance(arg, list) else [arg])]
            if any(a is None for a in flat) or any(w[0] == name for w in waiting):
                waiting.append((name, node))
                continue
            layer = created[name]
            outputs_of[(name, calls[name])] = layer(args[0])
            calls[name] += 1
        if len(waiting) == len(pending):
            raise ValueError(f"Invalid Functional model configuration: the graph has loops or disconnected nodes. "
                             f"The nodes of {sorted({name for name, _ in waiting})} could not be resolved.")
        pending = waiting
    if cls is None:
        return None

    def lookup(history):
        own_node = FUNCTIONAL_NODE_OFFSET if _is_functional(created.get(history[0])) else 0
        found = tensor([history[0], history[1] - own_node], history)
        if found is None:
            raise ValueError(f"Invalid Functional model configuration: no tensor {history} among its layers' calls.")
        return found

    def map_tensors(struct):
        if isinstance(struct, list) and len(struct) == 3 and isinstance(struct[0], str):
            return lookup(struct)
        if isinstance(struct, dict):
            return {key: map_tensors(value) for key, value in struct.items()}
        return [map_tensors(value) for value in struct]

    return cls(map_tensors(config["input_layers"]), map_tensors(config["output_layers"]),
                      name=config.get("name"), trainable=config.get("trainable", True), seed=config.get("seed"))


def with_dtype(config, dtype):
    """The config with every layer (and input, nested models' too) in `dtype`."""
    layers = []
    for entry in config["layers"]:
        inner = dict(entry["config"])
        if "layers" in inner:
            inner = with_dtype(inner, dtype)
        if "dtype" in inner or entry["class_name"] != "Sequential":
            inner["dtype"] = dtype
        layers.append({**entry, "config": inner})
    return {**config, "layers": layers}


def summary_rows(model):
    """(layer (type), output shape, parameters, connected to) of each input and layer, as Keras's
    summary lists them: the inputs of each call as `layer[node][0]`."""
    rows = []
    own = {id(node) for node in model._nodes}

    def reference(tensor):
        if tensor.node is None:
            return f"{tensor.name}[0][0]"
        producer = tensor.node.layer
        return f"{producer.name}[{producer._inbound_nodes.index(tensor.node)}][0]"

    for layer in model.layers:
        if isinstance(layer, InputLayer):
            rows.append((f"{layer.name} (InputLayer)", str(tuple(layer.shape)), "0", "-"))
            continue
        nodes = [node for node in layer.__dict__.get("_inbound_nodes", []) if id(node) in own]
        shapes = {tuple(node.output.shape) for node in nodes}
        shape = str(shapes.pop()) if len(shapes) == 1 else "multiple"
        connected = ", ".join(reference(t) for node in nodes for t in node.inputs)
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}", connected))
    return rows
