"""Activation functions, each a forward a = g(z) and a backward dz = da * g'(z)
written in terms of the output a alone (so layers keep a, not z).

    linear      a = z                      g' = 1
    relu        a = max(z, 0)              g' = [a > 0]
    leaky_relu  a = max(z, 0.2 z)          g' = 1 if a > 0 else 0.2
    tanh        a = tanh(z)                g' = 1 - a^2
    sigmoid     a = 1 / (1 + e^-z)         g' = a (1 - a)
    softmax     a = e^z / sum e^z          dz = a * (da - sum(da * a))
"""

from gpudl.backend import get_backend
from gpudl.errors import unknown_name

LEAKY_RELU_SLOPE = 0.2  # Keras's default negative_slope


def linear(z):
    return z


def linear_backward(da, a):
    return da


def relu(z):
    return get_backend().xp.maximum(z, 0)


def relu_backward(da, a):
    return da * (a > 0)


def leaky_relu(z, negative_slope=LEAKY_RELU_SLOPE):
    return get_backend().xp.where(z > 0, z, z * z.dtype.type(negative_slope))


def leaky_relu_backward(da, a, negative_slope=LEAKY_RELU_SLOPE):
    return get_backend().xp.where(a > 0, da, da * da.dtype.type(negative_slope))


def tanh(z):
    return get_backend().xp.tanh(z)


def tanh_backward(da, a):
    return da * (1 - a * a)


def sigmoid(z):
    """Stable logistic: exp(-|z|) never overflows."""
    xp = get_backend().xp
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(da, a):
    return da * a * (1 - a)


def softmax(z):
    return get_backend().ops.softmax(z)


def softmax_backward(da, a):
    return a * (da - (da * a).sum(axis=1, keepdims=True))


ACTIVATIONS = {
    "linear": (linear, linear_backward),
    "relu": (relu, relu_backward),
    "leaky_relu": (leaky_relu, leaky_relu_backward),
    "tanh": (tanh, tanh_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "softmax": (softmax, softmax_backward),
}


def get(name):
    """(forward, backward) of the activation `name`; None means linear."""
    name = "linear" if name is None else name
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
