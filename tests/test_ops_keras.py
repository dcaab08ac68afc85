"""gpudl.ops against keras.ops (Keras 3.15.1 on JAX, run here) on the same fresh random inputs: values,
dtypes and shapes; then the same ops on torch tensors (the differentiated path) give the same values,
and autograd's gradients through them match float64 finite differences."""

import numpy as np
import pytest

import gpudl
from gpudl import ops

keras = pytest.importorskip("keras")
kops = keras.ops
torch = pytest.importorskip("torch")

rng = np.random.default_rng(2113)
F = rng.normal(size=(4, 5)).astype("float32")
G = rng.normal(size=(4, 5)).astype("float32")
P = rng.uniform(0.05, 1.0, size=(4, 5)).astype("float32")
ROW = rng.normal(size=(5,)).astype("float32")
I = rng.integers(-3, 9, size=(4, 5)).astype("int32")
LABELS = rng.integers(0, 5, size=(4,)).astype("int32")
ONE_HOT = np.eye(5, dtype="float32")[LABELS]
T = rng.uniform(0, 1, size=(4, 5)).astype("float32")
B3 = rng.normal(size=(2, 4, 5)).astype("float32")
M = rng.normal(size=(5, 3)).astype("float32")

CASES = [  # (name, args, kwargs)
    ("add", (F, G), {}), ("add", (I, F), {}), ("add", (I, 1.5), {}), ("add", (F, ROW), {}), ("add", (I, 2), {}),
    ("subtract", (F, ROW), {}), ("multiply", (I, 2.0), {}), ("divide", (I, 4), {}), ("divide", (F, P), {}),
    ("true_divide", (F, 3.0), {}), ("floor_divide", (I, 2), {}), ("mod", (I, 4), {}), ("power", (P, 2.5), {}),
    ("power", (I, 2), {}), ("power", (np.abs(I), 0.5), {}), ("negative", (I,), {}), ("abs", (F,), {}), ("absolute", (I,), {}),
    ("exp", (F,), {}), ("exp", (I,), {}), ("expm1", (F,), {}), ("log", (P,), {}), ("log1p", (P,), {}),
    ("log2", (P,), {}), ("log10", (P,), {}), ("sqrt", (P,), {}), ("sqrt", (np.abs(I),), {}), ("square", (F,), {}),
    ("square", (I,), {}), ("sign", (F,), {}), ("tanh", (F,), {}), ("sin", (F,), {}), ("cos", (F,), {}),
    ("arctan", (F,), {}), ("floor", (F,), {}), ("ceil", (F,), {}), ("reciprocal", (P,), {}), ("rsqrt", (P,), {}),
    ("erf", (F,), {}), ("maximum", (F, G), {}), ("maximum", (F, 0.0), {}), ("minimum", (I, F), {}),
    ("clip", (F, -0.5, 0.5), {}), ("clip", (I, 0, 4), {}),
    ("equal", (I, 2), {}), ("not_equal", (F, G), {}), ("greater", (F, G), {}), ("greater_equal", (I, 3), {}),
    ("less", (F, 0.0), {}), ("less_equal", (I, 1), {}), ("logical_and", (F > 0, G > 0), {}),
    ("logical_or", (F > 0, G > 0), {}), ("logical_not", (F > 0,), {}), ("isnan", (F,), {}), ("isfinite", (F,), {}),
    ("sum", (F,), {}), ("sum", (F,), {"axis": 1}), ("sum", (I,), {"axis": 0, "keepdims": True}),
    ("sum", (F > 0,), {}), ("sum", (B3,), {"axis": (0, 2)}), ("mean", (F,), {"axis": -1}), ("mean", (I,), {}),
    ("mean", (B3,), {"axis": [1, 2], "keepdims": True}), ("max", (F,), {"axis": 0}), ("max", (I,), {}),
    ("min", (F,), {"axis": 1, "keepdims": True}), ("prod", (P,), {"axis": 1}), ("var", (F,), {"axis": 0}),
    ("var", (I,), {}), ("std", (F,), {"axis": -1}), ("argmax", (F,), {"axis": 1}), ("argmax", (F,), {}),
    ("argmin", (I,), {"axis": 0}), ("all", (F > -3,), {"axis": 1}), ("any", (F > 1,), {}),
    ("cumsum", (F,), {"axis": 1}), ("cumsum", (I,), {}), ("logsumexp", (F,), {"axis": -1}),
    ("logsumexp", (B3,), {}), ("norm", (F,), {"axis": -1}), ("norm", (F,), {}),
    ("reshape", (F, (5, 4)), {}), ("reshape", (F, (-1,)), {}), ("transpose", (F,), {}),
    ("transpose", (B3, (2, 0, 1)), {}), ("expand_dims", (F, 1), {}), ("expand_dims", (ROW, 0), {}),
    ("squeeze", (F[:1],), {}), ("squeeze", (B3[:, :1], 1), {}),
    ("concatenate", ([F, G],), {"axis": 1}), ("concatenate", ([I, F],), {}), ("stack", ([F, G],), {}),
    ("stack", ([F, G],), {"axis": -1}), ("take", (F, np.array([3, 0, -1])), {"axis": 1}),
    ("take", (F, np.array([[1, 2], [3, 19]])), {}), ("take", (ROW, LABELS), {"axis": 0}),
    ("take_along_axis", (F, np.argsort(F, axis=1)), {"axis": 1}), ("where", (F > 0, F, G), {}),
    ("where", (F > 0, F, 0.0), {}), ("where", (I > 2, 1.0, -1.0), {}), ("tile", (ROW, 3), {}),
    ("repeat", (F, 2), {"axis": 0}), ("flip", (F, 1), {}), ("broadcast_to", (ROW, (3, 5)), {}),
    ("swapaxes", (B3, 0, 2), {}), ("moveaxis", (B3, 0, -1), {}), ("ravel", (F,), {}), ("sort", (F,), {}),
    ("argsort", (F,), {"axis": 0}), ("matmul", (F, M), {}), ("matmul", (B3, M), {}), ("dot", (F, M), {}),
    ("dot", (ROW, ROW), {}), ("tensordot", (F, M, 1), {}), ("outer", (ROW, ROW[:3]), {}),
    ("einsum", ("ij,jk->ik", F, M), {}), ("einsum", ("bij,ij->b", B3, F), {}),
    ("zeros_like", (F,), {}), ("ones_like", (I,), {}), ("full_like", (F, 2.5), {}),
    ("relu", (F,), {}), ("relu6", (F * 5,), {}), ("sigmoid", (F * 10,), {}), ("softplus", (F * 10,), {}),
    ("log_sigmoid", (F * 10,), {}), ("softsign", (F,), {}), ("silu", (F,), {}), ("swish", (F,), {}),
    ("hard_sigmoid", (F * 3,), {}), ("elu", (F,), {}), ("selu", (F,), {}), ("leaky_relu", (F,), {}),
    ("gelu", (F,), {}), ("gelu", (F,), {"approximate": False}), ("softmax", (F * 10,), {}),
    ("softmax", (F,), {"axis": 0}), ("log_softmax", (F * 10,), {}), ("one_hot", (LABELS, 5), {}),
    ("binary_crossentropy", (T, P), {}), ("binary_crossentropy", (T, F * 4), {"from_logits": True}),
    ("categorical_crossentropy", (ONE_HOT, P), {}), ("categorical_crossentropy", (T, F), {"from_logits": True}),
    ("sparse_categorical_crossentropy", (LABELS, P), {}),
    ("sparse_categorical_crossentropy", (LABELS[:, None], F), {"from_logits": True}),
    ("moments", (F, [0]), {}), ("normalize", (F,), {}), ("count_nonzero", (I,), {"axis": 1}),
    ("average", (F,), {"axis": 1, "weights": ROW}), ("top_k", (F, 2), {}),
    ("convert_to_tensor", ([1.0, 2.0],), {}), ("convert_to_tensor", ([1, 2],), {}), ("cast", (F, "int32"), {}),
    ("cast", (I, "float32"), {}), ("round", (F * 3,), {}), ("nan_to_num", (np.array([np.nan, 1.0], "float32"),), {}),
]


def _id(case):
    return f"{case[0]}-{'-'.join(str(getattr(a, 'dtype', type(a).__name__)) for a in case[1] if not isinstance(a, str))}"


def _leaves(value):
    return list(value) if isinstance(value, (tuple, list)) else [value]


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[_id(c) for c in CASES])
def test_op_matches_keras_value_dtype_and_shape(name, args, kwargs):
    expected = _leaves(getattr(kops, name)(*args, **kwargs))
    got = _leaves(getattr(ops, name)(*args, **kwargs))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        e = kops.convert_to_numpy(e)
        assert isinstance(g, np.ndarray), f"{name} gave {type(g)}, not a NumPy array on the numpy backend"
        assert g.dtype == e.dtype, f"{name}: dtype {g.dtype}, Keras {e.dtype}"
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[_id(c) for c in CASES])
def test_op_on_torch_tensors_gives_the_array_result(name, args, kwargs):
    """Inside a differentiated piece the arguments are torch tensors: the same values and dtypes."""
    expected = _leaves(getattr(ops, name)(*args, **kwargs))
    as_torch = [torch.from_numpy(np.array(a)) if isinstance(a, np.ndarray) else
                [torch.from_numpy(b) for b in a] if isinstance(a, list) and isinstance(a[0], np.ndarray) else a
                for a in args]
    if name in ("take", "take_along_axis", "one_hot", "sparse_categorical_crossentropy", "convert_to_tensor"):
        pytest.skip("index and creation arguments are data, not differentiated tensors")
    got = _leaves(getattr(ops, name)(*as_torch, **kwargs))
    for g, e in zip(got, expected):
        assert isinstance(g, torch.Tensor)
        assert str(g.dtype).replace("torch.", "") == e.dtype.name, name
        np.testing.assert_allclose(g.numpy(), e, rtol=2e-6, atol=2e-6)


SMOOTH = ["exp", "log1p", "tanh", "sigmoid", "softplus", "silu", "gelu", "softmax", "log_softmax", "logsumexp",
          "square", "sqrt", "norm", "elu"]


@pytest.mark.parametrize("name", SMOOTH)
def test_torch_gradient_of_an_op_matches_float64_differences(name):
    x = rng.uniform(0.1, 2.0, size=(3, 4))
    weights = rng.normal(size=(3, 4)) if name not in ("logsumexp", "norm") else rng.normal(size=(3,))
    kwargs = {"axis": -1} if name in ("logsumexp", "norm") else {}

    def objective(array_or_tensor):
        value = getattr(ops, name)(array_or_tensor, **kwargs)
        return ops.sum(ops.multiply(value, weights if not torch.is_tensor(value) else torch.from_numpy(weights)))

    tensor = torch.from_numpy(x.copy()).requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(tensor), tensor)
    approx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += 1e-6
        minus[i] -= 1e-6
        approx[i] = (float(objective(plus)) - float(objective(minus))) / 2e-6
    np.testing.assert_allclose(grad.numpy(), approx, rtol=1e-6, atol=1e-7)


def test_ops_is_keras_ops_under_import_gpudl_as_keras():
    import gpudl as keras_like
    from gpudl import ops as imported

    assert keras_like.ops is imported is ops
    import importlib

    assert importlib.import_module("gpudl.ops") is ops


def test_op_gpudl_lacks_names_itself():
    with pytest.raises(NotImplementedError, match="conv"):
        ops.conv
    assert not hasattr(ops, "conv")


def test_weight_reads_as_its_array_in_an_op():
    layer = gpudl.layers.Dense(3)
    layer.build((None, 5))
    np.testing.assert_allclose(ops.matmul(F, layer.kernel), F @ layer.kernel.numpy(), rtol=1e-6)


def test_take_and_take_along_axis_on_torch_data_match_numpy_and_carry_gradients():
    data = torch.from_numpy(F.astype("float64")).requires_grad_(True)
    index = np.array([3, 0, -1])
    picked = ops.take(data, index, axis=1)
    np.testing.assert_allclose(picked.detach().numpy(), np.take(F, index, axis=1), rtol=1e-7)
    order = np.argsort(F, axis=1)
    along = ops.take_along_axis(data, order, axis=1)
    np.testing.assert_allclose(along.detach().numpy(), np.take_along_axis(F, order, axis=1), rtol=1e-7)
    (grad,) = torch.autograd.grad(ops.sum(picked) + ops.sum(along), data)
    expected = np.ones(F.shape)  # take_along_axis of a permutation touches each entry once
    np.add.at(expected, (slice(None), index % F.shape[1]), 1.0)
    np.testing.assert_allclose(grad.numpy(), expected)
