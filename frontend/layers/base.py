"""The Layer base class and the Parameter it owns.

A layer is `build` (shapes and parameters), `forward`, `backward`:
    build(input_shape)             declare parameters with add_weight
    forward(x, training) -> y      keep what backward needs on self
    backward(dy) -> dx             write parameter gradients into `param.grad`; dx may be
                                   None when `self.input_gradient_needed` is False
`build` receives shapes without the batch axis; `layer.build((None, n))` with Keras's
batch axis works too (a leading None is dropped before a subclass's build sees it).
`compute_output_shape` takes and returns Keras's shapes with the batch axis; a layer
whose output shape differs from its input's overrides `output_feature_shape`, the
same per sample.
A layer written as in Keras, with `call(inputs, training=None)` (and `build`, `add_weight`,
`add_loss`), needs no backward: its forward runs `call` under PyTorch's autograd and its
backward is autograd's vector-Jacobian product (gpudl.frontend.autodiff); `build` then receives
Keras's shape with the batch axis, and layers held in its attributes are its sublayers.
The gradient checker (gpudl.gradient_check) verifies either kind of backward pass.

`layer(x, training=False)` builds the layer from x.shape on first use (weights on the
backend, in the layer's dtype, outside any model) and returns forward's output as a
host NumPy array.
"""

import functools

import numpy as np

from gpudl.backend import floatx, get_backend
from gpudl.errors import invalid_value
from gpudl.frontend import autodiff
from gpudl.frontend.layers import keras_call
from gpudl.frontend.layers.node import Node, is_symbolic
from gpudl.naming import snake_case, unique_name

def feature_shape(input_shape):
    """The shape without the batch axis: (None, 4) -> (4,); (4,) stays (4,)."""
    shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
    return shape[1:] if shape and shape[0] is None else shape


def _dtype_name(dtype):
    try:
        return np.dtype(dtype).name
    except TypeError:
        return repr(dtype)


class Parameter:
    """A weight of a layer, with what Keras code calls on a variable.

    `value` is the array: a backend array when the layer was built on its own, a view
    into the model's flat arena once a model is built (the arena rebinds it); `grad` is
    its gradient, alongside. The Parameter is a thin wrapper, not the array itself, so
    that code holding it always reaches the live weight:
        numpy()      a host NumPy copy
        assign(v)    shape-checked, then written in place into `value` (the arena view
                     stays shared with the model)
        shape, dtype ("float32"), name ("kernel"), path ("dense/kernel"), np.asarray(p)
    `regularizer` adds a penalty to the loss; `constraint` projects the value after
    each optimizer step (Layer.apply_constraints).
    """

    def __init__(self, name, value, trainable=True, regularizer=None, constraint=None, path=None):
        self.name = name
        self.path = path or name
        self.value = value
        self.grad = None
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint

    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def dtype(self):
        return np.dtype(self.value.dtype).name

    def numpy(self):
        return np.array(get_backend().to_numpy(self.value), copy=True)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(get_backend().to_numpy(self.value), dtype=dtype)

    def __getitem__(self, index):
        """A host copy of part of the weight, as Keras code reads a variable: `kernel[0][0]`."""
        return self.numpy()[index]

    def __len__(self):
        return self.shape[0]

    def assign(self, value):
        """Write `value` (same shape) into this weight in place; returns self."""
        backend = get_backend()
        value = value.value if isinstance(value, Parameter) else value
        array = backend.asarray(value if hasattr(value, "shape") else np.asarray(value), dtype=self.value.dtype)
        if tuple(array.shape) != self.shape:
            raise ValueError(f"Cannot assign to weight '{self.path}' of shape {self.shape} a value of shape "
                             f"{tuple(array.shape)}.")
        self.value[...] = array
        return self

    def __repr__(self):
        return f"<Parameter path={self.path} shape={self.shape} dtype={self.dtype} trainable={self.trainable}>"

    is_variable = True  # keras.ops reads it as its array, or as its autograd leaf inside a layer's call

    def _op(apply):
        def operator(self, other):  # on the array, or on the autograd leaf inside a layer's call
            return apply(autodiff.unwrap(self), autodiff.unwrap(other))

        return operator

    __add__, __radd__ = _op(lambda a, b: a + b), _op(lambda a, b: b + a)
    __sub__, __rsub__ = _op(lambda a, b: a - b), _op(lambda a, b: b - a)
    __mul__, __rmul__ = _op(lambda a, b: a * b), _op(lambda a, b: b * a)
    __truediv__, __rtruediv__ = _op(lambda a, b: a / b), _op(lambda a, b: b / a)
    __matmul__, __rmatmul__ = _op(lambda a, b: a @ b), _op(lambda a, b: b @ a)
    __pow__, __rpow__ = _op(lambda a, b: a ** b), _op(lambda a, b: b ** a)
    __lt__, __le__ = _op(lambda a, b: a < b), _op(lambda a, b: a <= b)
    __gt__, __ge__ = _op(lambda a, b: a > b), _op(lambda a, b: a >= b)
    del _op

    def __neg__(self):
        return -autodiff.unwrap(self)


def assign_weights(params, weights, owner):
    """Copy `weights` into `params` in order (Parameter.assign), all or nothing: the count, then
    every array (converts to a real numeric array of the weight's shape, and is finite in the
    weight's dtype, so no overflow to inf either) is checked before any weight changes; an error
    names `owner`, the weight and what was wrong."""
    weights = list(weights)
    if len(weights) != len(params):
        raise ValueError(f"{owner} has {len(params)} weights ({', '.join(p.name for p in params) or 'none'}); "
                         f"set_weights received a list of {len(weights)}.")
    arrays = [_checked_weight(p, w, owner) for p, w in zip(params, weights)]
    for p, array in zip(params, arrays):
        p.assign(array)


def _checked_weight(param, value, owner):
    """`value` as a host array in `param`'s dtype, or a ValueError naming the weight."""
    where = f"{owner} weight '{param.path}'"
    try:
        array = np.asarray(get_backend().to_numpy(value.value if isinstance(value, Parameter) else value))
    except (ValueError, TypeError) as error:  # a ragged list, an object that is no array
        raise ValueError(f"{where}: set_weights received a value that is not an array ({error}).") from None
    if array.dtype.kind not in "fiu":  # bool, complex, strings, objects, datetimes, structured arrays
        raise ValueError(f"{where}: set_weights received an array of dtype {array.dtype}; expected real numbers "
                         f"(a float or integer array).")
    if array.shape != param.shape:
        raise ValueError(f"{where} has shape {param.shape}; set_weights received an array of shape {array.shape}.")
    dtype = np.dtype(param.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    if dtype.kind == "f" and not np.isfinite(converted).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(converted))[0])
        source = array[index].item()
        reason = (f"{source!r} overflows {dtype} (max {np.finfo(dtype).max:.6g})" if np.isfinite(source)
                  else f"{source!r}")
        raise ValueError(f"{where}: set_weights received a non-finite value at index {index}: {reason}; "
                         f"expected finite values.")
    return converted


def _build_once(build):
    """Wraps a layer's build: drop Keras's batch axis, settle the dtype, build once,
    then set input_shape and built. A super().build(...) inside a build passes through."""

    @functools.wraps(build)
    def wrapper(self, input_shape):
        shape = feature_shape(input_shape)
        if getattr(self, "_building", False):
            return build(self, shape)
        if self.built:
            return None
        self.dtype = np.dtype(self.dtype or floatx()).name
        self._building = True
        try:
            build(self, (None, *shape) if self.uses_call() else shape)  # Keras code reads input_shape[-1]
        finally:
            self._building = False
        self.input_shape = shape
        self.built = True
        return None

    return wrapper


class Layer(keras_call.KerasCall):
    """Base class of all layers. See the module docstring for the contract.

    Args:
        name: unique name (default: the class name in snake_case, numbered).
        trainable: whether its weights train.
        dtype: "float32" or "float64" (default: the model's dtype, else gpudl.floatx()).
        input_shape, input_dim: accepted on a model's first layer, as in Keras
            (batch axis excluded); kept in `declared_input_shape` for the model.
    """

    def __init__(self, name=None, trainable=True, dtype=None, **kwargs):
        declared = kwargs.pop("input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        if dtype is not None:
            if _dtype_name(dtype) not in ("float32", "float64"):
                raise invalid_value("dtype", "'float32', 'float64' or None", dtype, f"{type(self).__name__} '{self.name}'")
            dtype = _dtype_name(dtype)
        self.trainable = trainable
        self.dtype = dtype
        self.built = False
        self.input_shape = None
        if input_dim is not None:
            declared = (input_dim,)
        elif batch_input_shape is not None:
            declared = tuple(batch_input_shape)[1:]
        self.declared_input_shape = None if declared is None else feature_shape(declared)
        self._weights = []  # Parameters in Keras's get_weights order
        self.input_gradient_needed = True  # the model clears it when nothing below learns
        self.activity_regularizer = None  # layers that take `activity_regularizer` set it
        self._activity_loss = 0.0

    builds_once = True  # a model builds again as layers arrive (its arena is laid out anew)
    _label = "Layer"  # how errors name it: Layer 'dense', Model 'sequential'

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__ and cls.builds_once:
            cls.build = _build_once(cls.__dict__["build"])

    # -- building -----------------------------------------------------------
    def build(self, input_shape):
        """Create parameters for inputs of `input_shape` (batch axis excluded)."""

    def compute_output_shape(self, input_shape):
        """Keras's output shape, batch axis included: (None, 6) -> (None, 5) for Dense(5).
        The batch axis passes through; the rest is output_feature_shape's."""
        input_shape = tuple(input_shape)
        if not input_shape:
            raise ValueError(f"Layer '{self.name}'.compute_output_shape expects a shape with the batch axis "
                             f"first, e.g. (None, 6); received {input_shape}.")
        return (input_shape[0],) + tuple(self.output_feature_shape(input_shape[1:]))

    def output_feature_shape(self, feature_shape):
        """The output shape of one sample (batch axis excluded): by default the shape forward
        gives one zero sample in inference mode (Keras infers it by a symbolic call); a layer
        whose output shape is known without running overrides this."""
        if not self.built:
            return tuple(feature_shape)
        probe = self.xp.zeros((1,) + tuple(feature_shape), dtype=self.dtype)
        if self.uses_call():  # a throwaway run: what it adds with add_loss is not the model's loss
            with autodiff.Tape(training=False, differentiates=False):
                return tuple(self._run_call(probe, False, {}).shape[1:])
        return tuple(self.forward(probe, training=False).shape[1:])

    def build_for(self, input_shape, dtype):
        """Build once for `input_shape` (batch axis excluded) in `dtype` unless the
        layer has its own; returns the output shape (batch axis excluded)."""
        if not self.built:
            self.dtype = np.dtype(self.dtype or dtype).name
            self.build(tuple(input_shape))
        return self.output_feature_shape(tuple(input_shape))

    def add_weight(self, name=None, shape=None, initializer=None, regularizer=None, trainable=True,
                   constraint=None, dtype=None, autocast=True, aggregation="none", overwrite_with_gradient=False):
        """Declare a parameter, initialized now (Keras's arguments; the initializer,
        regularizer and constraint may be given by name). Its value is a backend array
        outside any model; a model moves trainable ones into its arena. Keras's positional
        order (shape, initializer, dtype, trainable) works too, for layers written for Keras."""
        from gpudl.frontend import constraints, initializers, regularizers

        if name is not None and not isinstance(name, str):  # Keras: add_weight(shape, initializer, dtype, trainable)
            keras_order = (name, shape, regularizer, trainable)
            name = None
            shape, initializer, dtype, trainable = (keras_order[0], keras_order[1] or initializer,
                                                    keras_order[2] if keras_order[2] is not None else dtype,
                                                    keras_order[3])
            regularizer = None
        name = name or "variable"
        dtype = np.dtype(dtype or self.dtype or floatx()).name
        initializer = initializers.get(initializer or "glorot_uniform")
        value = get_backend().asarray(initializer(tuple(shape or ()), dtype))
        param = Parameter(name, value, trainable=trainable, regularizer=regularizers.get(regularizer),
                          constraint=constraints.get(constraint), path=f"{self.name}/{name}")
        if trainable:
            param.grad = get_backend().xp.zeros_like(value)
        self._weights.append(param)
        return param

    # -- running ------------------------------------------------------------
    takes_list = False  # merge layers take a list of inputs (forward) and give a list of gradients (backward)

    def __call__(self, x, training=None, **kwargs):
        """On arrays: build from x.shape on first use, run forward, return a host NumPy array.
        On symbolic tensors (keras.Input and what layers made of it): build for their shape and
        record the call as a node of a functional graph, returning its symbolic output.
        On torch tensors (inside another layer's differentiated call): the layer's `call`, or its
        fused forward and backward as one autograd node."""
        if is_symbolic(x):
            return self._call_symbolic(x)
        if autodiff.is_tensor(x):
            return self._call_traced(x, training, kwargs)
        if self.uses_call():  # forward only, on the arrays: keras.ops needs no engine here
            x = self._built_for(get_backend().asarray(x if hasattr(x, "shape") else np.asarray(x)))
            return self._run_call(x, training, kwargs)
        training = bool(training)
        backend = get_backend()
        x = backend.asarray(x if hasattr(x, "shape") else np.asarray(x))
        if x.ndim < 1:
            raise ValueError(f"Layer '{self.name}' expects an array with a batch axis; received a scalar.")
        if not self.built:
            self.build_for(tuple(x.shape[1:]), self.dtype or floatx())
        elif tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"Layer '{self.name}' expected input of shape (None, "
                             f"{', '.join(map(str, self.input_shape))}); received shape {tuple(x.shape)}.")
        return backend.to_numpy(self.forward(x.astype(self.dtype, copy=False), training=training))

    def _call_symbolic(self, inputs):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if self.takes_list != isinstance(inputs, (list, tuple)):
            expected = "a list of tensors" if self.takes_list else "one tensor"
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) takes {expected}; received {inputs!r}.")
        shapes = [tuple(t.shape[1:]) for t in tensors]
        dtype = self.dtype or tensors[0].dtype or floatx()
        output_shape = self.build_for(shapes if self.takes_list else shapes[0], dtype)
        node = Node(self, tensors, output_shape, self.dtype or dtype)
        self.__dict__.setdefault("_inbound_nodes", []).append(node)
        return node.output

    def _only_node(self, attribute):
        nodes = self.__dict__.get("_inbound_nodes", [])
        if len(nodes) != 1:
            state = "was never called on symbolic tensors" if not nodes else f"was called {len(nodes)} times"
            raise AttributeError(f"Layer '{self.name}' {state}: `{attribute}` is defined for a layer called "
                                 f"once in a functional graph.")
        return nodes[0]

    @property
    def input(self):
        """The symbolic input of the layer's one call in a functional graph (a list for a merge)."""
        node = self._only_node("input")
        return node.inputs if self.takes_list else node.inputs[0]

    @property
    def output(self):
        """The symbolic output of the layer's one call in a functional graph."""
        return self._only_node("output").output

    # -- weights ------------------------------------------------------------
    def _sublayers(self):
        """The layers this one holds (a model's layers; for a layer written with call(), the layers
        in its attributes, in the order they were set); their weights are its weights too."""
        return keras_call.tracked_layers(self) if self.uses_call() else []

    @property
    def weights(self):
        """Its own weights, then its sublayers', in Keras's get_weights order."""
        return list(self._weights) + [p for layer in self._sublayers() for p in layer.weights]

    @weights.setter
    def weights(self, parameters):
        self._weights = list(parameters)

    @property
    def trainable_weights(self):
        own = [p for p in self._weights if p.trainable] if self.trainable else []
        return own + [p for layer in self._sublayers() for p in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        own = [p for p in self._weights if not (p.trainable and self.trainable)]
        return own + [p for layer in self._sublayers() for p in layer.non_trainable_weights]

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    def get_weights(self):
        """Host copies of the weights, in Keras's order (Dense: kernel, bias; BatchNormalization:
        gamma, beta, moving_mean, moving_variance)."""
        return [p.numpy() for p in self.weights]

    def set_weights(self, weights):
        """Copy `weights` (as get_weights returns them) in; every shape is checked first,
        so nothing changes on an error."""
        assign_weights(self.weights, weights, f"{self._label} '{self.name}'")

    def count_params(self):
        if not self.built:
            kind = self._label.lower()
            raise ValueError(f"You tried to call count_params on {kind} '{self.name}', but the {kind} isn't "
                             f"built. Build it first: {kind}.build(input_shape) or call it on data.")
        return int(sum(np.prod(p.shape) for p in self.weights))

    # -- penalties and constraints ----------------------------------------------
    def regularization_loss(self):
        """The penalties of this layer's regularized weights, plus the activity penalty
        of its last forward pass (see _regularize_activity)."""
        from gpudl.frontend.regularizers import add_up  # (regularizers does not import layers)

        own = add_up([p.regularizer(p.value) for p in self._weights if p.regularizer is not None])
        return add_up([add_up([self._activity_loss, own]), *(layer.regularization_loss() for layer in self._sublayers())])

    @property
    def losses(self):
        """Keras's `layer.losses`: the activity penalty of the last forward pass (once the
        layer has an activity_regularizer and has run), then regularizer(weight) for each
        regularized trainable weight, in weight order; 0-d arrays (float() reads one)."""
        activity = [self._activity_loss] if getattr(self, "_activity_output", None) is not None else []
        own = [p for p in self._weights if p.trainable] if self.trainable else []
        return (activity + [p.regularizer(p.value) for p in own if p.regularizer is not None]
                + [loss for layer in self._sublayers() for loss in layer.losses])

    def add_regularization_gradients(self):
        """grad += d(penalty)/d(value) for each regularized parameter."""
        for p in self._weights:
            if p.regularizer is not None and p.grad is not None:
                p.grad += p.regularizer.gradient(p.value)
        for layer in self._sublayers():
            layer.add_regularization_gradients()

    def _regularize_activity(self, output):
        """Keras's activity penalty: activity_regularizer(output) / batch size joins the loss
        (through regularization_loss); the output is kept for _activity_gradient."""
        if self.activity_regularizer is not None:
            self._activity_output = output
            self._activity_loss = self.activity_regularizer(output) / output.shape[0]

    def clear_activity_loss(self):
        """Forget the last forward pass's activity penalty (fit, evaluate and predict call it when
        they end: Keras keeps a layer's activity losses only from eager calls)."""
        self._activity_output, self._activity_loss = None, 0.0
        for layer in self._sublayers():
            layer.clear_activity_loss()

    def _activity_gradient(self, dy):
        """dy + d(activity penalty)/d(output) of the last forward pass."""
        if self.activity_regularizer is None:
            return dy
        output = self._activity_output
        return dy + self.activity_regularizer.gradient(output) * output.dtype.type(1.0 / output.shape[0])

    def apply_constraints(self):
        """Project each constrained weight in place (after an optimizer step, as Keras does)."""
        for p in self._weights:
            if p.constraint is not None:
                p.value[...] = p.constraint(p.value)
        for layer in self._sublayers():
            layer.apply_constraints()

    # -- describing ---------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def xp(self):
        return get_backend().xp

    @property
    def ops(self):
        return get_backend().ops

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


Layer.build = _build_once(Layer.build)

