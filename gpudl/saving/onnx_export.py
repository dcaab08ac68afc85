"""ONNX export of a model's inference graph (a Sequential or a functional model), built with
the `onnx` package.

`export_onnx(model, path)` writes one graph. A Sequential: input "input" of shape
(batch, features...) in the model's dtype, output "output". A functional model: one input per
keras.Input (named as it), one output per output (named as its layer, Keras's output_names), the
nodes in the order the graph runs; a merge layer becomes Add / Sub / Mul / Mean / Max / Min /
Concat, or Mul + ReduceSum for Dot (normalized first with LpNormalization for normalize=True). Opset 17 (IR version 8): the first opset with
LayerNormalization, run by onnxruntime since 1.12 (2022) and by every current runtime.
Each layer becomes the ops of its inference forward pass (LAYER_OPS):

    Dense                Gemm(x, kernel, bias) (MatMul without a bias), then the activation
    BatchNormalization   BatchNormalization(x, gamma, beta, moving_mean, moving_variance, epsilon)
    Normalization        Sub(mean), Div(max(sqrt(variance), 1e-7)) (invert: Mul, Add); the
                         divisor is computed here in the model's dtype as gpudl's forward does
    LayerNormalization   LayerNormalization(x, gamma, beta, axis=-1, epsilon)
    Activation, ReLU, LeakyReLU, ELU, PReLU, Softmax   the activation's ops (ACTIVATION_OPS)
    Flatten, Reshape     Flatten(axis=1), Reshape(0, target_shape...)
    Rescaling            Mul(scale), Add(offset)
    Dropout and the noise layers   nothing: they are the identity at inference

The exporter runs onnx.checker on the model before writing it.
"""

import math
import os

import numpy as np

from gpudl.backend import get_backend

OPSET = 17
IR_VERSION = 8
INSTALL_HINT = 'install onnx with: pip install "gpudl[onnx]"'
NORMALIZATION_EPSILON = 1e-7  # gpudl.frontend.layers.normalization's floor of the standard deviation


class _Graph:
    """The nodes and constants of the graph being built; each op returns its output name."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype = onnx, np.dtype(dtype)
        self.nodes, self.initializers = [], []

    def constant(self, name, value, dtype=None):
        array = np.asarray(value, dtype=dtype or self.dtype)
        tensor_name = f"{name}_{len(self.initializers)}"
        self.initializers.append(self.onnx.numpy_helper.from_array(array, tensor_name))
        return tensor_name

    def op(self, op_type, inputs, **attributes):
        output = f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output


def _gelu(g, x):
    """x * (1 + erf(x / sqrt 2)) / 2 (Keras's exact gelu; ONNX's Gelu op needs opset 20)."""
    erf = g.op("Erf", [g.op("Mul", [x, g.constant("inv_sqrt2", 1 / math.sqrt(2))])])
    return g.op("Mul", [g.op("Mul", [x, g.constant("half", 0.5)]), g.op("Add", [erf, g.constant("one", 1.0)])])


def _activation_ops():
    from gpudl.frontend.activations import LEAKY_RELU_SLOPE, SELU_ALPHA, SELU_SCALE

    return {
        "linear": lambda g, x: x,
        "relu": lambda g, x: g.op("Relu", [x]),
        "relu6": lambda g, x: g.op("Clip", [x, g.constant("zero", 0.0), g.constant("six", 6.0)]),
        "leaky_relu": lambda g, x: g.op("LeakyRelu", [x], alpha=LEAKY_RELU_SLOPE),
        "elu": lambda g, x: g.op("Elu", [x], alpha=1.0),
        "selu": lambda g, x: g.op("Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE),
        "gelu": _gelu,
        "tanh": lambda g, x: g.op("Tanh", [x]),
        "sigmoid": lambda g, x: g.op("Sigmoid", [x]),
        "hard_sigmoid": lambda g, x: g.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5),
        "swish": lambda g, x: g.op("Mul", [x, g.op("Sigmoid", [x])]),
        "silu": lambda g, x: g.op("Mul", [x, g.op("Sigmoid", [x])]),
        "softplus": lambda g, x: g.op("Softplus", [x]),
        "softsign": lambda g, x: g.op("Softsign", [x]),
        "exponential": lambda g, x: g.op("Exp", [x]),
        "mish": lambda g, x: g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])]),
        "softmax": lambda g, x: g.op("Softmax", [x], axis=-1),
        "log_softmax": lambda g, x: g.op("LogSoftmax", [x], axis=-1),
    }


ACTIVATION_OPS = _activation_ops()


def _value(param):
    return get_backend().to_numpy(param.value)


def _activation(g, layer, x):
    if layer.activation not in ACTIVATION_OPS:
        raise ValueError(f"Layer '{layer.name}': activation {layer.activation!r} has no ONNX export; "
                         f"exportable: {', '.join(sorted(ACTIVATION_OPS))}.")
    return ACTIVATION_OPS[layer.activation](g, x)


def _dense(g, layer, x):
    kernel = g.constant(f"{layer.name}_kernel", _value(layer.kernel))
    if layer.use_bias:
        z = g.op("Gemm", [x, kernel, g.constant(f"{layer.name}_bias", _value(layer.bias))])
    else:
        z = g.op("MatMul", [x, kernel])
    return _activation(g, layer, z)


def _batch_normalization(g, layer, x):
    inputs = [g.constant(f"{layer.name}_{p}", _value(getattr(layer, p)))
              for p in ("gamma", "beta", "moving_mean", "moving_variance")]
    return g.op("BatchNormalization", [x, *inputs], epsilon=layer.epsilon)


def _normalization(g, layer, x):
    """(x - mean) / std, or mean + x * std with invert, std = max(sqrt(variance), 1e-7) computed
    here in the model's dtype as the forward pass computes it."""
    mean, variance = (get_backend().to_numpy(v) for v in (layer.mean, layer.variance))
    std = g.constant(f"{layer.name}_std", np.maximum(np.sqrt(variance), variance.dtype.type(NORMALIZATION_EPSILON)))
    mean = g.constant(f"{layer.name}_mean", mean)
    if layer.invert:
        return g.op("Add", [mean, g.op("Mul", [x, std])])
    return g.op("Div", [g.op("Sub", [x, mean]), std])


def _layer_normalization(g, layer, x):
    if layer.axis not in (-1, [-1]):
        raise ValueError(f"LayerNormalization '{layer.name}' normalizes over axis={layer.axis}; the ONNX export "
                         f"supports axis=-1.")
    features = layer.input_shape[-1]
    gamma = _value(layer.gamma) if layer.scale else np.ones(features, g.dtype)
    beta = _value(layer.beta) if layer.center else np.zeros(features, g.dtype)
    return g.op("LayerNormalization", [x, g.constant(f"{layer.name}_gamma", gamma),
                                       g.constant(f"{layer.name}_beta", beta)], axis=-1, epsilon=layer.epsilon)


def _relu_layer(g, layer, x):
    """Keras's ReLU(max_value, negative_slope, threshold) as Where(x >= t, x, slope (x - t)), capped."""
    if (layer.max_value, layer.negative_slope, layer.threshold) == (None, 0.0, 0.0):
        return g.op("Relu", [x])
    threshold = g.constant(f"{layer.name}_threshold", layer.threshold)
    below = g.op("Mul", [g.op("Sub", [x, threshold]), g.constant(f"{layer.name}_slope", layer.negative_slope)])
    y = g.op("Where", [g.op("GreaterOrEqual", [x, threshold]), x, below])
    return y if layer.max_value is None else g.op("Min", [y, g.constant(f"{layer.name}_max", layer.max_value)])


def _softmax_layer(g, layer, x):
    axis = getattr(layer, "axis", -1)
    return g.op("Softmax", [x], axis=axis[0] if isinstance(axis, list) and len(axis) == 1 else axis)


def _reshape(g, layer, x):
    shape = g.constant(f"{layer.name}_shape", [0, *layer.target_shape], np.int64)  # 0: keep the batch size
    return g.op("Reshape", [x, shape])


def _rescaling(g, layer, x):
    scaled = g.op("Mul", [x, g.constant(f"{layer.name}_scale", layer.scale)])
    return g.op("Add", [scaled, g.constant(f"{layer.name}_offset", layer.offset)])


def _identity(g, layer, x):
    return x


LAYER_OPS = {
    "Dense": _dense,
    "BatchNormalization": _batch_normalization,
    "Normalization": _normalization,
    "LayerNormalization": _layer_normalization,
    "Activation": _activation,
    "ReLU": _relu_layer,
    "LeakyReLU": lambda g, layer, x: g.op("LeakyRelu", [x], alpha=float(layer.negative_slope)),
    "ELU": lambda g, layer, x: g.op("Elu", [x], alpha=float(layer.alpha)),
    "PReLU": lambda g, layer, x: g.op("PRelu", [x, g.constant(f"{layer.name}_alpha", _value(layer.alpha))]),
    "Softmax": _softmax_layer,
    "Flatten": lambda g, layer, x: g.op("Flatten", [x], axis=1),
    "Reshape": _reshape,
    "Rescaling": _rescaling,
    "Dropout": _identity,
    "GaussianNoise": _identity,
    "GaussianDropout": _identity,
    "AlphaDropout": _identity,
    "ActivityRegularization": _identity,
}


def _merge(op_type):
    def ops(g, layer, inputs):
        result = inputs[0]
        for other in inputs[1:]:
            result = g.op(op_type, [result, other])
        return result
    return ops


def _average(g, layer, inputs):
    return g.op("Mean", inputs)


def _concatenate(g, layer, inputs):
    return g.op("Concat", inputs, axis=layer.axis)


def _dot(g, layer, inputs):
    """sum_k a_k b_k over the features, keeping the axis: (N, 1); cosine: of the unit vectors (gpudl
    floors the norm at 1e-12, which LpNormalization does not: equal unless a row is all zeros)."""
    if layer.normalize:
        inputs = [g.op("LpNormalization", [x], axis=1, p=2) for x in inputs]
    axes = g.constant("axes", [1], np.int64)
    return g.op("ReduceSum", [g.op("Mul", inputs), axes], keepdims=1)


MERGE_OPS = {"Add": _merge("Add"), "Subtract": _merge("Sub"), "Multiply": _merge("Mul"), "Average": _average,
             "Maximum": _merge("Max"), "Minimum": _merge("Min"), "Concatenate": _concatenate, "Dot": _dot}


def _graph_outputs(g, model):
    """Run a functional model's nodes into the graph: ([input names], [output names])."""
    names = {id(t): t.name for t in model.inputs}
    for node in model._nodes:
        layer = node.layer
        inputs = [names[id(t)] for t in node.inputs]
        if layer.takes_list:
            names[id(node.output)] = MERGE_OPS[type(layer).__name__](g, layer, inputs)
        else:
            names[id(node.output)] = LAYER_OPS[type(layer).__name__](g, layer, inputs[0])
    return [t.name for t in model.inputs], [names[id(t)] for t in model.outputs]


def build_onnx_model(model):
    """The onnx.ModelProto of `model`'s inference graph (see the module docstring)."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (the submodule _Graph uses)
    except ImportError:
        raise ImportError(f"ONNX export needs the onnx package, which is not installed; {INSTALL_HINT}") from None
    if not model.built:
        raise ValueError(f"Model '{model.name}' must be built before export (give it an Input or call "
                         f"build, fit or predict).")
    functional = hasattr(model, "_nodes")
    layers = model._graph_layers if functional else model._leaves()  # nested Sequentials' layers in place
    known = {**LAYER_OPS, **MERGE_OPS} if functional else LAYER_OPS
    missing = sorted({type(layer).__name__ for layer in layers if type(layer).__name__ not in known})
    if missing:
        raise ValueError(f"Model '{model.name}' cannot be exported to ONNX: no export for layer class(es) "
                         f"{', '.join(missing)}. Exportable: {', '.join(sorted(known))}.")
    g = _Graph(onnx, model.dtype)
    if functional:
        input_names, results = _graph_outputs(g, model)
        output_names = list(model.output_names)
        input_shapes, output_shapes = [t.shape for t in model.inputs], [t.shape for t in model.outputs]
    else:
        x = "input"
        for layer in layers:
            x = LAYER_OPS[type(layer).__name__](g, layer, x)
        input_names, results, output_names = ["input"], [x], ["output"]
        input_shapes, output_shapes = [model.input_shape], [model.output_shape]
    for result, name in zip(results, output_names):
        g.nodes.append(onnx.helper.make_node("Identity", [result], [name]))
    element = onnx.helper.np_dtype_to_tensor_dtype(g.dtype)
    graph = onnx.helper.make_graph(
        g.nodes, model.name,
        [onnx.helper.make_tensor_value_info(name, element, ["batch", *shape[1:]])
         for name, shape in zip(input_names, input_shapes)],
        [onnx.helper.make_tensor_value_info(name, element, ["batch", *shape[1:]])
         for name, shape in zip(output_names, output_shapes)],
        initializer=g.initializers)
    proto = onnx.helper.make_model(graph, producer_name="gpudl", opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path):
    """Write `model`'s inference graph to `path` as an ONNX file (atomically)."""
    from gpudl.saving.atomic import write_atomically

    data = build_onnx_model(model).SerializeToString()
    write_atomically(os.fspath(path), lambda f: f.write(data))
