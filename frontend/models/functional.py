"""Functional: a model whose layers form a graph, `keras.Model(inputs, outputs)`.

    inputs = keras.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)        # each call records a node
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)                   # the nodes from outputs back to inputs

Inputs and outputs may be one tensor, a list or a dict (flattened in Keras's order: a list as
given, a dict by sorted key). `forward` runs the nodes in topological order on one array per
input; `backward` runs them in reverse from one gradient per output, summing the gradients of a
tensor that feeds several nodes (fan-out). A layer called at several nodes shares its weights:
each of its calls keeps its own forward cache, and its weight gradients add up. A model is a layer
too (a node of another graph). Several inputs and outputs are trained through
gpudl.frontend.models.structure; a chain trains exactly as the same Sequential.
"""

import json

from gpudl import random as gpudl_random
from gpudl import registry
from gpudl.backend import floatx, get_backend
from gpudl.frontend.layers.input_layer import InputLayer
from gpudl.frontend.layers.node import KerasTensor, is_symbolic
from gpudl.frontend.models.functional_config import (create_layers, functional_config, functional_from_config,
                                                     summary_rows, with_dtype)
from gpudl.frontend.models.model import Model
from gpudl.frontend.models.structure import StructuredTraining, flatten_tensors
from gpudl.naming import unique_name


def topological_nodes(outputs, inputs):
    """The nodes from the tensors `inputs` to `outputs`, each after the nodes it reads (depth-first);
    refuses an output that does not depend on the inputs and an input no output depends on."""
    order, seen, reached = [], set(), set()
    input_ids = {id(t) for t in inputs}

    def visit(tensor):
        if id(tensor) in input_ids:
            reached.add(id(tensor))
            return
        if tensor.node is None:
            raise ValueError(f"Graph disconnected: the outputs depend on the input {tensor!r}, which is not among "
                             f"the model's inputs {[t.name for t in inputs]}.")
        node = tensor.node
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.inputs:
            visit(parent)
        order.append(node)

    for output in outputs:
        if id(output) in input_ids:
            raise ValueError(f"The model's output {output.name!r} is one of its inputs: add layers between them.")
        visit(output)
    unused = [t.name for t in inputs if id(t) not in reached]
    if unused:
        raise ValueError(f"Input {unused[0]!r} is disconnected: no output depends on it. Remove it from `inputs` "
                         f"or use it in the graph.")
    return order


def keras_layer_order(outputs, inputs):
    """Keras's order of `model.layers` (keras/src/ops/function.py map_graph): by depth, the longest
    path to an output, deepest first; ties in the order a depth-first walk from the outputs first
    meets them. A model input stands for its InputLayer. The order names the weights' HDF5 groups."""
    input_ids = {id(t) for t in inputs}
    first_met, post_order, finished = {}, [], set()

    def visit(tensor):
        is_input = id(tensor) in input_ids
        node, operation = (tensor, tensor) if is_input else (tensor.node, tensor.node.layer)
        if id(node) in finished:
            return
        first_met.setdefault(id(operation), (len(first_met), operation))
        parents = [] if is_input else node.inputs
        for parent in parents:
            visit(parent)
        finished.add(id(node))
        post_order.append((node, operation, parents))

    for output in outputs:
        visit(output)
    node_depth, operation_depth = {}, {}
    for node, operation, parents in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), operation_depth.get(id(operation), 0))
        operation_depth[id(operation)] = node_depth[id(node)] = depth
        for parent in parents:
            parent_node = parent if id(parent) in input_ids else parent.node
            node_depth[id(parent_node)] = max(depth + 1, node_depth.get(id(parent_node), 0))
    ranked = sorted(first_met.values(), key=lambda entry: (-operation_depth[id(entry[1])], entry[0]))
    return [operation for _, operation in ranked]


def _state_of(layer):
    """(object, copy of its __dict__) for a layer and, for a model, every layer inside it: the
    forward caches a shared layer's backward must see again."""
    state = [(layer, dict(layer.__dict__))]
    if isinstance(layer, Model):
        for inner in layer._sublayers():
            state.extend(_state_of(inner))
    return state


def _pass_gradient_down(layer, needed):
    """Whether `layer` must give the gradient of its input; a Sequential inside the graph that must
    then runs its backward through all its layers (alone it stops at its first learning layer)."""
    layer.input_gradient_needed = needed
    if needed and hasattr(layer, "_backward_start"):
        layer._backward_start = 0
        for leaf in layer._leaves():
            _pass_gradient_down(leaf, True)


class Functional(StructuredTraining, Model):
    """A model built from symbolic tensors: `keras.Model(inputs, outputs, name=None)`.

    Args:
        inputs: the keras.Input (or a list or dict of them) the graph starts from.
        outputs: the symbolic tensor (or a list or dict of them) the graph ends at.
        name: model name.
        trainable: whether its weights train.
        seed: seed of its dropout masks and shuffles (gpudl's).
    """

    def __init__(self, inputs, outputs, name=None, trainable=True, seed=None):
        self._inputs_struct, self._input_tensors = inputs, flatten_tensors(inputs, "inputs")
        self._outputs_struct, self._output_tensors = outputs, flatten_tensors(outputs, "outputs")
        self._nodes = topological_nodes(self._output_tensors, self._input_tensors)
        self.name = name or unique_name("functional")
        self.seed = gpudl_random.new_seed() if seed is None else int(seed)
        self._weights, self._activity_loss = [], 0.0
        order = keras_layer_order(self._output_tensors, self._input_tensors)
        input_ids = {id(t) for t in self._input_tensors}
        self._graph_layers = [layer for layer in order if id(layer) not in input_ids]
        self._uses = {id(layer): sum(node.layer is layer for node in self._nodes) for layer in self._graph_layers}
        self._readers = {}  # id(tensor) -> how many nodes read it
        for node in self._nodes:
            for tensor in node.inputs:
                self._readers[id(tensor)] = self._readers.get(id(tensor), 0) + 1
        self._input_layers = [InputLayer(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in self._input_tensors]
        standing_for = {id(t): layer for t, layer in zip(self._input_tensors, self._input_layers)}
        self._layer_order = [standing_for.get(id(layer), layer) for layer in order]
        self._input_layer = self._input_layers[0]
        self._feature_shape = tuple(self._input_tensors[0].shape[1:])
        self._output_feature_shape = tuple(self._output_tensors[0].shape[1:])
        self.output_names = [t.node.layer.name for t in self._output_tensors]  # Keras: the output layers' names
        self.dtype = self._graph_layers[-1].dtype or floatx()
        self.takes_list = len(self._input_tensors) > 1
        for node in self._nodes:  # a model called as a layer builds itself (its backward needs it)
            if isinstance(node.layer, Model) and not node.layer.built:
                node.layer.build(tuple(node.inputs[0].shape))
        self.built = False
        self.input_gradient_needed = False  # True once it is a layer of another model that needs it
        self.build(self._feature_shape)
        if not trainable:
            self.trainable = False

    @property
    def layers(self):
        """Keras's list: the InputLayers and each layer once, in Keras's order (keras_layer_order)."""
        return list(self._layer_order)

    def _sublayers(self):
        return self._graph_layers

    def _leaves(self):
        """The layers in Keras's order (that of get_weights), nested models expanded."""
        leaves = []
        for layer in self._graph_layers:
            leaves.extend(layer._leaves() if isinstance(layer, Model) else [layer])
        return leaves

    @property
    def input(self):
        """The inputs as given to keras.Model (a tensor, list or dict)."""
        return self._inputs_struct

    @property
    def output(self):
        """The outputs as given to keras.Model (a tensor, list or dict)."""
        return self._outputs_struct

    @property
    def inputs(self):
        return list(self._input_tensors)

    @property
    def outputs(self):
        return list(self._output_tensors)

    @property
    def input_shape(self):
        shapes = [tuple(t.shape) for t in self._input_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [tuple(t.shape) for t in self._output_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_gradient_needed(self):
        return self.__dict__.get("_input_gradient_needed", True)

    @input_gradient_needed.setter
    def input_gradient_needed(self, needed):
        """A layer that reads only the model's inputs gives no input gradient unless the model, as a
        layer of another model, must pass one down."""
        self._input_gradient_needed = bool(needed)
        inputs = {id(t) for t in self._input_tensors}
        deeper = {id(node.layer) for node in self._nodes if needed or any(id(t) not in inputs for t in node.inputs)}
        for layer in self._graph_layers:
            _pass_gradient_down(layer, id(layer) in deeper)

    def build(self, input_shape=None):
        """Lay out the trainable parameters of every layer (built when called) in one arena."""
        self._lay_out()

    def build_for(self, input_shape, dtype):
        """As a layer of another graph: check the input shapes, give the output shape."""
        shapes = [tuple(s) for s in (input_shape if self.takes_list else [input_shape])]
        expected = [tuple(t.shape[1:]) for t in self._input_tensors]
        if shapes != expected:
            received = [(None, *s) for s in shapes]
            raise ValueError(f"Model '{self.name}' expects inputs of shape {self.input_shape}; received "
                             f"{received[0] if len(received) == 1 else received}.")
        if len(self._output_tensors) > 1:
            raise ValueError(f"Model '{self.name}' has {len(self._output_tensors)} outputs: a model used as a layer "
                             f"of another graph must have one output in gpudl.")
        return self._output_feature_shape

    def output_feature_shape(self, input_shape):
        return self._output_feature_shape

    def __call__(self, x, training=False):
        """On symbolic tensors: a node of another graph. On arrays (one per input, a list or a dict
        by input name): the outputs as a backend array, or a list/dict of them as the outputs were given."""
        if is_symbolic(x):
            return self._call_symbolic(x)
        x = self._check_x(x, "x")
        return self._packed_outputs(self.forward(get_backend().asarray(x) if not isinstance(x, list)
                                                 else [get_backend().asarray(a) for a in x], training=bool(training)))

    # -- running the graph ----------------------------------------------------------
    def forward(self, x, training=False, logits=False):
        """Run the nodes in order on `x` (an array, or a list with one per input); `logits` (one flag,
        or one per output) stops an output's layer before its activation. One array, or a list with
        one per output."""
        arrays = x if isinstance(x, (list, tuple)) and len(self._input_tensors) > 1 else [x]
        values = {id(t): array for t, array in zip(self._input_tensors, arrays)}
        flags = logits if isinstance(logits, (list, tuple)) else [logits] * len(self._output_tensors)
        as_logits = {id(t) for t, flag in zip(self._output_tensors, flags) if flag}
        self._caches = {}
        for node in self._nodes:
            layer = node.layer
            inputs = [values[id(t)] for t in node.inputs]
            argument = inputs if layer.takes_list else inputs[0]
            if id(node.output) in as_logits:
                values[id(node.output)] = layer.forward(argument, training=training, logits=True)
            else:
                values[id(node.output)] = layer.forward(argument, training=training)
            if self._uses[id(layer)] > 1:  # its backward must see this call's cache
                self._caches[id(node)] = _state_of(layer)
        outputs = [values[id(t)] for t in self._output_tensors]
        return outputs[0] if len(outputs) == 1 else outputs

    def fusable_outputs(self):
        """Which outputs may hand the loss their logits: those no other node reads."""
        return [self._readers.get(id(t), 0) == 0 for t in self._output_tensors]

    def output_layers(self):
        return [t.node.layer for t in self._output_tensors]

    def backward(self, dy):
        """Run the nodes in reverse from `dy` (an array, or one per output, None for an output without
        a loss), summing fan-out gradients and a shared layer's weight gradients. Returns the gradient
        of each input when the model is a layer of another that needs it."""
        dys = dy if isinstance(dy, (list, tuple)) and len(self._output_tensors) > 1 else [dy]
        grads = {}
        for tensor, grad in zip(self._output_tensors, dys):
            if grad is not None:
                grads[id(tensor)] = grad if id(tensor) not in grads else grads[id(tensor)] + grad
        inputs = {id(t) for t in self._input_tensors}
        done = set()
        for node in reversed(self._nodes):
            layer = node.layer
            dy_node = grads.pop(id(node.output), None)
            if dy_node is None:
                continue
            if id(node) in self._caches:
                for obj, state in self._caches[id(node)]:
                    obj.__dict__.update(state)
            earlier = [p.grad.copy() for p in layer.trainable_weights] if id(layer) in done else None
            dx = layer.backward(dy_node)
            if earlier is not None:  # a shared layer: this call's gradient adds to the others'
                for p, grad in zip(layer.trainable_weights, earlier):
                    p.grad += grad
            done.add(id(layer))
            for tensor, grad in zip(node.inputs, dx if layer.takes_list else [dx]):
                if grad is None or (id(tensor) in inputs and not self.input_gradient_needed):
                    continue
                grads[id(tensor)] = grad if id(tensor) not in grads else grads[id(tensor)] + grad
        self.add_regularization_gradients()
        if not self.input_gradient_needed:
            return None
        dx = [grads.get(id(t)) for t in self._input_tensors]
        return dx[0] if len(dx) == 1 else dx

    def get_config(self):
        """Keras's functional config (gpudl.frontend.models.functional_config)."""
        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None, layers=None):
        return functional_from_config(cls, config, custom_objects, layers)

    @staticmethod
    def layers_from_config(config, custom_objects=None):
        """{name: layer} of a config's layers, made but not yet called (a loader's dry build)."""
        return create_layers(config, custom_objects)

    @staticmethod
    def call_layers_from_config(config, layers):
        """Call `layers` (layers_from_config's) node by node as the config says: each builds once."""
        functional_from_config(None, config, None, layers)

    def to_json(self, **kwargs):
        """The model as Keras's serialize_keras_object gives it (module, class_name, config,
        registered_name, build_config, compile_config), as JSON; gpudl.models.model_from_json reads it
        back (architecture only, as Keras)."""
        return json.dumps({"module": "keras.src.models.functional", "class_name": "Functional",
                           "config": self.get_config(), "registered_name": "Functional",
                           "build_config": {"input_shape": None}, "compile_config": None}, **kwargs)

    def clone(self, dtype=None, custom_objects=None):
        """A copy with the same configuration and weights (optionally in another dtype), compiled as
        this one when it is."""
        config = with_dtype(self.get_config(), dtype or self.dtype)
        twin = type(self).from_config({**config, "seed": self.seed},
                                      {**{type(layer).__name__: type(layer) for layer in self._leaves()},
                                       **(custom_objects or {})})
        twin.set_weights(self.get_weights())
        if self.compiled:
            optimizer = self.optimizer
            twin.compile(optimizer=type(optimizer)(**{**optimizer.get_config(), "learning_rate": optimizer._learning_rate}),
                         **self._compile_arguments)
        return twin

    def _summary_rows(self):
        return summary_rows(self)



registry.register("model", (Functional,))
