"""Optimizer updates, in place over flat parameter buffers (the arena).

    sgd:           w -= lr * g
    sgd_momentum:  v = mu * v + g;  w -= lr * v   (nesterov: w -= lr * (g + mu * v))
                   (PyTorch's form; equal to Keras's v = mu*v - lr*g; w += v at constant lr)
    ema_momentum:  v = beta * v + (1 - beta) * g;  w -= lr * v       (the course's form)
    rmsprop:       s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)
    adam:          w *= decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
                   w -= step_size * m / (sqrt(v) / sqrt_bias_correction2 + eps)
                   with decay = 1 - lr * weight_decay (AdamW; 1 for Adam),
                   step_size = lr / (1 - b1^t), sqrt_bias_correction2 = sqrt(1 - b2^t)

The scalars that change from step to step live in device memory, so a captured CUDA
graph can replay a step with no host work: `step_counter` (int64, shape (1,)) holds
the number of steps done, and the step's scalars are row `step_counter[0] % rows` of
`step_table` (float64, shape (rows, columns)): (lr,) for the first four rules,
(decay, step_size, sqrt_bias_correction2) for adam (see adam_step_table). The host
computes the rows in float64 for many steps at once; the kernels round each scalar
once to the buffers' dtype, as NumPy does with a Python float. The caller advances
the counter after the update. Constants (momentum, betas, epsilon) are plain arguments.
"""

import math

import numpy as np

from gpudl import threads


def adam_step_table(rates, first_step, beta1, beta2, weight_decay=0.0):
    """Adam step-table rows (decay, step_size, sqrt_bias_correction2) of the 0-based steps
    first_step, first_step + 1, ... at learning rates `rates` (t = step + 1):
        decay = 1 - lr * weight_decay,  step_size = lr / (1 - b1^t),  sqrt_bias_correction2 = sqrt(1 - b2^t)
    in float64 on the host, one Python float at a time."""
    rows = [(1.0 - lr * weight_decay, lr / (1.0 - beta1**t), math.sqrt(1.0 - beta2**t))
            for t, lr in enumerate(map(float, rates), start=first_step + 1)]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def step_row(step_table, step_counter):
    """This step's scalars as Python floats: row step_counter[0] % rows of the step table."""
    return [float(s) for s in step_table[int(step_counter[0]) % len(step_table)]]


# The NumPy rules below run in place, one NumPy pass at a time, with their temporaries in
# per-thread scratch buffers (no allocation per step) and large buffers split across
# threads (gpudl.threads): each element goes through the same operations either way.

def sgd(param, grad, step_table, step_counter):
    (lr,) = step_row(step_table, step_counter)

    def rule(param, grad):
        param -= np.multiply(grad, lr, out=threads.scratch_like("update", param))

    threads.parallel_elementwise(rule, param, grad)


def sgd_momentum(param, grad, velocity, step_table, step_counter, momentum, nesterov=False):
    (lr,) = step_row(step_table, step_counter)

    def rule(param, grad, velocity):
        velocity *= momentum
        velocity += grad
        update = threads.scratch_like("update", param)
        if nesterov:  # lr * (grad + momentum * velocity)
            np.multiply(velocity, momentum, out=update)
            update += grad
            update *= lr
        else:
            np.multiply(velocity, lr, out=update)
        param -= update

    threads.parallel_elementwise(rule, param, grad, velocity)


def ema_momentum(param, grad, velocity, step_table, step_counter, beta):
    (lr,) = step_row(step_table, step_counter)

    def rule(param, grad, velocity):
        update = threads.scratch_like("update", param)
        velocity *= beta
        velocity += np.multiply(grad, 1.0 - beta, out=update)
        param -= np.multiply(velocity, lr, out=update)

    threads.parallel_elementwise(rule, param, grad, velocity)


def rmsprop(param, grad, mean_square, step_table, step_counter, rho, epsilon):
    (lr,) = step_row(step_table, step_counter)

    def rule(param, grad, mean_square):
        update = threads.scratch_like("update", param)
        denom = threads.scratch_like("denominator", param)
        mean_square *= rho
        mean_square += np.multiply(np.square(grad, out=update), 1.0 - rho, out=update)
        np.multiply(grad, lr, out=update)  # lr * grad / (sqrt(s) + eps)
        np.sqrt(mean_square, out=denom)
        denom += epsilon
        update /= denom
        param -= update

    threads.parallel_elementwise(rule, param, grad, mean_square)


def adam(param, grad, m, v, step_table, step_counter, beta1, beta2, epsilon):
    """One Adam (AdamW) step with this step's row of an adam_step_table."""
    decay, step_size, sqrt_bias_correction2 = step_row(step_table, step_counter)

    def rule(param, grad, m, v):
        scratch = threads.scratch_like("update", param)
        if decay != 1.0:  # param * 1.0 == param exactly: plain Adam skips the pass
            param *= decay
        m *= beta1
        m += np.multiply(grad, 1.0 - beta1, out=scratch)
        v *= beta2
        v += np.multiply(np.square(grad, out=scratch), 1.0 - beta2, out=scratch)
        denom = np.sqrt(v, out=scratch)
        denom /= sqrt_bias_correction2
        denom += epsilon
        update = np.divide(m, denom, out=scratch)
        update *= step_size
        param -= update

    threads.parallel_elementwise(rule, param, grad, m, v)


# ---------------------------------------------------------------------------
# Triton: one elementwise kernel per rule over the flat arena, BLOCK elements per
# program. Each program loads the step's row of the table (float64) and rounds it
# once to the buffers' dtype, as NumPy does with a Python float; constants arrive
# as float64 scalars and are rounded the same way; sqrt and division are correctly
# rounded (tl.sqrt_rn / tl.div_rn in float32), as in NumPy.
# ---------------------------------------------------------------------------

from gpudl.kernels import _triton_util as _util  # noqa: E402

triton, tl = _util.triton, _util.tl

if triton is not None:

    @triton.jit
    def _step_row(table_ptr, step_counter_ptr, table_rows, COLUMNS: tl.constexpr):
        """Pointer to this step's row of the step table: row step_counter[0] % table_rows."""
        return table_ptr + (tl.load(step_counter_ptr) % table_rows) * COLUMNS

    @triton.jit
    def _sgd_kernel(param_ptr, grad_ptr, table_ptr, step_counter_ptr, table_rows, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask)
        lr = tl.load(_step_row(table_ptr, step_counter_ptr, table_rows, 1)).to(param.dtype)
        tl.store(param_ptr + offsets, param - lr * grad, mask=mask)

    @triton.jit
    def _sgd_momentum_kernel(param_ptr, grad_ptr, velocity_ptr, table_ptr, step_counter_ptr, table_rows, n,
                             momentum: tl.float64, NESTEROV: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask)
        lr = tl.load(_step_row(table_ptr, step_counter_ptr, table_rows, 1)).to(param.dtype)
        mu = tl.full((), momentum, param.dtype)
        velocity = tl.load(velocity_ptr + offsets, mask=mask) * mu + grad
        step = grad + mu * velocity if NESTEROV else velocity
        tl.store(velocity_ptr + offsets, velocity, mask=mask)
        tl.store(param_ptr + offsets, param - lr * step, mask=mask)

    @triton.jit
    def _ema_momentum_kernel(param_ptr, grad_ptr, velocity_ptr, table_ptr, step_counter_ptr, table_rows, n,
                             beta: tl.float64, one_minus_beta: tl.float64, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask)
        lr = tl.load(_step_row(table_ptr, step_counter_ptr, table_rows, 1)).to(param.dtype)
        velocity = (tl.load(velocity_ptr + offsets, mask=mask) * tl.full((), beta, param.dtype)
                    + tl.full((), one_minus_beta, param.dtype) * grad)
        tl.store(velocity_ptr + offsets, velocity, mask=mask)
        tl.store(param_ptr + offsets, param - lr * velocity, mask=mask)

    @triton.jit
    def _rmsprop_kernel(param_ptr, grad_ptr, mean_square_ptr, table_ptr, step_counter_ptr, table_rows, n,
                        rho: tl.float64, one_minus_rho: tl.float64, epsilon: tl.float64, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)
        dtype = param.dtype
        lr = tl.load(_step_row(table_ptr, step_counter_ptr, table_rows, 1)).to(dtype)
        mean_square = (tl.load(mean_square_ptr + offsets, mask=mask, other=0.0) * tl.full((), rho, dtype)
                       + tl.full((), one_minus_rho, dtype) * (grad * grad))
        denom = _util.sqrt_ieee(mean_square) + tl.full((), epsilon, dtype)
        update = _util.divide_ieee(lr * grad, denom)
        tl.store(mean_square_ptr + offsets, mean_square, mask=mask)
        tl.store(param_ptr + offsets, param - update, mask=mask)

    @triton.jit
    def _adam_kernel(param_ptr, grad_ptr, m_ptr, v_ptr, table_ptr, step_counter_ptr, table_rows, n,
                     beta1: tl.float64, one_minus_beta1: tl.float64, beta2: tl.float64,
                     one_minus_beta2: tl.float64, epsilon: tl.float64, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        param = tl.load(param_ptr + offsets, mask=mask)
        grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)
        dtype = param.dtype
        row = _step_row(table_ptr, step_counter_ptr, table_rows, 3)
        decay = tl.load(row).to(dtype)  # AdamW: 1 - lr * weight_decay (1 for Adam)
        step_size = tl.load(row + 1).to(dtype)
        sqrt_bias_correction2 = tl.load(row + 2).to(dtype)
        param = param * decay
        m = (tl.load(m_ptr + offsets, mask=mask, other=0.0) * tl.full((), beta1, dtype)
             + tl.full((), one_minus_beta1, dtype) * grad)
        v = (tl.load(v_ptr + offsets, mask=mask, other=0.0) * tl.full((), beta2, dtype)
             + tl.full((), one_minus_beta2, dtype) * (grad * grad))
        denom = _util.divide_ieee(_util.sqrt_ieee(v), sqrt_bias_correction2) + tl.full((), epsilon, dtype)
        param -= step_size * _util.divide_ieee(m, denom)
        tl.store(m_ptr + offsets, m, mask=mask)
        tl.store(v_ptr + offsets, v, mask=mask)
        tl.store(param_ptr + offsets, param, mask=mask)


def _check(where, device, step_table, step_counter, columns, **buffers):
    """Flat, contiguous buffers of one float dtype and one length, with a float64
    (rows >= 1, columns) step table and an int64 (1,) step counter on the same device;
    returns the length."""
    _util.check_arrays(where, {**buffers, "step_table": step_table, "step_counter": step_counter}, device)
    _util.check_float_dtype(where, buffers)
    param = buffers["param"]
    if param.ndim != 1:
        raise ValueError(f"{where}: `param` must be a flat 1-D buffer; received shape {param.shape}.")
    for name, buffer in buffers.items():
        _util.check_shape(where, name, buffer, param.shape)
    if np.dtype(step_table.dtype) != np.float64 or step_table.ndim != 2 or step_table.shape[1:] != (columns,) \
            or len(step_table) == 0:
        raise ValueError(f"{where}: `step_table` must be a float64 array of shape (rows >= 1, {columns}); "
                         f"received {np.dtype(step_table.dtype)} of shape {tuple(step_table.shape)}.")
    _util.check_counter(where, "step_counter", step_counter, 1)
    return param.size


# 1024 elements per program (8 per thread at 4 warps: two 16-byte float32 vectors per
# stream); a 100M-parameter arena is ~100k programs, plenty to hide memory latency.
BLOCK = 1024


def triton_specializations():
    """Every specialization the Triton launchers can launch (the compile check's table):
    each rule (and Nesterov on/off) on each dtype, at the one BLOCK."""
    kernels = [(_sgd_kernel, {}), (_sgd_momentum_kernel, dict(NESTEROV=False)),
               (_sgd_momentum_kernel, dict(NESTEROV=True)), (_ema_momentum_kernel, {}), (_rmsprop_kernel, {}),
               (_adam_kernel, {})]
    for dtype in _util.FLOAT_DTYPES:
        for kernel, constexprs in kernels:
            yield _util.triton_spec(kernel, dtype, dict(constexprs, BLOCK=BLOCK), table_ptr="*fp64",
                                    step_counter_ptr="*i64")


def _launch(kernel, param, buffers, step_table, step_counter, constants=(), **constexprs):
    n = param.size
    if n == 0:
        return
    t = _util.as_triton
    with _util.launch_stream(param):
        kernel[(_util.cdiv(n, BLOCK),)](t(param), *map(t, buffers), t(step_table), t(step_counter),
                                        len(step_table), n, *constants, BLOCK=BLOCK, **constexprs)


def sgd_triton(param, grad, step_table, step_counter):
    """Triton sgd: w -= lr * g, in place."""
    _util.require_triton("sgd_triton")
    _check("sgd_triton", "triton", step_table, step_counter, 1, param=param, grad=grad)
    _launch(_sgd_kernel, param, [grad], step_table, step_counter)


def sgd_momentum_triton(param, grad, velocity, step_table, step_counter, momentum, nesterov=False):
    """Triton sgd_momentum: v = mu v + g; w -= lr v (nesterov: w -= lr (g + mu v)), in place."""
    _util.require_triton("sgd_momentum_triton")
    _check("sgd_momentum_triton", "triton", step_table, step_counter, 1, param=param, grad=grad, velocity=velocity)
    _launch(_sgd_momentum_kernel, param, [grad, velocity], step_table, step_counter, [float(momentum)],
            NESTEROV=bool(nesterov))


def ema_momentum_triton(param, grad, velocity, step_table, step_counter, beta):
    """Triton ema_momentum: v = beta v + (1 - beta) g; w -= lr v, in place."""
    _util.require_triton("ema_momentum_triton")
    _check("ema_momentum_triton", "triton", step_table, step_counter, 1, param=param, grad=grad, velocity=velocity)
    _launch(_ema_momentum_kernel, param, [grad, velocity], step_table, step_counter, [float(beta), 1.0 - float(beta)])


def rmsprop_triton(param, grad, mean_square, step_table, step_counter, rho, epsilon):
    """Triton rmsprop: s = rho s + (1 - rho) g^2; w -= lr g / (sqrt(s) + eps), in place."""
    _util.require_triton("rmsprop_triton")
    _check("rmsprop_triton", "triton", step_table, step_counter, 1, param=param, grad=grad, mean_square=mean_square)
    _launch(_rmsprop_kernel, param, [grad, mean_square], step_table, step_counter,
            [float(rho), 1.0 - float(rho), float(epsilon)])


def adam_triton(param, grad, m, v, step_table, step_counter, beta1, beta2, epsilon):
    """Triton Adam / AdamW step with this step's row of an adam_step_table, in place."""
    _util.require_triton("adam_triton")
    _check("adam_triton", "triton", step_table, step_counter, 3, param=param, grad=grad, m=m, v=v)
    _launch(_adam_kernel, param, [grad, m, v], step_table, step_counter,
            [float(beta1), 1.0 - float(beta1), float(beta2), 1.0 - float(beta2), float(epsilon)])


# ---------------------------------------------------------------------------
# CuPy: the same rules as elementwise kernels (raw kernels written as CuPy's ElementwiseKernel
# strings); outputs are the buffers, updated in place.
# Each thread reads the step's row once, before its loop over elements (loop_prep).
# ---------------------------------------------------------------------------

_CUPY_STEP_INPUTS = "raw float64 step_table, raw int64 step_counter, int64 table_rows"
_CUPY_ROW = "const long long row = step_counter[0] % table_rows;"

_CUPY_RULES = {  # name: (inputs, outputs, the step's scalars from its row, the update)
    "sgd": ("T grad", "T param", "const T lr = (T)step_table[row];", "param -= lr * grad;"),
    "sgd_momentum": (
        "T grad, T momentum, bool nesterov", "T param, T velocity", "const T lr = (T)step_table[row];",
        "velocity = velocity * momentum + grad;"
        "param -= lr * (nesterov ? grad + momentum * velocity : velocity);"),
    "ema_momentum": (
        "T grad, T beta, T one_minus_beta", "T param, T velocity", "const T lr = (T)step_table[row];",
        "velocity = velocity * beta + one_minus_beta * grad; param -= lr * velocity;"),
    "rmsprop": (
        "T grad, T rho, T one_minus_rho, T epsilon", "T param, T mean_square", "const T lr = (T)step_table[row];",
        "mean_square = mean_square * rho + one_minus_rho * (grad * grad);"
        "param -= lr * grad / (sqrt(mean_square) + epsilon);"),
    "adam": (
        "T grad, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T epsilon", "T param, T m, T v",
        "const T decay = (T)step_table[3 * row], step_size = (T)step_table[3 * row + 1],"
        " sqrt_bias_correction2 = (T)step_table[3 * row + 2];",
        "param *= decay;"
        "m = m * beta1 + one_minus_beta1 * grad;"
        "v = v * beta2 + one_minus_beta2 * (grad * grad);"
        "param -= step_size * (m / (sqrt(v) / sqrt_bias_correction2 + epsilon));"),
}
_CUPY_KERNELS = {  # every input but the gradient and the raw step state is a scalar constant
    name: _util.CupyElementwise(
        f"{inputs}, {_CUPY_STEP_INPUTS}", outputs, operation, "gpudl_" + name,
        loop_prep=f"{_CUPY_ROW} {step_scalars}",
        scalars=tuple(p for raw, _, p in _util.parse_params(f"{inputs}, {_CUPY_STEP_INPUTS}")
                      if not raw and p != "grad"))
    for name, (inputs, outputs, step_scalars, operation) in _CUPY_RULES.items()}
CUPY_KERNELS = tuple(_CUPY_KERNELS.values())


def _cupy_rule(name):
    return lambda *args: _util.launch_elementwise(_CUPY_KERNELS[name], *args)


def sgd_cupy(param, grad, step_table, step_counter):
    """CuPy sgd, in place."""
    _util.require_cupy("sgd_cupy")
    _check("sgd_cupy", "cupy", step_table, step_counter, 1, param=param, grad=grad)
    _cupy_rule("sgd")(grad, step_table, step_counter, np.int64(len(step_table)), param)


def sgd_momentum_cupy(param, grad, velocity, step_table, step_counter, momentum, nesterov=False):
    """CuPy sgd_momentum, in place."""
    _util.require_cupy("sgd_momentum_cupy")
    _check("sgd_momentum_cupy", "cupy", step_table, step_counter, 1, param=param, grad=grad, velocity=velocity)
    T = param.dtype.type
    _cupy_rule("sgd_momentum")(grad, T(momentum), bool(nesterov), step_table, step_counter,
                               np.int64(len(step_table)), param, velocity)


def ema_momentum_cupy(param, grad, velocity, step_table, step_counter, beta):
    """CuPy ema_momentum, in place."""
    _util.require_cupy("ema_momentum_cupy")
    _check("ema_momentum_cupy", "cupy", step_table, step_counter, 1, param=param, grad=grad, velocity=velocity)
    T = param.dtype.type
    _cupy_rule("ema_momentum")(grad, T(beta), T(1.0 - beta), step_table, step_counter,
                               np.int64(len(step_table)), param, velocity)


def rmsprop_cupy(param, grad, mean_square, step_table, step_counter, rho, epsilon):
    """CuPy rmsprop, in place."""
    _util.require_cupy("rmsprop_cupy")
    _check("rmsprop_cupy", "cupy", step_table, step_counter, 1, param=param, grad=grad, mean_square=mean_square)
    T = param.dtype.type
    _cupy_rule("rmsprop")(grad, T(rho), T(1.0 - rho), T(epsilon), step_table, step_counter,
                          np.int64(len(step_table)), param, mean_square)


def adam_cupy(param, grad, m, v, step_table, step_counter, beta1, beta2, epsilon):
    """CuPy Adam / AdamW step with this step's row of an adam_step_table, in place."""
    _util.require_cupy("adam_cupy")
    _check("adam_cupy", "cupy", step_table, step_counter, 3, param=param, grad=grad, m=m, v=v)
    T = param.dtype.type
    _cupy_rule("adam")(grad, T(beta1), T(1.0 - beta1), T(beta2), T(1.0 - beta2), T(epsilon),
                       step_table, step_counter, np.int64(len(step_table)), param, m, v)
