"""Gradients of functional graphs against PyTorch autograd in float64: every merge layer between two
branches, and a graph where a tensor fans out to three nodes and one Dense is applied twice. The same
graphs pass gpudl's central-difference checker in tests/test_functional.py; here an independent
autodiff engine computes the same gradients from the same weights."""

import numpy as np
import pytest

import gpudl as keras
from gpudl import layers

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(21)
X = RNG.normal(size=(8, 5))
Y = RNG.integers(0, 3, size=8)

TORCH_MERGES = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "average": lambda a, b: (a + b) / 2, "maximum": torch.maximum, "minimum": torch.minimum,
    "concatenate": lambda a, b: torch.cat([a, b], dim=1), "dot": lambda a, b: (a * b).sum(1, keepdim=True),
    "cosine": lambda a, b: (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1, keepdim=True),
}
GPUDL_MERGES = {
    "add": layers.Add, "subtract": layers.Subtract, "multiply": layers.Multiply, "average": layers.Average,
    "maximum": layers.Maximum, "minimum": layers.Minimum, "concatenate": layers.Concatenate,
    "dot": lambda: layers.Dot(axes=1), "cosine": lambda: layers.Dot(axes=1, normalize=True),
}


def torch_dense(x, layer, activation=None):
    """x @ W + b of a gpudl Dense's weights, as leaf tensors that collect their gradients."""
    kernel, bias = (torch.tensor(np.asarray(w), dtype=torch.float64, requires_grad=True) for w in layer.get_weights())
    z = x @ kernel + bias
    return (activation(z) if activation else z), [kernel, bias]


def gpudl_gradients(model):
    _, grads = model.compute_gradients(X, Y)
    return {p.path: np.asarray(g) for p, g in zip(model.trainable_weights, grads)}


def assert_same(ours, layer_list, torch_params):
    for layer, params in zip(layer_list, torch_params):
        for name, param in zip(("kernel", "bias"), params):
            np.testing.assert_allclose(ours[f"{layer.name}/{name}"], param.grad.numpy(), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{layer.name}/{name}")


@pytest.mark.parametrize("name", sorted(GPUDL_MERGES))
def test_every_merge_layer_gives_torch_autograd_gradients(name):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,), dtype="float64")
    dense_a, dense_b = layers.Dense(4, activation="tanh"), layers.Dense(4, activation="sigmoid")
    head = layers.Dense(3, activation="softmax")
    outputs = head(GPUDL_MERGES[name]()([dense_a(inputs), dense_b(inputs)]))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    ours = gpudl_gradients(model)

    x = torch.tensor(X)
    a, params_a = torch_dense(x, dense_a, torch.tanh)
    b, params_b = torch_dense(x, dense_b, torch.sigmoid)
    logits, params_head = torch_dense(TORCH_MERGES[name](a, b), head)
    F.cross_entropy(logits, torch.tensor(Y)).backward()
    assert_same(ours, [dense_a, dense_b, head], [params_a, params_b, params_head])


def test_fan_out_and_a_shared_layer_give_torch_autograd_gradients():
    keras.utils.set_random_seed(6)
    inputs = keras.Input((5,), dtype="float64")
    shared, side, head = layers.Dense(5, activation="tanh"), layers.Dense(2), layers.Dense(3, activation="softmax")
    h = shared(inputs)
    twice = shared(h)  # the same weights applied twice: their gradients add
    outputs = head(layers.concatenate([h, twice, side(h)]))  # h fans out to three nodes
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    ours = gpudl_gradients(model)

    x = torch.tensor(X)
    kernel, bias = (torch.tensor(np.asarray(w), requires_grad=True) for w in shared.get_weights())
    th = torch.tanh(x @ kernel + bias)
    t_twice = torch.tanh(th @ kernel + bias)
    t_side, params_side = torch_dense(th, side)
    logits, params_head = torch_dense(torch.cat([th, t_twice, t_side], dim=1), head)
    F.cross_entropy(logits, torch.tensor(Y)).backward()
    assert_same(ours, [shared, side, head], [[kernel, bias], params_side, params_head])


def test_two_outputs_with_weighted_losses_give_torch_autograd_gradients():
    keras.utils.set_random_seed(7)
    a, b = keras.Input((5,), dtype="float64"), keras.Input((2,), dtype="float64")
    trunk, reg, cls = layers.Dense(4, activation="relu"), layers.Dense(1), layers.Dense(3, activation="softmax")
    h = trunk(layers.concatenate([a, b]))
    model = keras.Model([a, b], [reg(h), cls(h)])
    model.compile("sgd", loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[0.25, 1.5])
    xb, y_reg = RNG.normal(size=(8, 2)), RNG.normal(size=(8, 1))
    _, grads = model.compute_gradients([X, xb], [y_reg, Y])
    ours = {p.path: np.asarray(g) for p, g in zip(model.trainable_weights, grads)}

    th, params_trunk = torch_dense(torch.cat([torch.tensor(X), torch.tensor(xb)], dim=1), trunk, torch.relu)
    t_reg, params_reg = torch_dense(th, reg)
    logits, params_cls = torch_dense(th, cls)
    loss = 0.25 * F.mse_loss(t_reg, torch.tensor(y_reg)) + 1.5 * F.cross_entropy(logits, torch.tensor(Y))
    loss.backward()
    assert_same(ours, [trunk, reg, cls], [params_trunk, params_reg, params_cls])
