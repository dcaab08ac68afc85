"""keras.ops: Keras 3's tensor operations (numpy, nn, math and core groups), `gpudl.ops`.

Each op has Keras's name, signature, broadcasting and dtype rules (an int array with a float one
gives the float's dtype, float32 for a Python float; `sum` of int32 stays int32; `mean`, `exp`,
`sqrt`... of ints give floatx; `argmax` gives int32). It runs where its arguments live:
    backend arrays (NumPy, or CuPy on a GPU)  -> the backend's xp, forward only, no engine involved
    torch tensors (inside a differentiated piece: a layer's call, a custom loss...)  -> torch,
        so that autograd records it (gpudl.frontend.autodiff)
A weight (Parameter) or a metric variable passed to an op is read as its array, or as its leaf
tensor while a piece runs. Composite ops (softmax, the cross-entropies, gelu...) are written once
from the primitives, so both paths share them.

Unlike Keras on JAX (32-bit by default), float64 stays float64: gpudl trains in float64 too.
"""

import builtins
import math

import numpy as np

from gpudl.backend import epsilon, floatx, get_backend
from gpudl.frontend import autodiff
from gpudl.frontend.layers.node import OPERATORS, KerasTensor


# -- where an op runs ---------------------------------------------------------------------

def _torch():
    return autodiff.torch_module()


def _xp():
    return get_backend().xp


def _traced(values):
    """True when any of `values` (already unwrapped) is a torch tensor: run the op on torch."""
    return builtins.any(autodiff.is_tensor(v) for v in values)


def _dtype_name(dtype):
    """"float32" for np.float32, "float32", torch.float32 alike."""
    text = str(dtype)
    return text.split(".")[-1] if text.startswith("torch.") else np.dtype(dtype).name


def _torch_dtype(name):
    return getattr(_torch(), _dtype_name(name))


def _is_float(dtype):
    return _dtype_name(dtype).startswith(("float", "bfloat"))


def _scalar_dtype(value):
    """Keras's dtype of a Python scalar or list: floatx for floats, int32 for ints, bool for bools."""
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return floatx()
    if array.dtype.kind in "iu":
        return "int32"
    return array.dtype.name


def _operands(*values):
    """Unwrap variables; then either all torch (mode "torch") or backend arrays (mode "xp"). Python
    scalars stay scalars (Keras's weak types)."""
    values = [autodiff.unwrap(v) for v in values]
    if _traced(values):
        return "torch", [_as_torch(v) for v in values]
    return "xp", [v if _is_python_scalar(v) else convert_to_tensor(v) for v in values]


def _is_python_scalar(value):
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def _as_torch(value):
    if autodiff.is_tensor(value) or _is_python_scalar(value) or value is None:
        return value
    return autodiff.to_torch(convert_to_tensor(value))


def _dtype_of(value):
    return _dtype_name(value.dtype)


def _to_float(value, mode):
    """Ints and bools become floatx (Keras: exp, sqrt, mean... of ints are floats)."""
    if _is_python_scalar(value):
        return float(value)
    if _is_float(value.dtype):
        return value
    return value.to(_torch_dtype(floatx())) if mode == "torch" else value.astype(floatx())


def _float_operand(x):
    mode, (x,) = _operands(x)
    return _to_float(x, mode)


def _promote(a, b, mode):
    """Keras's promotion of two operands: an int or bool array meeting a float (array or Python
    float) takes the float's dtype (floatx for a Python float); otherwise the backend's rule."""
    a_float = isinstance(a, float) or (not _is_python_scalar(a) and _is_float(a.dtype))
    b_float = isinstance(b, float) or (not _is_python_scalar(b) and _is_float(b.dtype))
    if a_float == b_float:
        return a, b
    target = (b if b_float else a)
    target_dtype = floatx() if _is_python_scalar(target) else _dtype_of(target)

    def cast_(v):
        if _is_python_scalar(v):
            return float(v)
        return v.to(_torch_dtype(target_dtype)) if mode == "torch" else v.astype(target_dtype)

    return (cast_(a), b) if b_float else (a, cast_(b))


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


# -- core ---------------------------------------------------------------------------------

def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """x as a backend array (Keras's dtypes for Python scalars and lists: floatx, int32); a torch
    tensor inside a piece stays a tensor."""
    x = autodiff.unwrap(x)
    if autodiff.is_tensor(x):
        return x if dtype is None else x.to(_torch_dtype(dtype))
    if dtype is None and not hasattr(x, "dtype"):
        dtype = _scalar_dtype(x)
    return _xp().asarray(x if hasattr(x, "shape") else np.asarray(x), dtype=None if dtype is None else _dtype_name(dtype))


def convert_to_numpy(x):
    """A host NumPy array (a torch tensor is detached first)."""
    x = autodiff.unwrap(x)
    if autodiff.is_tensor(x):
        x = autodiff.to_array(x)
    return np.asarray(get_backend().to_numpy(x) if hasattr(x, "shape") else x)


def is_tensor(x):
    """Keras's is_tensor: a backend array (or a torch tensor inside a piece)."""
    return autodiff.is_tensor(x) or isinstance(x, (np.ndarray, type(_xp().zeros(0))))


def cast(x, dtype):
    if _is_python_scalar(x):
        return convert_to_tensor(x, dtype)
    mode, (x,) = _operands(x)
    return x.to(_torch_dtype(dtype)) if mode == "torch" else x.astype(_dtype_name(dtype))


def shape(x):
    """The static shape as a tuple of ints (None for a symbolic tensor's batch axis)."""
    return tuple(None if d is None else int(d) for d in autodiff.unwrap(x).shape)


def ndim(x):
    return len(shape(x))


def size(x):
    return int(np.prod(shape(x)))


def dtype(x):
    return _dtype_of(autodiff.unwrap(x))


def stop_gradient(variable):
    mode, (x,) = _operands(variable)
    return x.detach() if mode == "torch" else x


def copy(x):
    mode, (x,) = _operands(x)
    return x.clone() if mode == "torch" else x.copy()


# -- elementwise: unary -------------------------------------------------------------------

def _unary(name, xp_name, torch_name, to_float, doc):
    def op(x):
        mode, (x,) = _operands(x)
        if to_float:
            x = _to_float(x, mode)
        if mode == "torch":
            return getattr(_torch(), torch_name)(x)
        return _xp().asarray(getattr(_xp(), xp_name)(x))

    return _named(op, name, f"Keras's ops.{name}: {doc}, elementwise.")


def _named(op, name, doc):
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


exp = _unary("exp", "exp", "exp", True, "e^x")
expm1 = _unary("expm1", "expm1", "expm1", True, "e^x - 1")
log = _unary("log", "log", "log", True, "ln x")
log1p = _unary("log1p", "log1p", "log1p", True, "ln(1 + x)")
log2 = _unary("log2", "log2", "log2", True, "log2 x")
log10 = _unary("log10", "log10", "log10", True, "log10 x")
sqrt = _unary("sqrt", "sqrt", "sqrt", True, "sqrt x")
sin = _unary("sin", "sin", "sin", True, "sin x")
cos = _unary("cos", "cos", "cos", True, "cos x")
tan = _unary("tan", "tan", "tan", True, "tan x")
tanh = _unary("tanh", "tanh", "tanh", True, "tanh x")
sinh = _unary("sinh", "sinh", "sinh", True, "sinh x")
cosh = _unary("cosh", "cosh", "cosh", True, "cosh x")
arctan = _unary("arctan", "arctan", "atan", True, "atan x")
arcsin = _unary("arcsin", "arcsin", "asin", True, "asin x")
arccos = _unary("arccos", "arccos", "acos", True, "acos x")
arctanh = _unary("arctanh", "arctanh", "atanh", True, "atanh x")
arcsinh = _unary("arcsinh", "arcsinh", "asinh", True, "asinh x")
reciprocal = _unary("reciprocal", "reciprocal", "reciprocal", True, "1 / x")
abs = _unary("abs", "abs", "abs", False, "|x|")
absolute = _unary("absolute", "abs", "abs", False, "|x|")
negative = _unary("negative", "negative", "neg", False, "-x")
square = _unary("square", "square", "square", False, "x^2")
sign = _unary("sign", "sign", "sign", False, "sign x")
floor = _unary("floor", "floor", "floor", False, "floor x")
ceil = _unary("ceil", "ceil", "ceil", False, "ceil x")
isnan = _unary("isnan", "isnan", "isnan", False, "x is NaN")
isinf = _unary("isinf", "isinf", "isinf", False, "x is +-inf")
isfinite = _unary("isfinite", "isfinite", "isfinite", False, "x is finite")
logical_not = _unary("logical_not", "logical_not", "logical_not", False, "not x")


def rsqrt(x):
    """1 / sqrt(x)."""
    return reciprocal(sqrt(x))


def erf(x):
    """The error function, elementwise."""
    mode, (x,) = _operands(x)
    x = _to_float(x, mode)
    if mode == "torch":
        return _torch().erf(x)
    if isinstance(x, np.ndarray):
        import scipy.special

        return scipy.special.erf(x).astype(x.dtype, copy=False)
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(x)


def round(x, decimals=0):
    mode, (x,) = _operands(x)
    return _torch().round(x, decimals=decimals) if mode == "torch" else _xp().round(x, decimals)


# -- elementwise: binary ------------------------------------------------------------------

def _binary(name, xp_name, torch_name, to_float, doc):
    def op(x1, x2):
        mode, (a, b) = _operands(x1, x2)
        a, b = _promote(a, b, mode)
        if to_float:
            a = _to_float(a, mode)
        if mode == "torch":
            torch = _torch()
            if _is_python_scalar(a):  # torch's functions take a scalar second, not first
                a = torch.as_tensor(a, dtype=b.dtype if _is_float(b.dtype) or isinstance(a, int) else None,
                                    device=b.device)
            if torch_name in ("maximum", "minimum", "atan2", "logical_and", "logical_or", "logical_xor") \
                    and _is_python_scalar(b):
                b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
            return getattr(torch, torch_name)(a, b)
        return _xp().asarray(getattr(_xp(), xp_name)(a, b))

    return _named(op, name, f"Keras's ops.{name}: {doc}, elementwise with broadcasting.")


add = _binary("add", "add", "add", False, "x1 + x2")
subtract = _binary("subtract", "subtract", "sub", False, "x1 - x2")
multiply = _binary("multiply", "multiply", "mul", False, "x1 * x2")
divide = _binary("divide", "true_divide", "true_divide", True, "x1 / x2")
true_divide = _binary("true_divide", "true_divide", "true_divide", True, "x1 / x2")
floor_divide = _binary("floor_divide", "floor_divide", "floor_divide", False, "floor(x1 / x2)")
mod = _binary("mod", "mod", "remainder", False, "x1 mod x2")
maximum = _binary("maximum", "maximum", "maximum", False, "max(x1, x2)")
minimum = _binary("minimum", "minimum", "minimum", False, "min(x1, x2)")
arctan2 = _binary("arctan2", "arctan2", "atan2", True, "atan2(x1, x2)")
equal = _binary("equal", "equal", "eq", False, "x1 == x2")
not_equal = _binary("not_equal", "not_equal", "ne", False, "x1 != x2")
greater = _binary("greater", "greater", "gt", False, "x1 > x2")
greater_equal = _binary("greater_equal", "greater_equal", "ge", False, "x1 >= x2")
less = _binary("less", "less", "lt", False, "x1 < x2")
less_equal = _binary("less_equal", "less_equal", "le", False, "x1 <= x2")
logical_and = _binary("logical_and", "logical_and", "logical_and", False, "x1 and x2")
logical_or = _binary("logical_or", "logical_or", "logical_or", False, "x1 or x2")
logical_xor = _binary("logical_xor", "logical_xor", "logical_xor", False, "x1 xor x2")


def power(x1, x2):
    """x1 ** x2, elementwise (an int array to a Python float power gives floatx, as Keras)."""
    mode, (a, b) = _operands(x1, x2)
    a, b = _promote(a, b, mode)
    if mode == "torch":
        return _torch().pow(a, b)
    return _xp().power(a, b)


def clip(x, x_min, x_max):
    """min(max(x, x_min), x_max) (Keras keeps x's dtype; bools become int32)."""
    mode, (x,) = _operands(x)
    if _dtype_of(x) == "bool":
        x = cast(x, "int32")
    if mode == "torch":
        return _torch().clamp(x, _as_torch(autodiff.unwrap(x_min)), _as_torch(autodiff.unwrap(x_max)))
    return _xp().clip(x, x_min, x_max).astype(x.dtype, copy=False)


def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2 (with one argument: the indices where it holds)."""
    if x1 is None and x2 is None:
        mode, (condition,) = _operands(condition)
        return _torch().nonzero(condition, as_tuple=True) if mode == "torch" else _xp().nonzero(condition)
    mode, (condition, a, b) = _operands(condition, x1, x2)
    a, b = _promote(a, b, mode)
    if mode == "torch":
        torch = _torch()
        ref = a if autodiff.is_tensor(a) else b if autodiff.is_tensor(b) else None
        dtype_ = _torch_dtype(_scalar_dtype(a)) if ref is None else ref.dtype
        a, b = (torch.as_tensor(v, dtype=dtype_, device=condition.device) if _is_python_scalar(v) else v for v in (a, b))
        return torch.where(condition.bool(), a, b)
    result = _xp().where(condition, a, b)
    if _is_python_scalar(a) and _is_python_scalar(b):
        return result.astype(_scalar_dtype(a))
    return result


# -- reductions ---------------------------------------------------------------------------

def _reduce(x, axis, keepdims, xp_name, torch_name, result="keep"):
    """A reduction over `axis` (None: all). result: "keep" x's dtype (bools -> int32), "float"
    (floatx for ints), "int32" (argmax) or "bool"."""
    mode, (x,) = _operands(x)
    axis = _axis(axis)
    if result == "float":
        x = _to_float(x, mode)
    if mode == "torch":
        torch = _torch()
        if axis is None:
            value = getattr(torch, torch_name)(x.reshape(-1), dim=0)
            value = value.reshape((1,) * x.ndim) if keepdims else value
        else:
            value = getattr(torch, torch_name)(x, dim=axis, keepdim=keepdims)
    else:
        value = _xp().asarray(getattr(_xp(), xp_name)(x, axis=axis, keepdims=keepdims))  # not a NumPy scalar
    if result == "keep":
        target = "int32" if _dtype_of(x) == "bool" else _dtype_of(x)
    else:
        target = {"float": _dtype_of(x), "int32": "int32", "bool": "bool"}[result]
    return cast(value, target) if _dtype_of(value) != target else value


def sum(x, axis=None, keepdims=False):
    """Sum over axis (int32 stays int32, bools count as int32)."""
    return _reduce(x, axis, keepdims, "sum", "sum")


def mean(x, axis=None, keepdims=False):
    """Mean over axis (floatx for ints)."""
    return _reduce(x, axis, keepdims, "mean", "mean", "float")


def max(x, axis=None, keepdims=False, initial=None):
    value = _reduce(x, axis, keepdims, "max", "amax")
    return value if initial is None else maximum(value, initial)


def min(x, axis=None, keepdims=False, initial=None):
    value = _reduce(x, axis, keepdims, "min", "amin")
    return value if initial is None else minimum(value, initial)


amax, amin = max, min


def prod(x, axis=None, keepdims=False, dtype=None):
    if isinstance(axis, (tuple, list)):
        for a in sorted((a % ndim(x) for a in axis), reverse=True):
            x = prod(x, a, keepdims)
        return x
    value = _reduce(x, axis, keepdims, "prod", "prod")
    return value if dtype is None else cast(value, dtype)


def var(x, axis=None, keepdims=False):
    """The biased variance (divides by n), floatx for ints."""
    centered = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(centered), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def all(x, axis=None, keepdims=False):
    return _reduce(cast(x, "bool"), axis, keepdims, "all", "all", "bool")


def any(x, axis=None, keepdims=False):
    return _reduce(cast(x, "bool"), axis, keepdims, "any", "any", "bool")


def _arg(x, axis, keepdims, xp_name, torch_name):
    mode, (x,) = _operands(x)
    if mode == "torch":
        value = getattr(_torch(), torch_name)(x if axis is not None else x.reshape(-1), dim=0 if axis is None else axis,
                                              keepdim=keepdims and axis is not None)
        if keepdims and axis is None:
            value = value.reshape((1,) * x.ndim)
    else:
        value = _xp().asarray(getattr(_xp(), xp_name)(x, axis=axis, keepdims=keepdims))
    return cast(value, "int32")


def argmax(x, axis=None, keepdims=False):
    """Index of the largest value along axis (flattened when None), int32."""
    return _arg(x, axis, keepdims, "argmax", "argmax")


def argmin(x, axis=None, keepdims=False):
    return _arg(x, axis, keepdims, "argmin", "argmin")


def cumsum(x, axis=None, dtype=None):
    mode, (x,) = _operands(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    value = _torch().cumsum(x, dim=axis) if mode == "torch" else _xp().cumsum(x, axis=axis)
    target = dtype or ("int32" if _dtype_of(x) == "bool" else _dtype_of(x))
    return cast(value, target)


def logsumexp(x, axis=None, keepdims=False):
    """log sum e^x over axis, computed as m + log sum e^(x - m), m the max (stable)."""
    x = _float_operand(x)
    peak = stop_gradient(max(x, axis=axis, keepdims=True))
    peak = where(isfinite(peak), peak, zeros_like(peak))
    value = add(log(sum(exp(subtract(x, peak)), axis=axis, keepdims=True)), peak)
    return value if keepdims else squeeze(value, axis=axis)


def norm(x, ord=None, axis=None, keepdims=False):
    """The 2-norm (Frobenius over two axes) sqrt(sum x^2) over axis; other orders are not in gpudl."""
    if ord not in (None, 2, "fro", "euclidean"):
        raise NotImplementedError(f"ops.norm: ord={ord!r} is not in gpudl; the 2-norm (ord=None) is.")
    return sqrt(sum(square(_float_operand(x)), axis=axis, keepdims=keepdims))


# -- shapes and indexing ------------------------------------------------------------------

def reshape(x, newshape):
    mode, (x,) = _operands(x)
    newshape = (newshape,) if isinstance(newshape, int) else tuple(-1 if d is None else int(d) for d in newshape)
    return x.reshape(newshape)


def transpose(x, axes=None):
    mode, (x,) = _operands(x)
    if mode == "torch":
        return x.permute(*(axes if axes is not None else reversed(range(x.ndim))))
    return _xp().transpose(x, axes)


def expand_dims(x, axis):
    mode, (x,) = _operands(x)
    axes = sorted(a % (x.ndim + len(axis)) for a in axis) if isinstance(axis, (tuple, list)) else [axis]
    for a in axes:
        x = x.unsqueeze(a) if mode == "torch" else _xp().expand_dims(x, a)
    return x


def squeeze(x, axis=None):
    mode, (x,) = _operands(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = tuple(a % x.ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ValueError(f"ops.squeeze: cannot select an axis to squeeze out which has size not equal to "
                             f"one; axis {bad[0]} of shape {tuple(x.shape)}.")
    return x.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))


def _sequence(xs):
    mode, arrays = _operands(*xs)
    dtypes = {_dtype_of(a) for a in arrays}
    floats = [d for d in dtypes if _is_float(d)]
    if floats and len(dtypes) > 1:  # Keras: ints meeting floats take the (widest) float dtype
        widest = builtins.max(floats, key=lambda d: np.dtype(d).itemsize)
        arrays = [cast(a, widest) for a in arrays]
    return mode, arrays


def concatenate(xs, axis=0):
    mode, arrays = _sequence(xs)
    return _torch().cat(arrays, dim=axis) if mode == "torch" else _xp().concatenate(arrays, axis=axis)


def stack(x, axis=0):
    mode, arrays = _sequence(x)
    return _torch().stack(arrays, dim=axis) if mode == "torch" else _xp().stack(arrays, axis=axis)


def _indices(indices, mode):
    indices = autodiff.unwrap(indices)
    if mode == "torch":
        return _as_torch(indices).long()
    return convert_to_tensor(indices).astype(np.int64, copy=False)


def take(x, indices, axis=None):
    """x's entries at `indices` along axis (of the flattened x when None); negative indices count back."""
    mode, (x,) = _operands(x)
    indices = _indices(indices, mode)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    if mode == "torch":
        axis = axis % x.ndim
        flat = indices.reshape(-1) % x.shape[axis]
        picked = _torch().index_select(x, axis, flat)
        return picked.reshape(x.shape[:axis] + tuple(indices.shape) + x.shape[axis + 1:])
    return _xp().take(x, indices, axis=axis)


def take_along_axis(x, indices, axis=None):
    mode, (x,) = _operands(x)
    indices = _indices(indices, mode)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    if mode == "torch":
        shape_ = list(builtins.map(builtins.max, x.shape, indices.shape))
        shape_[axis] = indices.shape[axis]
        return _torch().gather(x.expand(*[s if i != axis else x.shape[axis] for i, s in enumerate(shape_)]), axis,
                               (indices % x.shape[axis]).expand(*shape_))
    return _xp().take_along_axis(x, indices, axis=axis)


def tile(x, repeats):
    mode, (x,) = _operands(x)
    return x.repeat(*_tile_reps(x, repeats)) if mode == "torch" else _xp().tile(x, repeats)


def _tile_reps(x, repeats):
    reps = (repeats,) if isinstance(repeats, int) else tuple(repeats)
    return (1,) * (x.ndim - len(reps)) + reps


def repeat(x, repeats, axis=None):
    mode, (x,) = _operands(x)
    if mode == "torch":
        return _torch().repeat_interleave(x if axis is not None else x.reshape(-1), repeats, dim=axis or 0)
    return _xp().repeat(x, repeats, axis=axis)


def flip(x, axis=None):
    mode, (x,) = _operands(x)
    if mode == "torch":
        dims = tuple(range(x.ndim)) if axis is None else (axis if isinstance(axis, (tuple, list)) else (axis,))
        return _torch().flip(x, dims)
    return _xp().flip(x, axis=axis)


def broadcast_to(x, shape):
    mode, (x,) = _operands(x)
    return x.expand(*shape) if mode == "torch" else _xp().broadcast_to(x, shape)


def swapaxes(x, axis1, axis2):
    mode, (x,) = _operands(x)
    return x.transpose(axis1, axis2) if mode == "torch" else _xp().swapaxes(x, axis1, axis2)


def moveaxis(x, source, destination):
    mode, (x,) = _operands(x)
    return _torch().movedim(x, source, destination) if mode == "torch" else _xp().moveaxis(x, source, destination)


def ravel(x):
    return reshape(x, (-1,))


def split(x, indices_or_sections, axis=0):
    mode, (x,) = _operands(x)
    if mode == "torch":
        if isinstance(indices_or_sections, int):
            return list(_torch().tensor_split(x, indices_or_sections, dim=axis))
        return list(_torch().tensor_split(x, list(indices_or_sections), dim=axis))
    return _xp().split(x, indices_or_sections, axis=axis)


def sort(x, axis=-1):
    mode, (x,) = _operands(x)
    return _torch().sort(x, dim=axis).values if mode == "torch" else _xp().sort(x, axis=axis)


def argsort(x, axis=-1):
    mode, (x,) = _operands(x)
    value = _torch().argsort(x, dim=axis, stable=True) if mode == "torch" else _xp().argsort(x, axis=axis, kind="stable")
    return cast(value, "int32")


# -- linear algebra -----------------------------------------------------------------------

def matmul(x1, x2):
    """Matrix product with NumPy's rules (batched over leading axes)."""
    mode, (a, b) = _operands(x1, x2)
    a, b = _promote(a, b, mode)
    return _torch().matmul(a, b) if mode == "torch" else _xp().matmul(a, b)


def dot(x1, x2):
    mode, (a, b) = _operands(x1, x2)
    a, b = _promote(a, b, mode)
    if mode == "torch":
        if a.ndim == 0 or b.ndim == 0:
            return a * b
        if b.ndim == 1 or a.ndim == 1:
            return _torch().matmul(a, b)
        return _torch().tensordot(a, b, dims=([a.ndim - 1], [b.ndim - 2]))
    return _xp().asarray(_xp().dot(a, b))


def tensordot(x1, x2, axes=2):
    mode, (a, b) = _operands(x1, x2)
    a, b = _promote(a, b, mode)
    return _torch().tensordot(a, b, dims=axes) if mode == "torch" else _xp().tensordot(a, b, axes=axes)


def outer(x1, x2):
    return multiply(expand_dims(ravel(x1), -1), expand_dims(ravel(x2), 0))


def einsum(subscripts, *operands):
    mode, arrays = _sequence(operands)
    if mode == "torch":
        return _torch().einsum(subscripts, *arrays)
    return _xp().einsum(subscripts, *arrays)


# -- creation -----------------------------------------------------------------------------

def _created(array, dtype):
    return array.astype(_dtype_name(dtype or floatx()), copy=False)


def zeros(shape, dtype=None):
    return _xp().zeros(shape, dtype=_dtype_name(dtype or floatx()))


def ones(shape, dtype=None):
    return _xp().ones(shape, dtype=_dtype_name(dtype or floatx()))


def full(shape, fill_value, dtype=None):
    return _xp().full(shape, fill_value, dtype=_dtype_name(dtype or _scalar_dtype(fill_value)))


def eye(N, M=None, k=0, dtype=None):
    return _xp().eye(N, M, k, dtype=_dtype_name(dtype or floatx()))


identity = eye


def _like(x, fill, dtype):
    mode, (x,) = _operands(x)
    if mode == "torch":
        return _torch().full_like(x, fill, dtype=None if dtype is None else _torch_dtype(dtype))
    return _xp().full_like(x, fill, dtype=None if dtype is None else _dtype_name(dtype))


def zeros_like(x, dtype=None):
    return _like(x, 0, dtype)


def ones_like(x, dtype=None):
    return _like(x, 1, dtype)


def full_like(x, fill_value, dtype=None):
    return _like(x, fill_value, dtype)


def arange(start, stop=None, step=1, dtype=None):
    """Keras: int32 for int arguments, floatx when any is a float."""
    values = [v for v in (start, stop, step) if v is not None]
    default = floatx() if builtins.any(isinstance(v, float) for v in values) else "int32"
    return _xp().arange(start, stop, step).astype(_dtype_name(dtype or default))


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    return _xp().linspace(start, stop, num, endpoint=endpoint).astype(_dtype_name(dtype or floatx()))


# -- nn -----------------------------------------------------------------------------------

def relu(x):
    """max(x, 0)."""
    mode, (x,) = _operands(x)
    return _torch().relu(x) if mode == "torch" else _xp().maximum(x, x.dtype.type(0))


def relu6(x):
    return clip(relu(x), 0.0, 6.0)


def sigmoid(x):
    """1 / (1 + e^-x), computed without overflow."""
    mode, (x,) = _operands(x)
    x = _to_float(x, mode)
    if mode == "torch":
        return _torch().sigmoid(x)
    positive = x >= 0
    e = _xp().exp(-_xp().abs(x))
    return _xp().where(positive, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|)."""
    return add(relu(x), log1p(exp(negative(abs(x)))))


def log_sigmoid(x):
    """log sigmoid(x) = -softplus(-x)."""
    return negative(softplus(negative(x)))


def softsign(x):
    return divide(x, add(abs(x), 1.0))


def silu(x):
    """x sigmoid(x)."""
    return multiply(x, sigmoid(x))


swish = silu


def hard_sigmoid(x):
    return divide(clip(add(x, 3.0), 0.0, 6.0), 6.0)


def hard_silu(x):
    return multiply(x, hard_sigmoid(x))


def elu(x, alpha=1.0):
    """x if x > 0 else alpha (e^x - 1)."""
    return where(greater(x, 0), x, multiply(expm1(minimum(x, 0.0)), alpha))


def selu(x):
    return multiply(elu(x, 1.6732632423543772848170429916717), 1.0507009873554804934193349852946)


def leaky_relu(x, negative_slope=0.2):
    return where(greater_equal(x, 0), x, multiply(x, negative_slope))


def gelu(x, approximate=True):
    """Keras's default is the tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
    approximate=False: x Phi(x) = x/2 (1 + erf(x / sqrt 2))."""
    if approximate:
        inner = multiply(add(x, multiply(power(x, 3), 0.044715)), math.sqrt(2 / math.pi))
        return multiply(multiply(x, 0.5), add(tanh(inner), 1.0))
    return multiply(multiply(x, 0.5), add(erf(divide(x, math.sqrt(2.0))), 1.0))


def softmax(x, axis=-1):
    """e^(x - max) / sum e^(x - max) over axis."""
    shifted = subtract(x, stop_gradient(max(x, axis=axis, keepdims=True)))
    e = exp(shifted)
    return divide(e, sum(e, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) over axis."""
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """A 1 at each integer of x among num_classes (a new last axis by default); floatx."""
    mode, (x,) = _operands(x)
    classes = arange(num_classes)
    if mode == "torch":
        classes = autodiff.to_torch(classes)
    hot = cast(equal(expand_dims(x, -1), classes), dtype or floatx())
    return hot if axis in (-1, ndim(hot) - 1) else moveaxis(hot, -1, axis)


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise -(t log o + (1 - t) log(1 - o)), o clipped to [eps, 1 - eps]; from logits:
    -(t log sigmoid(z) + (1 - t) log sigmoid(-z))."""
    if from_logits:
        return subtract(negative(multiply(target, log_sigmoid(output))),
                        multiply(subtract(1.0, target), log_sigmoid(negative(output))))
    output = clip(output, epsilon(), 1.0 - epsilon())
    return negative(add(multiply(target, log(output)), multiply(subtract(1.0, target), log(subtract(1.0, output)))))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum_k t_k log q_k over axis: q = softmax(output) from logits, else output / sum(output)
    clipped to [eps, 1 - eps]."""
    if from_logits:
        log_prob = log_softmax(output, axis=axis)
    else:
        output = divide(output, sum(output, axis=axis, keepdims=True))
        log_prob = log(clip(output, epsilon(), 1.0 - epsilon()))
    return negative(sum(multiply(target, log_prob), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """categorical_crossentropy of one_hot(target) (a trailing axis of 1 is dropped first)."""
    if ndim(target) == ndim(output) and shape(target)[-1] == 1:
        target = squeeze(target, axis=-1)
    return categorical_crossentropy(one_hot(target, shape(output)[axis], dtype=dtype(output)), output,
                                    from_logits=from_logits, axis=axis)


def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, biased variance) over axes."""
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def normalize(x, axis=-1, order=2, epsilon=None):
    """x / max(||x||, eps) along axis."""
    if order != 2:
        raise NotImplementedError(f"ops.normalize: order={order!r} is not in gpudl; order=2 is.")
    floor = 1e-12 if epsilon is None else epsilon
    return divide(x, sqrt(maximum(sum(square(x), axis=axis, keepdims=True), floor * floor)))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    mode, (x,) = _operands(x)
    if mode == "torch":
        return _torch().nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    return _xp().nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


def count_nonzero(x, axis=None):
    return sum(cast(not_equal(x, 0), "int32"), axis=axis)


def average(x, axis=None, weights=None):
    if weights is None:
        return mean(x, axis=axis)
    return divide(sum(multiply(x, weights), axis=axis), sum(multiply(ones_like(x), weights), axis=axis))


def top_k(x, k, sorted=True):
    """(values, int32 indices) of the k largest along the last axis."""
    mode, (x,) = _operands(x)
    if mode == "torch":
        values, indices = _torch().topk(x, k, dim=-1, sorted=True)
        return values, cast(indices, "int32")
    indices = _xp().argsort(-x, axis=-1, kind="stable")[..., :k]
    return _xp().take_along_axis(x, indices, axis=-1), indices.astype("int32")


def _accepts_symbolic(fn):
    """On keras.Input-made tensors the op becomes a node of the functional graph (OpLayer)."""
    import functools

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if builtins.any(isinstance(a, KerasTensor) or (isinstance(a, (list, tuple)) and builtins.any(
                isinstance(item, KerasTensor) for item in a)) for a in args):
            from gpudl.frontend.layers.op_layer import symbolic_call

            return symbolic_call(fn, args, kwargs)
        return fn(*args, **kwargs)

    return op


def getitem(x, key):
    """x[key] (what `tensor[:, :8]` on a symbolic tensor records)."""
    return autodiff.unwrap(x)[key]


_SYMBOLIC = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "matmul", "exp", "getitem",
             "concatenate", "stack",
             "log", "sqrt", "square", "abs", "negative", "tanh", "relu", "sigmoid", "softmax", "log_softmax", "gelu",
             "silu", "clip", "mean", "sum", "max", "min", "reshape", "transpose", "expand_dims", "squeeze", "where",
             "sin", "cos", "softplus", "elu", "leaky_relu", "normalize"]
for _name in _SYMBOLIC:
    globals()[_name] = _accepts_symbolic(globals()[_name])
OPERATORS.update(add=add, subtract=subtract, multiply=multiply, divide=divide, power=power, matmul=matmul,
                 negative=negative, getitem=getitem)  # `x * 2`, `x[:, :8]` on a KerasTensor are op nodes too


def __getattr__(name):
    """An op Keras has and gpudl does not: say so (a module-level AttributeError)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from gpudl.errors import NotInGpudl

    raise NotInGpudl(f"keras.ops.{name} is not in gpudl's ops (the numpy, nn and math ops an MLP uses are: "
                     f"see gpudl.ops). Convolution, recurrent, image and signal ops are out of scope.")
