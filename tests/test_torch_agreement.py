"""gpudl and PyTorch, from the same initial weights on the same mini-batches, take the
same optimizer steps: losses and weights agree in float64 to a relative 1e-6."""

import numpy as np
import pytest

import gpudl
from gpudl.layers import BatchNormalization, Dense, ReLU

torch = pytest.importorskip("torch")

STEPS, BATCH = 8, 16


def gpudl_mlp(optimizer, l2):
    model = gpudl.Sequential([
        gpudl.Input((7,)),
        # no bias before batch norm (the course: it is redundant, its gradient is zero, and
        # Adam would turn round-off in that zero into steps)
        Dense(12, use_bias=False, kernel_initializer="he_normal",
              kernel_regularizer=gpudl.regularizers.L2(l2) if l2 else None),
        BatchNormalization(momentum=0.9, epsilon=1e-3), ReLU(),
        Dense(5, activation="softmax"),
    ], dtype="float64")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def torch_mlp(weights):
    kernel1, gamma, beta, _, _, kernel2, bias2 = (torch.tensor(w) for w in weights)
    linear1, linear2 = torch.nn.Linear(7, 12, bias=False).double(), torch.nn.Linear(12, 5).double()
    norm = torch.nn.BatchNorm1d(12, eps=1e-3).double()
    with torch.no_grad():
        linear1.weight.copy_(kernel1.T)
        norm.weight.copy_(gamma), norm.bias.copy_(beta)
        linear2.weight.copy_(kernel2.T), linear2.bias.copy_(bias2)
    return torch.nn.Sequential(linear1, norm, torch.nn.ReLU(), linear2), (linear1, norm, linear2)


CASES = {
    "sgd": (lambda: gpudl.optimizers.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (lambda: gpudl.optimizers.SGD(0.05, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "sgd_nesterov": (lambda: gpudl.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "rmsprop": (lambda: gpudl.optimizers.RMSprop(0.01, rho=0.9, epsilon=1e-8),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
    "adam": (lambda: gpudl.optimizers.Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adamw": (lambda: gpudl.optimizers.AdamW(0.01, weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_steps_match_pytorch_float64(name, l2):
    make_gpudl, make_torch = CASES[name]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(STEPS * BATCH, 7))
    y = rng.integers(0, 5, size=STEPS * BATCH)
    model = gpudl_mlp(make_gpudl(), l2)
    net, (linear1, norm, linear2) = torch_mlp(model.get_weights())
    optimizer = make_torch(net.parameters())
    for step in range(STEPS):
        xb, yb = x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH]
        ours = model.train_on_batch(xb, yb)
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(xb)), torch.tensor(yb))
        loss = loss + l2 * (linear1.weight ** 2).sum()
        loss.backward()
        optimizer.step()
        np.testing.assert_allclose(ours, loss.item(), rtol=1e-6)
    kernel1, gamma, beta, _, _, kernel2, bias2 = model.get_weights()
    expected = [linear1.weight.T, norm.weight, norm.bias, linear2.weight.T, linear2.bias]
    for ours, theirs in zip([kernel1, gamma, beta, kernel2, bias2], expected):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_course_momentum_matches_manual_update_on_pytorch_gradients():
    """Momentum(beta) is the course's v = beta v + (1 - beta) g; w -= lr v, applied here by
    hand to PyTorch's float64 gradients (PyTorch's own SGD starts its buffer at g, undamped)."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(64, 7)), rng.integers(0, 5, size=64)
    lr, beta = 0.1, 0.8
    model = gpudl_mlp(gpudl.optimizers.Momentum(lr, beta=beta), 0.0)
    net, _ = torch_mlp(model.get_weights())
    velocities = [torch.zeros_like(p) for p in net.parameters()]
    for step in range(4):
        xb, yb = x[step * 16:(step + 1) * 16], y[step * 16:(step + 1) * 16]
        ours = model.train_on_batch(xb, yb)
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(xb)), torch.tensor(yb))
        loss.backward()
        with torch.no_grad():
            for p, v in zip(net.parameters(), velocities):
                v.mul_(beta).add_((1 - beta) * p.grad)
                p.sub_(lr * v)
        np.testing.assert_allclose(ours, loss.item(), rtol=1e-6)
    linear1, norm, _, linear2 = net
    np.testing.assert_allclose(model.get_weights()[0], linear1.weight.T.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.get_weights()[5], linear2.weight.T.detach().numpy(), rtol=1e-6)
