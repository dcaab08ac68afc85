"""Activation functions (Keras 3's names and formulas), each a forward a = g(z) and a
backward dz = da * g'(z) computed from the input z and the output a:

    linear       a = z                                  g' = 1
    relu         a = max(z, 0)                          g' = [z > 0]
    relu6        a = min(max(z, 0), 6)                  g' = [0 < z < 6]
    leaky_relu   a = z if z > 0 else 0.2 z              g' = 1 or 0.2
    elu          a = z if z > 0 else e^z - 1            g' = 1 or a + 1
    selu         a = s z if z > 0 else s al (e^z - 1)   g' = s or a + s al   (al, s: SELU_ALPHA, SELU_SCALE)
    gelu         a = z Phi(z) = z (1 + erf(z / sqrt 2)) / 2      g' = Phi(z) + z phi(z)   (exact, Keras's default)
    tanh         a = tanh(z)                            g' = 1 - a^2
    sigmoid      a = 1 / (1 + e^-z)                     g' = a (1 - a)
    hard_sigmoid a = min(max(z + 3, 0), 6) / 6          g' = 1/6 on (-3, 3)
    swish, silu  a = z sigmoid(z)                       g' = s + a (1 - s),  s = sigmoid(z)
    softplus     a = log(1 + e^z)                       g' = sigmoid(z)
    softsign     a = z / (1 + |z|)                      g' = 1 / (1 + |z|)^2
    exponential  a = e^z                                g' = a
    mish         a = z tanh(softplus(z))                g' = t + z sigmoid(z) (1 - t^2),  t = tanh(softplus(z))
    softmax      a = e^z / sum e^z (last axis)          dz = a * (da - sum(da * a))
    log_softmax  a = z - log sum e^z (last axis)        dz = da - e^a * sum(da)

Each is a public function (`gpudl.activations.gelu(x)`, with Keras's keyword
arguments). As in Keras, `get(name)` returns the function itself and
`serialize`/`deserialize` turn one into its name and back; `forward_backward(name)`
returns the (forward, backward) pair that layers use.
"""

import math

import scipy.special

from gpudl.backend import get_backend
from gpudl.errors import unknown_name

LEAKY_RELU_SLOPE = 0.2  # keras.activations.leaky_relu's default negative_slope
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _xp():
    return get_backend().xp


def _float_array(z):
    """z as a backend array (Keras's activations accept array-likes; ints become floats)."""
    z = _xp().asarray(z)
    return z if z.dtype.kind == "f" else z.astype("float32")


def linear(x):
    return _float_array(x)


def linear_backward(da, z, a):
    return da


def relu(x):
    return _xp().maximum(_float_array(x), 0)


def relu_backward(da, z, a):
    return da * (z > 0)


def relu6(x):
    return _xp().clip(_float_array(x), 0, 6)


def relu6_backward(da, z, a):
    return da * ((z > 0) & (z < 6))


def leaky_relu(x, negative_slope=LEAKY_RELU_SLOPE):
    z = _float_array(x)
    return _xp().where(z > 0, z, z * z.dtype.type(negative_slope))


def leaky_relu_backward(da, z, a, negative_slope=LEAKY_RELU_SLOPE):
    return _xp().where(z > 0, da, da * da.dtype.type(negative_slope))


def elu(x, alpha=1.0):
    z = _float_array(x)
    xp = _xp()
    return xp.where(z > 0, z, z.dtype.type(alpha) * xp.expm1(xp.minimum(z, 0)))


def elu_backward(da, z, a, alpha=1.0):
    return _xp().where(z > 0, da, da * (a + da.dtype.type(alpha)))


def selu(x):
    z = _float_array(x)
    return z.dtype.type(SELU_SCALE) * elu(z, SELU_ALPHA)


def selu_backward(da, z, a):
    scale = da.dtype.type(SELU_SCALE)
    return _xp().where(z > 0, da * scale, da * (a + scale * da.dtype.type(SELU_ALPHA)))


def gelu(x, approximate=False):
    """Exact: z Phi(z); approximate: z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2."""
    z = _float_array(x)
    half = z.dtype.type(0.5)
    if approximate:
        return half * z * (1 + _xp().tanh(_gelu_tanh_argument(z)))
    return half * z * (1 + scipy.special.erf(z * z.dtype.type(1 / math.sqrt(2))))


def _gelu_tanh_argument(z):
    return z.dtype.type(math.sqrt(2 / math.pi)) * (z + z.dtype.type(0.044715) * z * z * z)


def gelu_backward(da, z, a, approximate=False):
    xp = _xp()
    half = z.dtype.type(0.5)
    if approximate:
        t = xp.tanh(_gelu_tanh_argument(z))
        d_argument = z.dtype.type(math.sqrt(2 / math.pi)) * (1 + z.dtype.type(3 * 0.044715) * z * z)
        return da * (half * (1 + t) + half * z * (1 - t * t) * d_argument)
    cdf = half * (1 + scipy.special.erf(z * z.dtype.type(1 / math.sqrt(2))))
    pdf = xp.exp(-half * z * z) * z.dtype.type(1 / math.sqrt(2 * math.pi))
    return da * (cdf + z * pdf)


def tanh(x):
    return _xp().tanh(_float_array(x))


def tanh_backward(da, z, a):
    return da * (1 - a * a)


def sigmoid(x):
    """Stable logistic: exp(-|z|) never overflows."""
    z = _float_array(x)
    xp = _xp()
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(da, z, a):
    return da * a * (1 - a)


def hard_sigmoid(x):
    z = _float_array(x)
    return _xp().clip(z + 3, 0, 6) / z.dtype.type(6)


def hard_sigmoid_backward(da, z, a):
    return da * ((z > -3) & (z < 3)) / da.dtype.type(6)


def silu(x):
    z = _float_array(x)
    return z * sigmoid(z)


def silu_backward(da, z, a):
    s = sigmoid(z)
    return da * (s + a * (1 - s))


swish = silu
swish_backward = silu_backward


def softplus(x):
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|), stable for large |z|."""
    z = _float_array(x)
    xp = _xp()
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def softplus_backward(da, z, a):
    return da * sigmoid(z)


def softsign(x):
    z = _float_array(x)
    return z / (1 + _xp().abs(z))


def softsign_backward(da, z, a):
    denominator = 1 + _xp().abs(z)
    return da / (denominator * denominator)


def exponential(x):
    return _xp().exp(_float_array(x))


def exponential_backward(da, z, a):
    return da * a


def mish(x):
    z = _float_array(x)
    return z * _xp().tanh(softplus(z))


def mish_backward(da, z, a):
    t = _xp().tanh(softplus(z))
    return da * (t + z * sigmoid(z) * (1 - t * t))


def softmax(x, axis=-1):
    z = _float_array(x)
    if axis in (-1, z.ndim - 1) and z.ndim == 2:
        return get_backend().ops.softmax(z)  # the fused kernel (rows of a 2-D array)
    shifted = _xp().exp(z - z.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def softmax_backward(da, z, a):
    return a * (da - (da * a).sum(axis=-1, keepdims=True))


def log_softmax(x, axis=-1):
    z = _float_array(x)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - _xp().log(_xp().exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(da, z, a):
    return da - _xp().exp(a) * da.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "linear": (linear, linear_backward),
    "relu": (relu, relu_backward),
    "relu6": (relu6, relu6_backward),
    "leaky_relu": (leaky_relu, leaky_relu_backward),
    "elu": (elu, elu_backward),
    "selu": (selu, selu_backward),
    "gelu": (gelu, gelu_backward),
    "tanh": (tanh, tanh_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "hard_sigmoid": (hard_sigmoid, hard_sigmoid_backward),
    "silu": (silu, silu_backward),
    "swish": (swish, swish_backward),
    "softplus": (softplus, softplus_backward),
    "softsign": (softsign, softsign_backward),
    "exponential": (exponential, exponential_backward),
    "mish": (mish, mish_backward),
    "softmax": (softmax, softmax_backward),
    "log_softmax": (log_softmax, log_softmax_backward),
}


def forward_backward(identifier):
    """(forward, backward) of an activation given by name or as one of this module's
    functions (`gpudl.activations.gelu`); None means linear. Layers use it. Any other
    function (a custom activation, usually of keras.ops) runs on the arrays forward, and its
    backward is autograd's J^T da at z (gpudl.frontend.autodiff; the forward is recomputed)."""
    if callable(identifier) and not any(identifier is forward for forward, _ in ACTIVATIONS.values()):
        return custom_forward_backward(identifier)
    name = serialize(identifier)
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]


def custom_forward_backward(fn):
    """(forward, backward) of a user's activation function."""
    from gpudl.frontend import autodiff

    def forward(z):
        return _xp().asarray(fn(z))

    def backward(da, z, a):
        return autodiff.vjp(fn, z, da)

    return forward, backward


def get(identifier):
    """Keras's `get`: the activation function for a name ("swish"), a serialized form or a
    callable (returned as is); None means linear."""
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")


def deserialize(config, custom_objects=None):
    """The activation function a name ("relu") or Keras's function dict
    ({"class_name": "function", "config": "relu", ...}) stands for; names in
    `custom_objects` come first."""
    name = config.get("config") if isinstance(config, dict) else config
    if not isinstance(name, str):
        raise ValueError(f"Could not interpret serialized activation function: {config!r}")
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name][0]


def serialize(activation):
    """The name of an activation given by name or as one of this module's functions; a
    user's function gives its __name__ (Keras's serialized form of a custom function)."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    for name, (forward, _) in ACTIVATIONS.items():
        if forward is activation:
            return name
    if callable(activation):
        return getattr(activation, "__name__", type(activation).__name__)
    raise ValueError(f"Could not interpret activation function identifier: {activation!r}")
