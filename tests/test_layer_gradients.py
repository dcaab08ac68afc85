"""Every layer's backward pass, and whole models with each loss and regularizer, pass
the library's two-sided gradient check in float64 (relative difference under 1e-7)."""

import numpy as np
import pytest

import gpudl
from gpudl.frontend.gradient_check import gradient_check, relative_difference
from gpudl.layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, Layer, Normalization, ReLU,
                          Softmax)

RNG = np.random.default_rng(11)


def check(layers, loss, y, x_shape=(8, 5), dtype="float64"):
    model = gpudl.Sequential([gpudl.Input(x_shape[1:])] + layers, dtype=dtype)
    model.compile("sgd", loss)
    x = RNG.normal(size=x_shape)
    return gradient_check(model, x, y)


LABELS = RNG.integers(0, 3, 8)


@pytest.mark.parametrize("activation", ["linear", "relu", "leaky_relu", "tanh", "sigmoid", "softmax"])
def test_dense_with_each_activation(activation):
    result = check([Dense(4, activation=activation), Dense(3, activation="softmax")],
                   "sparse_categorical_crossentropy", LABELS)
    assert result.difference < 1e-7, result


@pytest.mark.parametrize("layer", [lambda: Activation("tanh"), lambda: ReLU(), lambda: Softmax(),
                                   lambda: BatchNormalization(), lambda: BatchNormalization(center=False, scale=False),
                                   lambda: Dropout(0.5), lambda: Normalization(mean=[1.0] * 6, variance=[4.0] * 6)])
def test_each_layer_between_two_dense_layers(layer):
    result = check([Dense(6), layer(), Dense(3, activation="softmax")], "sparse_categorical_crossentropy", LABELS)
    assert result.difference < 1e-7, result


def test_flatten_on_image_shaped_inputs():
    result = check([Flatten(), Dense(3, activation="softmax")], "sparse_categorical_crossentropy", LABELS,
                   x_shape=(8, 2, 3))
    assert result.difference < 1e-7, result


@pytest.mark.parametrize("loss, output, targets", [
    ("sparse_categorical_crossentropy", "softmax", LABELS),
    ("categorical_crossentropy", "softmax", np.eye(3)[LABELS]),
    (gpudl.losses.CategoricalCrossentropy(from_logits=True), None, np.eye(3)[LABELS]),
    (gpudl.losses.SparseCategoricalCrossentropy(from_logits=True), None, LABELS),
    ("categorical_crossentropy", "sigmoid", np.eye(3)[LABELS]),  # probabilities that need renormalizing
    ("binary_crossentropy", "sigmoid", RNG.uniform(size=(8, 3))),
    (gpudl.losses.BinaryCrossentropy(from_logits=True), None, RNG.integers(0, 2, (8, 3)).astype(float)),
    ("binary_crossentropy", "softmax", RNG.integers(0, 2, (8, 3)).astype(float)),
    ("mse", None, RNG.normal(size=(8, 3))),
])
@pytest.mark.parametrize("regularizer", [None, gpudl.regularizers.L1(0.01), gpudl.regularizers.L2(0.05),
                                         gpudl.regularizers.L1L2(0.01, 0.02)])
def test_whole_model_with_each_loss_and_regularizer(loss, output, targets, regularizer):
    layers = [Dense(6, kernel_regularizer=regularizer, kernel_initializer="he_normal"), BatchNormalization(),
              ReLU(), Dropout(0.3), Dense(3, activation=output, kernel_regularizer=regularizer)]
    result = check(layers, loss, targets)
    assert result.difference < 1e-7, result


def test_float32_model_is_checked_in_float64_and_left_unchanged():
    model = gpudl.Sequential([gpudl.Input((5,)), Dense(4), BatchNormalization(), ReLU(),
                              Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    before = model.get_weights()
    result = gradient_check(model, RNG.normal(size=(8, 5)), LABELS)
    assert result.difference < 1e-7
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


class SquareWithPlantedBug(Layer):
    """y = x^2, with backward returning dy * x instead of dy * 2x."""

    def forward(self, x, training=False):
        self._x = x
        return x * x

    def backward(self, dy):
        return dy * self._x


def test_planted_bug_in_a_custom_layer_is_caught_and_located():
    model = gpudl.Sequential([gpudl.Input((5,)), Dense(4), SquareWithPlantedBug(), Dense(3, activation="softmax")],
                             dtype="float64")
    model.compile("sgd", "sparse_categorical_crossentropy")
    result = gradient_check(model, RNG.normal(size=(8, 5)), LABELS)
    assert result.difference > 1e-3 and result.verdict == "bug"
    by_name = {name: diff for name, diff, _ in result.parameters}
    first_dense = model.layers[0].name
    assert by_name[f"{first_dense}/kernel"] > 1e-3  # upstream of the bug: wrong
    assert by_name[f"{model.layers[2].name}/kernel"] < 1e-7  # downstream: right


def test_course_gradient_check_of_theta_cubed():
    """f = theta^3 at 1, eps 0.01: two-sided 3.0001 (error 1e-4), one-sided 3.0301."""
    f, theta, eps = (lambda t: t ** 3), 1.0, 0.01
    two_sided = (f(theta + eps) - f(theta - eps)) / (2 * eps)
    one_sided = (f(theta + eps) - f(theta)) / eps
    assert two_sided == pytest.approx(3.0001, abs=1e-9)
    assert one_sided == pytest.approx(3.0301, abs=1e-9)
    assert relative_difference(np.array([two_sided]), np.array([3.0])) < relative_difference(
        np.array([one_sided]), np.array([3.0]))
