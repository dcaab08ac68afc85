"""Functional: a model whose layers form a graph, `keras.Model(inputs, outputs)`.

    inputs = keras.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)        # each call records a node
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)                   # the nodes from outputs back to inputs

`forward` runs the nodes in topological order; `backward` runs them in reverse, summing the
gradients of a tensor that feeds several nodes (fan-out). A layer called at several nodes shares its
weights: each of its calls keeps its own forward cache, and its weight gradients add up. The
Trainer trains it as it trains a Sequential.
"""

from gpudl import random as gpudl_random
from gpudl import registry
from gpudl.backend import floatx
from gpudl.frontend.layers.input_layer import InputLayer
from gpudl.frontend.layers.node import KerasTensor
from gpudl.frontend.models.model import Model
from gpudl.naming import unique_name


def _single(tensors, argument):
    """The one KerasTensor of `tensors` (a tensor, or a list/tuple/dict of one)."""
    if isinstance(tensors, dict):
        tensors = list(tensors.values())
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            raise NotImplementedError(
                f"gpudl's functional models take one input and one output for now; `{argument}` has "
                f"{len(tensors)}. (Several inputs and outputs are the next step of the functional API.)")
        tensors = tensors[0]
    if not isinstance(tensors, KerasTensor):
        raise TypeError(f"`{argument}` must be symbolic tensors (keras.Input and layers called on it); "
                        f"received {tensors!r}.")
    return tensors


def topological_nodes(output, input_tensor):
    """The nodes from `input_tensor` to `output`, each after the nodes it reads (depth-first)."""
    order, seen = [], set()

    def visit(tensor):
        if tensor is input_tensor:
            return
        if tensor.node is None:
            raise ValueError(f"Graph disconnected: the output depends on the input {tensor!r}, which is not "
                             f"among the model's inputs.")
        node = tensor.node
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.inputs:
            visit(parent)
        order.append(node)

    visit(output)
    if output is input_tensor:
        raise ValueError("The model's output is its input: add layers between them.")
    return order


class Functional(Model):
    """A model built from symbolic tensors: `keras.Model(inputs, outputs, name=None)`.

    Args:
        inputs: the keras.Input the graph starts from (or a list/dict of one).
        outputs: the symbolic tensor the graph ends at (or a list/dict of one).
        name: model name.
    """

    def __init__(self, inputs, outputs, name=None, trainable=True, seed=None):
        self._input_tensor = _single(inputs, "inputs")
        self._output_tensor = _single(outputs, "outputs")
        self._nodes = topological_nodes(self._output_tensor, self._input_tensor)
        nested = [node.layer.name for node in self._nodes if isinstance(node.layer, Model)]
        if nested:
            raise NotImplementedError(f"Model {nested[0]!r} is used as a layer of a functional model: models inside "
                                      f"functional models are not in gpudl yet. Call its layers on the tensor instead.")
        self.name = name or unique_name("functional")
        self.seed = gpudl_random.new_seed() if seed is None else int(seed)
        self._weights, self._activity_loss = [], 0.0
        self.input_gradient_needed = True  # as a layer of another model
        unique = {}
        for node in self._nodes:
            unique.setdefault(id(node.layer), node.layer)
        self._graph_layers = list(unique.values())
        self._uses = {id(layer): sum(node.layer is layer for node in self._nodes) for layer in self._graph_layers}
        self._input_layer = InputLayer(batch_shape=self._input_tensor.shape, dtype=self._input_tensor.dtype,
                                       name=self._input_tensor.name)
        self._feature_shape = tuple(self._input_tensor.shape[1:])
        self._output_feature_shape = tuple(self._output_tensor.shape[1:])
        self.dtype = self._graph_layers[-1].dtype or floatx()
        self.built = False
        self.build(self._feature_shape)
        if not trainable:
            self.trainable = False

    @property
    def layers(self):
        """Keras's list: the InputLayer, then each layer once, in the order the graph runs."""
        return [self._input_layer, *self._graph_layers]

    def _sublayers(self):
        return self._graph_layers

    def _leaves(self):
        """The layers in the order the graph runs (the output's layer last), nested models expanded."""
        leaves = []
        for layer in self._graph_layers:
            leaves.extend(layer._leaves() if isinstance(layer, Model) else [layer])
        return leaves

    @property
    def input(self):
        return self._input_tensor

    @property
    def output(self):
        return self._output_tensor

    @property
    def inputs(self):
        return [self._input_tensor]

    @property
    def outputs(self):
        return [self._output_tensor]

    @property
    def input_shape(self):
        return tuple(self._input_tensor.shape)

    @property
    def output_shape(self):
        return tuple(self._output_tensor.shape)

    def build(self, input_shape=None):
        """Lay out the trainable parameters of every layer (built when called) in one arena."""
        # a layer that reads only the model's input gives no input gradient (nothing below it learns)
        deeper = {id(node.layer) for node in self._nodes if any(t is not self._input_tensor for t in node.inputs)}
        for layer in self._graph_layers:
            layer.input_gradient_needed = id(layer) in deeper
        self._lay_out()

    def build_for(self, input_shape, dtype):
        if tuple(input_shape) != self._feature_shape:
            raise ValueError(f"Model '{self.name}' expects inputs of shape {self.input_shape}; received "
                             f"(None, {', '.join(map(str, input_shape))}).")
        return self._output_feature_shape

    def output_feature_shape(self, input_shape):
        return self._output_feature_shape

    # -- running the graph ----------------------------------------------------------
    def forward(self, x, training=False, logits=False):
        """Run the nodes in order; `logits=True` stops the output's layer before its activation."""
        values = {id(self._input_tensor): x}
        self._caches = {}
        for node in self._nodes:
            layer = node.layer
            inputs = [values[id(t)] for t in node.inputs]
            argument = inputs if layer.takes_list else inputs[0]
            if logits and node.output is self._output_tensor:
                values[id(node.output)] = layer.forward(argument, training=training, logits=True)
            else:
                values[id(node.output)] = layer.forward(argument, training=training)
            if self._uses[id(layer)] > 1:  # its backward must see this call's cache
                self._caches[id(node)] = dict(layer.__dict__)
        return values[id(self._output_tensor)]

    def backward(self, dy):
        """Run the nodes in reverse, summing fan-out gradients and a shared layer's weight gradients."""
        grads = {id(self._output_tensor): dy}
        done = set()
        for node in reversed(self._nodes):
            layer = node.layer
            dy_node = grads.pop(id(node.output), None)
            if dy_node is None:
                continue
            if id(node) in self._caches:
                layer.__dict__.update(self._caches[id(node)])
            earlier = [p.grad.copy() for p in layer.trainable_weights] if id(layer) in done else None
            dx = layer.backward(dy_node)
            if earlier is not None:  # a shared layer: this call's gradient adds to the others'
                for p, grad in zip(layer.trainable_weights, earlier):
                    p.grad += grad
            done.add(id(layer))
            for tensor, grad in zip(node.inputs, dx if layer.takes_list else [dx]):
                if grad is None or tensor is self._input_tensor:
                    continue
                grads[id(tensor)] = grad if id(tensor) not in grads else grads[id(tensor)] + grad
        self.add_regularization_gradients()
        return None

    def get_config(self):
        raise NotImplementedError(
            f"Model '{self.name}': saving and describing a functional model (get_config, save, to_json, "
            f".keras) is not in gpudl yet; save its weights with model.save_weights or get_weights().")

    def _summary_rows(self):
        """(layer (type), output shape, parameters) of the InputLayer and each layer, as Keras lists them."""
        rows = [(f"{self._input_layer.name} ({type(self._input_layer).__name__})", str(self.input_shape), "0")]
        for layer in self._graph_layers:
            outputs = [node.output for node in self._nodes if node.layer is layer]
            shape = str(outputs[0].shape) if len(outputs) == 1 else "multiple"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}"))
        return rows


registry.register("model", (Functional,))
