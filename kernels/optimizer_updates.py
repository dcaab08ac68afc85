"""Optimizer updates, in place over flat parameter buffers (the arena).

Host scalars (learning rate, bias corrections) are computed once in float64 and
passed as Python floats, so they apply in the buffers' own dtype.
    sgd:           w -= lr * g
    sgd_momentum:  v = mu * v + g;  w -= lr * v   (nesterov: w -= lr * (g + mu * v))
                   (PyTorch's form; equal to Keras's v = mu*v - lr*g; w += v at constant lr)
    ema_momentum:  v = beta * v + (1 - beta) * g;  w -= lr * v       (the course's form)
    rmsprop:       s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)
    adam:          m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
                   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
                   (AdamW first decays w *= 1 - lr * weight_decay)
"""

import math

import numpy as np


def sgd(param, grad, lr):
    param -= lr * grad


def sgd_momentum(param, grad, velocity, lr, momentum, nesterov=False):
    velocity *= momentum
    velocity += grad
    if nesterov:
        param -= lr * (grad + momentum * velocity)
    else:
        param -= lr * velocity


def ema_momentum(param, grad, velocity, lr, beta):
    velocity *= beta
    velocity += (1.0 - beta) * grad
    param -= lr * velocity


def rmsprop(param, grad, mean_square, lr, rho, epsilon):
    mean_square *= rho
    mean_square += (1.0 - rho) * np.square(grad)
    param -= lr * grad / (np.sqrt(mean_square) + epsilon)


def adam(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay=0.0):
    """One Adam (AdamW when weight_decay > 0) step; `step` counts from 1."""
    if weight_decay:
        param *= 1.0 - lr * weight_decay
    scratch = np.empty_like(param)  # one temporary, reused: the arena can be large
    m *= beta1
    m += np.multiply(grad, 1.0 - beta1, out=scratch)
    v *= beta2
    v += np.multiply(np.square(grad, out=scratch), 1.0 - beta2, out=scratch)
    step_size = lr / (1.0 - beta1**step)
    sqrt_bias_correction2 = math.sqrt(1.0 - beta2**step)
    denom = np.sqrt(v, out=scratch)
    denom /= sqrt_bias_correction2
    denom += epsilon
    update = np.divide(m, denom, out=scratch)
    update *= step_size
    param -= update


# ---------------------------------------------------------------------------
# Triton: one elementwise kernel per rule over the flat arena, BLOCK elements per
# program. Host scalars arrive as float64 and are rounded once to the buffers'
# dtype inside the kernel (as NumPy does with a Python float); sqrt and division
# are correctly rounded (tl.sqrt_rn / tl.div_rn in float32), as in NumPy.
# ---------------------------------------------------------------------------

from gpudl.kernels import _triton_util as _util  # noqa: E402

triton, tl = _util.triton, _util.tl

if triton is not None:

    @triton.jit
    def _sgd_kernel(param_ptr, grad_ptr, n, lr: tl.float64, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask)
        tl.store(param_ptr + offsets, param - tl.full((), lr, param.dtype) * grad, mask=mask)

    @triton.jit
    def _sgd_momentum_kernel(param_ptr, grad_ptr, velocity_ptr, n, lr: tl.float64, momentum: tl.float64,
                             NESTEROV: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask)
        mu = tl.full((), momentum, param.dtype)
        velocity = tl.load(velocity_ptr + offsets, mask=mask) * mu + grad
        step = grad + mu * velocity if NESTEROV else velocity
        tl.store(velocity_ptr + offsets, velocity, mask=mask)
        tl.store(param_ptr + offsets, param - tl.full((), lr, param.dtype) * step, mask=mask)

    @triton.jit
    def _ema_momentum_kernel(param_ptr, grad_ptr, velocity_ptr, n, lr: tl.float64, beta: tl.float64,
                             one_minus_beta: tl.float64, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask)
        velocity = (tl.load(velocity_ptr + offsets, mask=mask) * tl.full((), beta, param.dtype)
                    + tl.full((), one_minus_beta, param.dtype) * grad)
        tl.store(velocity_ptr + offsets, velocity, mask=mask)
        tl.store(param_ptr + offsets, param - tl.full((), lr, param.dtype) * velocity, mask=mask)

    @triton.jit
    def _rmsprop_kernel(param_ptr, grad_ptr, mean_square_ptr, n, lr: tl.float64, rho: tl.float64,
                        one_minus_rho: tl.float64, epsilon: tl.float64, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)
        dtype = param.dtype
        mean_square = (tl.load(mean_square_ptr + offsets, mask=mask, other=0.0) * tl.full((), rho, dtype)
                       + tl.full((), one_minus_rho, dtype) * (grad * grad))
        denom = _util.sqrt_ieee(mean_square) + tl.full((), epsilon, dtype)
        update = _util.divide_ieee(tl.full((), lr, dtype) * grad, denom)
        tl.store(mean_square_ptr + offsets, mean_square, mask=mask)
        tl.store(param_ptr + offsets, param - update, mask=mask)

    @triton.jit
    def _adam_kernel(param_ptr, grad_ptr, m_ptr, v_ptr, n, decay: tl.float64, beta1: tl.float64,
                     one_minus_beta1: tl.float64, beta2: tl.float64, one_minus_beta2: tl.float64,
                     step_size: tl.float64, sqrt_bias_correction2: tl.float64, epsilon: tl.float64,
                     BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)
        dtype = param.dtype
        param = param * tl.full((), decay, dtype)  # AdamW: decay = 1 - lr * weight_decay (1 for Adam)
        m = (tl.load(m_ptr + offsets, mask=mask, other=0.0) * tl.full((), beta1, dtype)
             + tl.full((), one_minus_beta1, dtype) * grad)
        v = (tl.load(v_ptr + offsets, mask=mask, other=0.0) * tl.full((), beta2, dtype)
             + tl.full((), one_minus_beta2, dtype) * (grad * grad))
        denom = (_util.divide_ieee(_util.sqrt_ieee(v), tl.full((), sqrt_bias_correction2, dtype))
                 + tl.full((), epsilon, dtype))
        param -= tl.full((), step_size, dtype) * _util.divide_ieee(m, denom)
        tl.store(m_ptr + offsets, m, mask=mask)
        tl.store(v_ptr + offsets, v, mask=mask)
        tl.store(param_ptr + offsets, param, mask=mask)


def _check(where, device, **buffers):
    """Flat, contiguous buffers of one float dtype and one length; returns the length."""
    _util.check_arrays(where, buffers, device)
    _util.check_float_dtype(where, buffers)
    param = buffers["param"]
    if param.ndim != 1:
        raise ValueError(f"{where}: `param` must be a flat 1-D buffer; received shape {param.shape}.")
    for name, buffer in buffers.items():
        _util.check_shape(where, name, buffer, param.shape)
    return param.size


def _check_step(where, step):
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise ValueError(f"{where}: Invalid value received for argument `step`. "
                         f"Expected an integer >= 1. Received: step={step!r}")


# 1024 elements per program (8 per thread at 4 warps: two 16-byte float32 vectors per
# stream); a 100M-parameter arena is ~100k programs, plenty to hide memory latency.
BLOCK = 1024


def _launch(kernel, param, *args, **constexprs):
    n = param.size
    if n == 0:
        return
    t = _util.as_triton
    pointers = [t(a) for a in args if not isinstance(a, (int, float))]
    scalars = [a for a in args if isinstance(a, (int, float))]
    with _util.launch_stream(param):
        kernel[(_util.cdiv(n, BLOCK),)](t(param), *pointers, n, *scalars, BLOCK=BLOCK, **constexprs)


def sgd_triton(param, grad, lr):
    """Triton sgd: w -= lr * g, in place."""
    _util.require_triton("sgd_triton")
    _check("sgd_triton", "triton", param=param, grad=grad)
    _launch(_sgd_kernel, param, grad, float(lr))


def sgd_momentum_triton(param, grad, velocity, lr, momentum, nesterov=False):
    """Triton sgd_momentum: v = mu v + g; w -= lr v (nesterov: w -= lr (g + mu v)), in place."""
    _util.require_triton("sgd_momentum_triton")
    _check("sgd_momentum_triton", "triton", param=param, grad=grad, velocity=velocity)
    _launch(_sgd_momentum_kernel, param, grad, velocity, float(lr), float(momentum), NESTEROV=bool(nesterov))


def ema_momentum_triton(param, grad, velocity, lr, beta):
    """Triton ema_momentum: v = beta v + (1 - beta) g; w -= lr v, in place."""
    _util.require_triton("ema_momentum_triton")
    _check("ema_momentum_triton", "triton", param=param, grad=grad, velocity=velocity)
    _launch(_ema_momentum_kernel, param, grad, velocity, float(lr), float(beta), 1.0 - float(beta))


def rmsprop_triton(param, grad, mean_square, lr, rho, epsilon):
    """Triton rmsprop: s = rho s + (1 - rho) g^2; w -= lr g / (sqrt(s) + eps), in place."""
    _util.require_triton("rmsprop_triton")
    _check("rmsprop_triton", "triton", param=param, grad=grad, mean_square=mean_square)
    _launch(_rmsprop_kernel, param, grad, mean_square, float(lr), float(rho), 1.0 - float(rho), float(epsilon))


def _adam_scalars(lr, beta1, beta2, epsilon, step, weight_decay):
    """Host scalars of one Adam step, in float64: the bias corrections are computed once."""
    decay = 1.0 - float(lr) * float(weight_decay) if weight_decay else 1.0
    step_size = float(lr) / (1.0 - float(beta1) ** step)
    sqrt_bias_correction2 = math.sqrt(1.0 - float(beta2) ** step)
    return (decay, float(beta1), 1.0 - float(beta1), float(beta2), 1.0 - float(beta2),
            step_size, sqrt_bias_correction2, float(epsilon))


def adam_triton(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay=0.0):
    """Triton Adam / AdamW step, in place; `step` counts from 1."""
    _util.require_triton("adam_triton")
    _check("adam_triton", "triton", param=param, grad=grad, m=m, v=v)
    _check_step("adam_triton", step)
    _launch(_adam_kernel, param, grad, m, v, *_adam_scalars(lr, beta1, beta2, epsilon, step, weight_decay))


# ---------------------------------------------------------------------------
# CuPy: the same rules as ElementwiseKernels; outputs are the buffers, updated in place.
# ---------------------------------------------------------------------------

_CUPY_RULES = {
    "sgd": ("T grad, T lr", "T param", "param -= lr * grad;"),
    "sgd_momentum": (
        "T grad, T lr, T momentum, bool nesterov", "T param, T velocity",
        "velocity = velocity * momentum + grad;"
        "param -= lr * (nesterov ? grad + momentum * velocity : velocity);"),
    "ema_momentum": (
        "T grad, T lr, T beta, T one_minus_beta", "T param, T velocity",
        "velocity = velocity * beta + one_minus_beta * grad; param -= lr * velocity;"),
    "rmsprop": (
        "T grad, T lr, T rho, T one_minus_rho, T epsilon", "T param, T mean_square",
        "mean_square = mean_square * rho + one_minus_rho * (grad * grad);"
        "param -= lr * grad / (sqrt(mean_square) + epsilon);"),
    "adam": (
        "T grad, T decay, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T step_size, "
        "T sqrt_bias_correction2, T epsilon", "T param, T m, T v",
        "param *= decay;"
        "m = m * beta1 + one_minus_beta1 * grad;"
        "v = v * beta2 + one_minus_beta2 * (grad * grad);"
        "param -= step_size * (m / (sqrt(v) / sqrt_bias_correction2 + epsilon));"),
}
_cupy_kernels = {}


def _cupy_rule(name):
    if name not in _cupy_kernels:
        in_params, out_params, operation = _CUPY_RULES[name]
        _cupy_kernels[name] = _util.cupy.ElementwiseKernel(in_params, out_params, operation, "gpudl_" + name)
    return _cupy_kernels[name]


def sgd_cupy(param, grad, lr):
    """CuPy sgd, in place."""
    _util.require_cupy("sgd_cupy")
    _check("sgd_cupy", "cupy", param=param, grad=grad)
    T = param.dtype.type
    _cupy_rule("sgd")(grad, T(lr), param)


def sgd_momentum_cupy(param, grad, velocity, lr, momentum, nesterov=False):
    """CuPy sgd_momentum, in place."""
    _util.require_cupy("sgd_momentum_cupy")
    _check("sgd_momentum_cupy", "cupy", param=param, grad=grad, velocity=velocity)
    T = param.dtype.type
    _cupy_rule("sgd_momentum")(grad, T(lr), T(momentum), bool(nesterov), param, velocity)


def ema_momentum_cupy(param, grad, velocity, lr, beta):
    """CuPy ema_momentum, in place."""
    _util.require_cupy("ema_momentum_cupy")
    _check("ema_momentum_cupy", "cupy", param=param, grad=grad, velocity=velocity)
    T = param.dtype.type
    _cupy_rule("ema_momentum")(grad, T(lr), T(beta), T(1.0 - beta), param, velocity)


def rmsprop_cupy(param, grad, mean_square, lr, rho, epsilon):
    """CuPy rmsprop, in place."""
    _util.require_cupy("rmsprop_cupy")
    _check("rmsprop_cupy", "cupy", param=param, grad=grad, mean_square=mean_square)
    T = param.dtype.type
    _cupy_rule("rmsprop")(grad, T(lr), T(rho), T(1.0 - rho), T(epsilon), param, mean_square)


def adam_cupy(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay=0.0):
    """CuPy Adam / AdamW step, in place; `step` counts from 1."""
    _util.require_cupy("adam_cupy")
    _check("adam_cupy", "cupy", param=param, grad=grad, m=m, v=v)
    _check_step("adam_cupy", step)
    T = param.dtype.type
    scalars = [T(s) for s in _adam_scalars(lr, beta1, beta2, epsilon, step, weight_decay)]
    _cupy_rule("adam")(grad, *scalars, param, m, v)
