"""Fused BatchNormalization -> ReLU [-> Dropout] blocks (gpudl.frontend.layers.fusion): the fused
path is taken on the GPU backends (seen by the recording device of gpudl.tools.count), it gives
the unfused path's numbers (Triton interpreter, CUDA-on-CPU harness) and the NumPy reference's,
and what is not the canonical block is left alone."""

import os

import numpy as np
import pytest

import gpudl
from gpudl import backend
from gpudl.kernels import batchnorm, dropout
from gpudl.layers import Activation, BatchNormalization, Dense, Dropout, ReLU
from gpudl.tools import count
from gpudl.tools.cuda_cpu import cupy_on_cpu

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs the Triton interpreter")

BATCH = 16


def mlp(middle, rate=0.25, width=24):
    """Input(12) -> Dense(width) -> middle layers -> Dense(5, softmax), SGD, sparse CE."""
    model = gpudl.Sequential([gpudl.Input((12,)), Dense(width), *middle(rate), Dense(5, activation="softmax")], seed=3)
    # SGD: Adam would turn the ~0 gradient of the bias under the batch-norm into +-lr steps of rounding noise
    model.compile(optimizer=gpudl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


CANONICAL = lambda rate: [BatchNormalization(), ReLU(), Dropout(rate)]  # noqa: E731
ACTIVATION_RELU = lambda rate: [BatchNormalization(), Activation("relu"), Dropout(rate)]  # noqa: E731
LEAKY = lambda rate: [BatchNormalization(), ReLU(negative_slope=0.1), Dropout(rate)]  # noqa: E731
BN_THEN_DENSE = lambda rate: [BatchNormalization(), Dense(24), ReLU(), Dropout(rate)]  # noqa: E731
DENSE_RELU_DROPOUT = lambda rate: [Dense(24, activation="relu"), Dropout(rate)]  # noqa: E731
DENSE_THEN_RELU = lambda rate: [ReLU(), Dropout(rate), Dense(24), ReLU()]  # noqa: E731


def data(steps=2):
    rng = np.random.default_rng(7)
    return rng.standard_normal((steps * BATCH, 12)).astype(np.float32), rng.integers(0, 5, steps * BATCH)


@pytest.fixture(autouse=True)
def numpy_afterwards():
    yield
    backend.set_backend("numpy")


def trained_weights(middle, rate, run, initial):
    """Weights after two fit() steps from `initial`, with `run` the backend context."""
    x, y = data()
    with run():
        model = mlp(middle, rate)
        model.build((None, 12))
        model.set_weights(initial)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        return [np.array(w) for w in model.get_weights()], model


def initial_weights(middle, rate):
    backend.set_backend("numpy")
    model = mlp(middle, rate)
    model.build((None, 12))
    return [np.array(w) for w in model.get_weights()]


def on_numpy():
    backend.set_backend("numpy")
    return _nothing()


def on_triton(fused=True):
    def run():
        backend.set_backend("triton")
        return _fusing(fused)
    return run


def on_cupy(fused=True):
    def run():
        return _chained(count.recording("cupy"), _fusing(fused))
    return run


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _chained:
    def __init__(self, *contexts):
        self.contexts = contexts

    def __enter__(self):
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc):
        for context in reversed(self.contexts):
            context.__exit__(*exc)
        return False


class _fusing:
    """fused=False: the GPU backend runs the unfused path (as the NumPy backend does)."""

    def __init__(self, fused):
        self.fused = fused

    def __enter__(self):
        self.saved = backend.Backend.fuses_passes
        if not self.fused:
            backend.Backend.fuses_passes = property(lambda self: False)

    def __exit__(self, *exc):
        backend.Backend.fuses_passes = self.saved
        return False


@pytest.mark.parametrize("middle", [CANONICAL, ACTIVATION_RELU, DENSE_RELU_DROPOUT, DENSE_THEN_RELU],
                         ids=["ReLU", "Activation", "Dense-relu-Dropout", "Dense-ReLU-Dropout"])
@pytest.mark.parametrize("rate", [0.25, 0.0])
@pytest.mark.parametrize("gpu", ["triton", "cupy"])
def test_fused_block_gives_the_unfused_numbers_and_the_numpy_reference(middle, rate, gpu):
    initial = initial_weights(middle, rate)
    reference, _ = trained_weights(middle, rate, on_numpy, initial)
    run = on_triton if gpu == "triton" else on_cupy
    fused, model = trained_weights(middle, rate, run(True), initial)
    unfused, _ = trained_weights(middle, rate, run(False), initial)
    assert [len(block.layers) for block in model.fused_blocks] == {
        CANONICAL: [3], ACTIVATION_RELU: [3], DENSE_RELU_DROPOUT: [2], DENSE_THEN_RELU: [3, 2]}[middle]
    for ours, theirs, ref in zip(fused, unfused, reference):
        assert np.array_equal(ours, theirs)  # the same kernels' arithmetic, fused or not: bit for bit
        np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=2e-5)
    assert not np.array_equal(fused[0], initial[0])  # it trained


@pytest.mark.parametrize("gpu", ["triton", "cupy"])
def test_the_canonical_block_runs_one_pass_each_way_on_the_recording_device(gpu):
    x, y = data(3)
    counted = count.count_fit_steps(gpu, lambda: mlp(CANONICAL), x, y, BATCH)
    (block,) = count.block_passes(counted["launches"], counted["model"], BATCH)
    assert (block["forward_passes"], block["backward_passes"]) == (1, 1)
    assert block["forward_reductions"] >= 1 and block["backward_reductions"] >= 1
    names = {launch.name for launch in counted["launches"] if launch.where.startswith("re_lu")
             or launch.where.startswith("dropout")}
    assert names == set()  # the ReLU and the Dropout launch nothing (the key counter advances in the head)


@pytest.mark.parametrize("middle", [LEAKY, BN_THEN_DENSE], ids=["ReLU-with-slope", "BN-then-Dense"])
def test_what_is_not_the_canonical_block_is_not_fused(middle):
    x, y = data(3)
    counted = count.count_fit_steps("triton", lambda: mlp(middle), x, y, BATCH)
    assert not [block for block in counted["model"].fused_blocks if type(block.head) is BatchNormalization]
    blocks = count.block_passes(counted["launches"], counted["model"], BATCH)
    assert all(block["forward_passes"] + block["backward_passes"] > 2 for block in blocks if len(block["layers"]) > 1)
    initial = initial_weights(middle, 0.25)
    reference, _ = trained_weights(middle, 0.25, on_numpy, initial)
    ours, _ = trained_weights(middle, 0.25, on_triton(True), initial)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_a_functional_model_is_not_planned():
    backend.set_backend("triton")
    inputs = gpudl.Input((12,))
    outputs = Dropout(0.2)(ReLU()(BatchNormalization()(Dense(8)(inputs))))
    model = gpudl.Model(inputs, outputs)
    model.build((None, 12))
    assert model.fused_blocks == []


@pytest.mark.parametrize("implementation", ["triton", "cupy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_dropout_relu_and_the_gated_backward_match_the_unfused_references(implementation, dtype):
    rng = np.random.default_rng([5, np.dtype(dtype).itemsize])
    N, C = 37, 19  # 4-element Philox groups straddle rows
    x = rng.standard_normal((N, C)).astype(dtype)
    dy = rng.standard_normal((N, C)).astype(dtype)
    gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    _, mean, rstd = batchnorm.forward_train(x, gamma, beta, np.zeros(C, dtype), np.ones(C, dtype), 0.9, 1e-3)
    counter = np.array([2, 5], np.int64)
    z = batchnorm.normalize(x, mean, rstd, gamma, beta)
    expected_y = dropout.dropout_relu(z, 0.3, 11, counter)
    expected = batchnorm.backward(dropout.dropout_relu_backward(dy, z, 0.3, 11, counter), x, gamma, beta, mean, rstd)
    with cupy_on_cpu() if implementation == "cupy" else _nothing():
        y = getattr(dropout, f"normalize_dropout_relu_{implementation}")(x, mean, rstd, gamma, beta, 0.3, 11, counter)
        got = getattr(batchnorm, f"backward_{implementation}")(dy, x, gamma, beta, mean, rstd, gate=y,
                                                                gate_scale=1 / 0.7)
    assert np.array_equal(y, expected_y)
    assert np.array_equal(dropout.normalize_dropout_relu(x, mean, rstd, gamma, beta, 0.3, 11, counter), expected_y)
    reference = batchnorm.backward(dy, x, gamma, beta, mean, rstd, gate=expected_y, gate_scale=1 / 0.7)
    eps = np.finfo(dtype).eps
    for ours, ref, unfused in zip(got, reference, expected):
        np.testing.assert_allclose(ours, ref, rtol=64 * eps, atol=64 * eps * np.abs(ref).max())
        assert np.array_equal(ref, unfused)  # the gate y > 0 is the unfused ReLU-and-dropout mask


def test_dropout_without_relu_is_refused_by_the_fused_op():
    x = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="relu=True"):
        batchnorm.forward_train(x, np.ones(2, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32),
                                np.ones(2, np.float32), 0.9, 1e-3, dropout_rate=0.5)


@pytest.mark.parametrize("gpu", ["triton", "cupy"])
def test_a_dense_not_followed_by_batch_norm_folds_bias_relu_and_dropout_into_one_pass_each_way(gpu):
    x, y = data(3)
    counted = count.count_fit_steps(gpu, lambda: mlp(DENSE_RELU_DROPOUT), x, y, BATCH)
    (block,) = counted["model"].fused_blocks  # the Dense(relu) and its Dropout
    head = block.head
    activation = BATCH * head.units
    for phase, gemms in (("forward", 1), ("backward", 2)):
        mine = [launch for launch in counted["launches"] if launch.where == f"{head.name} {phase}"]
        assert sum(launch.kind == "gemm" for launch in mine) == gemms
        passes = [launch for launch in mine if launch.kind != "gemm" and launch.elements_written >= activation]
        assert len(passes) == 1  # forward: bias + ReLU + dropout; backward: both gates


def test_a_popped_dropout_runs_on_its_own_and_a_frozen_batch_norm_is_not_fused():
    backend.set_backend("triton")
    model = mlp(CANONICAL, 0.5)
    model.build((None, 12))
    x, y = data(1)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    relu, dropout_layer = model.layers[2], model.layers[3]
    assert model.fused_blocks[0].active and dropout_layer.fused_block is model.fused_blocks[0]
    model.pop()  # the softmax Dense
    model.pop()  # the Dropout: no longer in a block
    assert dropout_layer.fused_block is None
    ones = np.ones((4, 24), np.float32)
    out = dropout_layer(ones, training=True)
    assert set(np.unique(out)) <= {0.0, 2.0} and (out == 0).any()  # it dropped, on its own
    model.layers[1].trainable = False  # batch-norm in inference mode: the ReLU runs as a layer
    model.add(Dense(5, activation="softmax"))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert not model.fused_blocks[0].active
    probe = np.random.default_rng(1).standard_normal((3, 12)).astype(np.float32)
    hidden = model.layers[1](model.layers[0](probe), training=True)
    np.testing.assert_array_equal(relu(hidden), np.maximum(hidden, 0))
