"""The layers surface a Keras MLP script touches: callable layers, the weight API,
the new layers (each gradient-checked in float64 and compared with PyTorch, Keras or a
float64 NumPy formula), activations by name and as functions, Dense's regularizers and
constraints, configs that round-trip."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpudl
from gpudl.frontend import activations, constraints, initializers, regularizers
from gpudl.frontend.gradient_check import gradient_check
from gpudl.layers import (LAYER_CLASSES, ELU, Activation, ActivityRegularization, AlphaDropout, Dense, Flatten,
                          GaussianDropout, GaussianNoise, InputLayer, Layer, LayerNormalization, LeakyReLU,
                          Normalization, PReLU, ReLU, Rescaling, Reshape, Softmax)

RNG = np.random.default_rng(2026)
LABELS = RNG.integers(0, 3, 8)


def check(layers, x_shape=(8, 5), y=LABELS, loss="sparse_categorical_crossentropy"):
    model = gpudl.Sequential([gpudl.Input(x_shape[1:])] + layers, dtype="float64")
    model.compile("sgd", loss)
    return gradient_check(model, RNG.normal(size=x_shape), y)


def torch_value_and_grad(fn, x, dy):
    """fn(x) and d(sum(fn(x) * dy))/dx by PyTorch's autograd, in float64."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(t)
    (y * torch.tensor(dy)).sum().backward()
    return y.detach().numpy(), t.grad.numpy()


# -- calling, building and the weight API ----------------------------------------------

def test_calling_a_layer_builds_it_from_the_input_and_returns_a_numpy_array():
    x = RNG.normal(size=(4, 3))
    layer = Dense(2, activation="tanh", kernel_initializer="he_normal", bias_initializer="ones")
    y = layer(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and layer.built and layer.input_shape == (3,)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float32) @ kernel + bias), rtol=1e-6)
    with pytest.raises(ValueError, match=r"Layer 'dense\w*' expected input of shape \(None, 3\); received shape \(4, 5\)"):
        layer(RNG.normal(size=(4, 5)))


@pytest.mark.parametrize("make", [
    lambda: gpudl.layers.Dropout(0.5), lambda: gpudl.layers.BatchNormalization(), lambda: LayerNormalization(),
    lambda: PReLU(), lambda: AlphaDropout(0.2), lambda: Normalization(), lambda: Reshape((2, 3)), lambda: Flatten(),
])
@pytest.mark.parametrize("training", [False, True])
def test_every_layer_runs_on_its_own_in_both_modes(make, training):
    x = RNG.normal(size=(4, 6))
    y = np.asarray(make()(x, training=training))
    assert y.shape[0] == 4 and y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize("shape", [(None, 6), (6,)])
def test_build_accepts_keras_batch_axis_and_feature_shape(shape):
    layer = Dense(4, dtype="float64")
    layer.build(shape)
    assert layer.input_shape == (6,) and layer.kernel.shape == (6, 4) and layer.kernel.dtype == "float64"
    assert layer.count_params() == 6 * 4 + 4


def test_weights_lists_and_count_params():
    layer = gpudl.layers.BatchNormalization()
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()
    layer.build((None, 3))
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.path for w in layer.trainable_weights] == [f"{layer.name}/gamma", f"{layer.name}/beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert layer.count_params() == 12
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4


def test_set_weights_checks_every_shape_first_and_changes_nothing_on_error():
    layer = Dense(3)
    layer.build((None, 2))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"Layer 'dense\w*' weight 'dense\w*/bias' has shape \(3,\); set_weights received "
                                         r"an array of shape \(2,\)"):
        layer.set_weights([np.ones((2, 3)), np.ones(2)])
    with pytest.raises(ValueError, match="has 2 weights .kernel, bias.; set_weights received a list of 1"):
        layer.set_weights([np.ones((2, 3))])
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)
    layer.set_weights([np.full((2, 3), 0.5), np.arange(3.0)])
    np.testing.assert_array_equal(layer(np.ones((1, 2))), [[1.0, 2.0, 3.0]])


def test_parameter_numpy_is_a_copy_and_assign_writes_into_the_model_arena():
    model = gpudl.Sequential([gpudl.Input((2,)), Dense(3), Dense(1)])
    kernel = model.layers[0].kernel
    copy = kernel.numpy()
    copy[...] = 7.0
    assert not np.any(kernel.numpy() == 7.0)
    kernel.assign(np.full((2, 3), 0.25))
    np.testing.assert_array_equal(np.asarray(model.arena.params[:6]), np.full(6, 0.25, np.float32))
    np.testing.assert_array_equal(np.asarray(kernel), np.full((2, 3), 0.25))
    assert (kernel.shape, kernel.dtype, kernel.name, kernel.path) == ((2, 3), "float32", "kernel",
                                                                     f"{model.layers[0].name}/kernel")
    with pytest.raises(ValueError, match=r"Cannot assign to weight 'dense\w*/kernel' of shape \(2, 3\) a value of "
                                         r"shape \(3, 2\)"):
        kernel.assign(np.zeros((3, 2)))
    np.testing.assert_array_equal(kernel.numpy(), np.full((2, 3), 0.25))


class KerasStyleLayer(Layer):
    def call(self, inputs):
        return 2 * inputs


def test_layer_with_only_keras_call_runs_and_its_autograd_backward_passes_the_gradient_check():
    x = np.ones((2, 2))
    np.testing.assert_allclose(KerasStyleLayer()(x), 2 * x)
    model = gpudl.Sequential([gpudl.Input((2,)), Dense(3), KerasStyleLayer(), Dense(2)], dtype="float64")
    model.compile("sgd", "mse")
    rng = np.random.default_rng(11)  # its own draws: the module's RNG sequence stays as the other tests expect
    assert gpudl.gradient_check(model, rng.normal(size=(4, 2)), rng.normal(size=(4, 2))).verdict == "fine"


class Linear(Layer):
    """A custom layer written the Keras way (add_weight by keyword), with gpudl's backward."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True,
                                 name="w", regularizer="l2", constraint=None)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="b")

    def forward(self, x, training=False):
        self._x = x
        return x @ self.w.value + self.b.value

    def backward(self, dy):
        self.w.grad[...] = self._x.T @ dy
        self.b.grad[...] = dy.sum(axis=0)
        return dy @ self.w.value.T


def test_custom_layer_written_with_keras_add_weight_keywords_trains_and_checks():
    layer = Linear(4)
    layer.build((None, 5))
    assert [w.path for w in layer.weights] == [f"{layer.name}/w", f"{layer.name}/b"] and layer.count_params() == 24
    result = check([Linear(4), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result


def test_plain_function_regularizer_gives_the_penalty_and_autograds_gradient():
    dense = Dense(3, kernel_regularizer=lambda w: 0.01 * (w ** 4).sum())
    dense.build((None, 2))
    kernel = dense.kernel.numpy()
    assert float(dense.kernel.regularizer(dense.kernel.value)) == pytest.approx(0.01 * (kernel ** 4).sum(), rel=1e-6)
    np.testing.assert_allclose(dense.kernel.regularizer.gradient(dense.kernel.value), 0.04 * kernel ** 3, rtol=1e-5)


def test_unknown_keyword_argument_is_named():
    with pytest.raises(TypeError, match=r"Unrecognized keyword arguments passed to Dense: \{'unit': 3\}"):
        Dense(3, unit=3)


# -- new layers: gradient check between two Dense layers, float64 ---------------------

class Pinned:
    """Mixin for the noise layers: the same draw on every forward pass, and noise kept on
    while the gradient checker runs, so the checker sees one fixed function."""

    enabled = property(lambda self: True, lambda self, value: None)

    def forward(self, x, training=False):
        self.calls = 0
        return super().forward(x, training)


class PinnedGaussianNoise(Pinned, GaussianNoise):
    pass


class PinnedGaussianDropout(Pinned, GaussianDropout):
    pass


class PinnedAlphaDropout(Pinned, AlphaDropout):
    pass


@pytest.mark.parametrize("make", [
    lambda: LeakyReLU(), lambda: LeakyReLU(negative_slope=0.05), lambda: ELU(), lambda: ELU(alpha=0.5),
    lambda: PReLU(alpha_initializer=initializers.RandomUniform(0.1, 0.5, seed=1)),
    lambda: PReLU(alpha_initializer=initializers.Constant(0.3), shared_axes=[1]),
    lambda: LayerNormalization(), lambda: LayerNormalization(center=False), lambda: LayerNormalization(scale=False),
    lambda: LayerNormalization(gamma_initializer=initializers.RandomNormal(1.0, 0.3, seed=2),
                               beta_initializer=initializers.RandomNormal(0.0, 0.3, seed=3)),
    lambda: PinnedGaussianNoise(0.5, seed=4), lambda: PinnedGaussianDropout(0.3, seed=5),
    lambda: PinnedAlphaDropout(0.3, seed=6), lambda: PinnedAlphaDropout(0.5, noise_shape=(None, 1), seed=7),
    lambda: ActivityRegularization(l1=0.01, l2=0.02), lambda: Rescaling(0.5, offset=2.0),
    lambda: ReLU(max_value=0.5, negative_slope=0.1, threshold=0.2), lambda: Softmax(),
])
def test_new_layer_between_two_dense_layers_passes_the_gradient_check(make):
    result = check([Dense(6), make(), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result


def test_reshape_then_flatten_and_layer_normalization_over_two_axes_pass_the_gradient_check():
    result = check([Dense(6), Reshape((2, -1)), LayerNormalization(axis=[1, 2]), PReLU(shared_axes=2,
                    alpha_initializer=initializers.Constant(0.2)), Flatten(), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result


def test_gradient_check_switches_random_noise_off():
    result = check([Dense(6), GaussianDropout(0.4), GaussianNoise(0.3), AlphaDropout(0.2),
                    Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result


@pytest.mark.parametrize("layer, reference", [
    (LeakyReLU(), lambda t: F.leaky_relu(t, 0.3)),
    (ELU(alpha=0.7), lambda t: F.elu(t, 0.7)),
    (PReLU(alpha_initializer=initializers.Constant(0.25)), lambda t: F.prelu(t, torch.full((4,), 0.25, dtype=t.dtype))),
    (LayerNormalization(epsilon=1e-3), lambda t: F.layer_norm(t, (4,), eps=1e-3)),
    (ReLU(max_value=1.0), lambda t: torch.clamp(t, 0, 1.0)),
])
def test_layer_forward_and_input_gradient_equal_pytorch(layer, reference):
    x, dy = RNG.normal(size=(6, 4)) * 2, RNG.normal(size=(6, 4))
    layer.dtype = "float64"
    y = layer(x, training=True)
    expected_y, expected_dx = torch_value_and_grad(reference, x, dy)
    np.testing.assert_allclose(y, expected_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.backward(dy), expected_dx, rtol=1e-10, atol=1e-12)


def test_prelu_alpha_starts_at_keras_zeros_and_gets_its_gradient():
    layer = PReLU(dtype="float64")
    x, dy = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4))
    np.testing.assert_array_equal(layer(x, training=True), np.maximum(x, 0))
    layer.backward(dy)
    np.testing.assert_allclose(layer.alpha.grad, (dy * np.minimum(x, 0)).sum(axis=0), rtol=1e-12)


# -- the noise layers ---------------------------------------------------------------

def test_noise_layers_are_the_identity_at_inference_and_reproducible_from_the_seed():
    x = RNG.normal(size=(50, 8))
    for make in (lambda: GaussianNoise(0.2, seed=9), lambda: GaussianDropout(0.3, seed=9),
                 lambda: AlphaDropout(0.3, seed=9)):
        first, second = make(), make()
        np.testing.assert_array_equal(first(x), x.astype(np.float32))
        a, b = first(x, training=True), second(x, training=True)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, first(x, training=True))  # the next call draws anew


def test_gaussian_noise_and_dropout_have_keras_moments():
    x = np.full((400, 250), 2.0)
    noise = GaussianNoise(0.3, seed=1, dtype="float64")(x, training=True) - x
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.3) < 0.003
    multiplier = GaussianDropout(0.2, seed=1, dtype="float64")(x, training=True) / x
    assert abs(multiplier.mean() - 1) < 0.005 and abs(multiplier.std() - np.sqrt(0.2 / 0.8)) < 0.005


def test_alpha_dropout_follows_keras_formula_and_keeps_selu_statistics():
    rate = 0.2
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    x = activations.selu(RNG.normal(size=(500, 200)))  # mean 0, variance 1 (SELU's fixed point)
    layer = AlphaDropout(rate, seed=3, dtype="float64")
    y = layer(x, training=True)
    dropped = np.isclose(y, a * alpha_p + b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-12)
    assert abs(dropped.mean() - rate) < 0.005
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02
    whole_rows = AlphaDropout(0.5, noise_shape=(None, 1), seed=3, dtype="float64")(x, training=True)
    row_dropped = np.isclose(whole_rows, whole_rows[:, :1], atol=0).all(axis=1)
    assert 0.4 < row_dropped.mean() < 0.6


@pytest.mark.parametrize("make, argument", [(lambda: GaussianDropout(1.5), "rate"), (lambda: AlphaDropout(-0.1), "rate"),
                                            (lambda: GaussianNoise(2.0), "stddev"), (lambda: GaussianNoise(0.1, seed=1.5), "seed")])
def test_noise_layers_refuse_bad_arguments(make, argument):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`"):
        make()


# -- activations --------------------------------------------------------------------

TORCH_ACTIVATIONS = {
    "gelu": F.gelu, "elu": F.elu, "selu": F.selu, "softplus": F.softplus, "softsign": F.softsign,
    "swish": F.silu, "silu": F.silu, "relu6": F.relu6, "hard_sigmoid": F.hardsigmoid, "exponential": torch.exp,
    "mish": F.mish, "leaky_relu": lambda t: F.leaky_relu(t, 0.2), "log_softmax": lambda t: F.log_softmax(t, -1),
    "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "softmax": lambda t: F.softmax(t, -1),
    "linear": lambda t: t,
}


@pytest.mark.parametrize("name", sorted(TORCH_ACTIVATIONS))
def test_activation_and_its_derivative_equal_pytorch(name):
    z = RNG.normal(size=(7, 5)) * 3
    z[0, :3] = [-40.0, 40.0, 0.5]  # far tails
    da = RNG.normal(size=z.shape)
    forward, backward = activations.forward_backward(name)
    expected_a, expected_dz = torch_value_and_grad(TORCH_ACTIVATIONS[name], z, da)
    a = forward(z)
    np.testing.assert_allclose(a, expected_a, rtol=1e-12, atol=1e-300)
    rtol = 1e-7 if name == "hard_sigmoid" else 1e-9  # PyTorch's hardsigmoid backward uses a float32 1/6
    np.testing.assert_allclose(backward(da, z, a), expected_dz, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(getattr(activations, name)(z), expected_a, rtol=1e-12, atol=1e-300)


def test_gelu_approximate_equals_pytorch_tanh_gelu():
    z, da = RNG.normal(size=(6, 4)) * 2, RNG.normal(size=(6, 4))
    expected_a, expected_dz = torch_value_and_grad(lambda t: F.gelu(t, approximate="tanh"), z, da)
    a = activations.gelu(z, approximate=True)
    np.testing.assert_allclose(a, expected_a, rtol=1e-12)
    np.testing.assert_allclose(activations.gelu_backward(da, z, a, approximate=True), expected_dz, rtol=1e-10)


@pytest.mark.parametrize("name", ["gelu", "elu", "selu", "softplus", "softsign", "swish", "silu", "relu6",
                                  "hard_sigmoid", "exponential", "mish", "leaky_relu", "log_softmax"])
def test_dense_with_each_new_activation_passes_the_gradient_check(name):
    result = check([Dense(4, activation=name), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result


def test_activation_given_as_function_or_name_is_the_same_and_saved_by_name():
    x = RNG.normal(size=(3, 4))
    by_function, by_name = Dense(2, activation=gpudl.activations.gelu), Activation("gelu")
    assert by_function.get_config()["activation"] == "gelu" == by_name.get_config()["activation"]
    np.testing.assert_allclose(by_name(x), activations.gelu(x).astype(np.float32), rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown activation: 'gelux'. Known activations: .*hard_sigmoid.*mish"):
        Activation("gelux")
    custom = Dense(2, activation=gpudl.ops.sin)  # a user's function: saved by its name, as Keras does
    assert custom.get_config()["activation"] == "sin"


# -- Dense's regularizers and constraints ------------------------------------------------

def test_dense_penalties_enter_the_loss_as_keras_does_and_pass_the_gradient_check():
    """Keras 3 (keras/src/layers/layer.py): activity penalty = regularizer(output) / batch size."""
    dense = Dense(4, activation="tanh", kernel_regularizer=regularizers.L2(0.03), bias_regularizer=regularizers.L1(0.02),
                  activity_regularizer=regularizers.L1L2(0.01, 0.05), bias_initializer=initializers.RandomNormal(seed=1),
                  dtype="float64")
    x = RNG.normal(size=(8, 5))
    a = dense(x)
    kernel, bias = dense.get_weights()
    expected = (0.03 * (kernel ** 2).sum() + 0.02 * np.abs(bias).sum()
                + (0.01 * np.abs(a).sum() + 0.05 * (a ** 2).sum()) / 8)
    assert dense.regularization_loss() == pytest.approx(expected, rel=1e-12)
    for last_activation in ("softmax", None):  # fused with the loss, and not
        layers = [Dense(6, activity_regularizer="l2", bias_regularizer="l1"),
                  Dense(3, activation=last_activation, activity_regularizer=regularizers.L1L2(0.01, 0.02))]
        loss = "sparse_categorical_crossentropy" if last_activation else "mse"
        y = LABELS if last_activation else RNG.normal(size=(8, 3))
        result = check(layers, y=y, loss=loss)
        assert result.difference < 1e-7, result


def test_constraints_follow_keras_formulas_in_float64():
    w = RNG.normal(size=(5, 3)) * 2
    norms = np.sqrt((w ** 2).sum(axis=0, keepdims=True))
    np.testing.assert_allclose(constraints.MaxNorm(1.5)(w), w * np.clip(norms, 0, 1.5) / (1e-7 + norms), rtol=1e-14)
    np.testing.assert_array_equal(constraints.NonNeg()(w), np.where(w > 0, w, 0))
    row_norms = np.sqrt((w ** 2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(constraints.UnitNorm(axis=1)(w), w / (1e-7 + row_norms), rtol=1e-14)
    desired = 0.5 * np.clip(norms, 0.5, 1.2) + 0.5 * norms
    np.testing.assert_allclose(constraints.MinMaxNorm(0.5, 1.2, rate=0.5)(w), w * desired / (1e-7 + norms), rtol=1e-14)
    defaults = [(type(c).__name__, c.get_config()) for c in (constraints.get("max_norm"), constraints.get("UnitNorm"),
                                                            constraints.get(constraints.MinMaxNorm))]
    assert defaults == [("MaxNorm", {"max_value": 2, "axis": 0}), ("UnitNorm", {"axis": 0}),
                        ("MinMaxNorm", {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0})]
    with pytest.raises(ValueError, match="Unknown constraint: 'max'. Known constraints: .*max_norm"):
        constraints.get("max")


def test_apply_constraints_projects_the_weights_in_place():
    model = gpudl.Sequential([gpudl.Input((4,)), Dense(3, kernel_constraint="max_norm", bias_constraint="non_neg",
                                                       kernel_initializer=initializers.RandomNormal(0, 5, seed=1),
                                                       bias_initializer=initializers.Constant(-1.0))])
    dense = model.layers[0]
    view = dense.kernel.value
    dense.apply_constraints()
    assert dense.kernel.value is view  # still the arena view
    np.testing.assert_array_less(np.sqrt((dense.kernel.numpy() ** 2).sum(axis=0)), 2.0 + 1e-6)
    np.testing.assert_array_equal(dense.bias.numpy(), np.zeros(3))


# -- Normalization against Keras -------------------------------------------------------------

# Keras 3.15.1 (JAX, CPU), script:
#   data = (np.arange(24, dtype=np.float32).reshape(8, 3) ** 1.5) / 7.0
#   for kwargs in [{}, {"axis": None}, {"invert": True}]:
#       layer = keras.layers.Normalization(**kwargs); layer.adapt(data)
#       print(np.asarray(layer.mean).tolist(), np.asarray(layer.variance).tolist(), np.asarray(layer(data[:2])).tolist())
KERAS_MEAN = [[5.6992621421813965, 6.3575615882873535, 7.059676647186279]]
KERAS_VARIANCE = [[21.518409729003906, 23.88753890991211, 26.181373596191406]]
KERAS_OUTPUTS = {
    (): [[-1.2286086082458496, -1.2715539932250977, -1.300744652748108],
         [-1.0685869455337524, -1.0669498443603516, -1.0675643682479858]],
    (("axis", None),): [[-1.296104073524475, -1.2670468091964722, -1.2139177322387695],
                        [-1.145117998123169, -1.0636459589004517, -0.9712339639663696]],
    (("invert", True),): [[5.6992621421813965, 7.055774211883545, 9.127164840698242],
                          [9.14267349243164, 11.943262100219727, 15.23214340209961]],
}


@pytest.mark.parametrize("kwargs", [{}, {"axis": None}, {"invert": True}])
def test_normalization_adapt_gives_keras_statistics_exactly(kwargs):
    data = (np.arange(24, dtype=np.float32).reshape(8, 3) ** 1.5) / 7.0
    layer = Normalization(**kwargs)
    layer.adapt(data)
    if "axis" in kwargs:
        # Keras's adapt of an array is np.mean / np.var (keras/src/layers/preprocessing/normalization.py),
        # whose float32 variance changed in its last bit with NumPy 2.4 (24.17099952697754 before):
        # compared with Keras itself, run on the same NumPy
        keras = pytest.importorskip("keras")
        reference = keras.layers.Normalization(axis=None)
        reference.adapt(data)
        assert layer.mean.tolist() == np.asarray(reference.mean).tolist() == [[6.372167110443115]]
        assert layer.variance.tolist() == np.asarray(reference.variance).tolist()
    else:
        assert layer.mean.tolist() == KERAS_MEAN and layer.variance.tolist() == KERAS_VARIANCE
    np.testing.assert_allclose(layer(data[:2]), KERAS_OUTPUTS[tuple(kwargs.items())], rtol=1e-6)
    assert [w.name for w in layer.weights] == ["mean", "variance", "count"] and layer.count_params() == (
        3 if "axis" in kwargs else 7)


def test_normalization_with_given_statistics_keeps_them_in_the_config():
    data = (np.arange(24, dtype=np.float32).reshape(8, 3) ** 1.5) / 7.0
    layer = Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.25, 1e-20])
    # Keras 3.15.1, same data: layer(data[:2]) with these statistics
    np.testing.assert_allclose(layer(data[:2]), [[-0.5, -3.7142856121063232, -25959390.0],
                                                [-0.12884622812271118, -1.7142856121063232, -14028085.0]], rtol=1e-6)
    assert layer.weights == [] and layer.get_config()["mean"] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="both `mean` and `variance` must be set"):
        Normalization(mean=1.0)


def test_normalization_adapt_on_batches_equals_adapt_on_the_whole_array():
    data = RNG.normal(3, 2, size=(100, 4))
    whole, batched = Normalization(dtype="float64"), Normalization(dtype="float64")
    whole.adapt(data)
    batched.adapt(data[i:i + 30] for i in range(0, 100, 30))
    np.testing.assert_allclose(batched.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(batched.variance, whole.variance, rtol=1e-12)


# -- the other new layers --------------------------------------------------------------------

def test_reshape_rescaling_and_activity_regularization_forward():
    x = RNG.normal(size=(3, 6))
    np.testing.assert_array_equal(Reshape((3, -1))(x), x.astype(np.float32).reshape(3, 3, 2))
    assert Reshape((-1, 2)).compute_output_shape((None, 6)) == (None, 3, 2)
    with pytest.raises(ValueError, match="cannot reshape inputs of shape .None, 6. to target_shape=.4, -1."):
        Reshape((4, -1))(x)
    np.testing.assert_allclose(Rescaling(1 / 255, offset=-1.0, dtype="float64")(x), x / 255 - 1, rtol=1e-15)
    regularization = ActivityRegularization(l1=0.1, l2=0.2, dtype="float64")
    np.testing.assert_array_equal(regularization(x), x)
    assert regularization.regularization_loss() == pytest.approx(
        (0.1 * np.abs(x).sum() + 0.2 * (x ** 2).sum()) / 3, rel=1e-12)


def test_input_layer_declares_the_input_shape_of_a_sequential():
    for head in (InputLayer(shape=(5,)), InputLayer(batch_shape=(None, 5)), gpudl.Input(batch_shape=(None, 5))):
        model = gpudl.Sequential([head, Dense(2)])
        assert model.built and model.layers[0].kernel.shape == (5, 2)
    layer = InputLayer(shape=(5,), name="pixels")
    assert layer.batch_shape == (None, 5)
    assert InputLayer.from_config(layer.get_config()).batch_shape == (None, 5)
    with pytest.raises(ValueError, match="You cannot pass both `shape` and `batch_shape`"):
        InputLayer(shape=(5,), batch_shape=(None, 5))


# -- configs ----------------------------------------------------------------------------------

EVERY_LAYER = [
    Dense(3, activation="gelu", kernel_regularizer="l2", bias_regularizer=regularizers.l1(0.1),
          activity_regularizer=regularizers.l1_l2(l1=0.01), kernel_constraint=constraints.MaxNorm(3),
          bias_constraint="non_neg", kernel_initializer=initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")),
    LeakyReLU(0.1), PReLU(alpha_constraint="non_neg"), ELU(0.5), LayerNormalization(epsilon=1e-5),
    GaussianNoise(0.1, seed=1), GaussianDropout(0.2), AlphaDropout(0.1, noise_shape=(None, 1), seed=3),
    ActivityRegularization(l2=0.01), Reshape((3, 1)), Flatten(), Rescaling(2.0, 0.5), Normalization(mean=0.5, variance=2.0),
    ReLU(max_value=6.0), Softmax(), Activation("mish"), gpudl.layers.Identity(), gpudl.layers.UnitNormalization(),
    Dense(2),
]


MERGE_LAYERS = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"}  # graphs only:
# their configs round-trip in tests/test_functional_guide.py and test_functional_saving.py


def test_every_layer_class_is_registered():
    assert {type(layer).__name__ for layer in EVERY_LAYER} | {"BatchNormalization", "Dropout", "InputLayer"} | (
        MERGE_LAYERS) == set(LAYER_CLASSES)


def test_every_layer_config_round_trips_and_a_saved_model_predicts_the_same(tmp_path):
    for layer in EVERY_LAYER:
        twin = type(layer).from_config(layer.get_config())
        assert twin.get_config() == layer.get_config()
    model = gpudl.Sequential([gpudl.Input((4,))] + [type(layer).from_config({**layer.get_config(), "name": None})
                                                     for layer in EVERY_LAYER])
    model.compile("sgd", "mse")
    model.save(tmp_path / "every.npz")
    loaded = gpudl.load_model(tmp_path / "every.npz")
    x = RNG.normal(size=(5, 4))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    dense = loaded.layers[0]
    assert isinstance(dense.kernel_constraint, constraints.MaxNorm) and dense.kernel_constraint.max_value == 3
    assert dense.kernel_initializer.distribution == "untruncated_normal"
    assert (dense.activity_regularizer.l1, dense.activity_regularizer.l2) == (0.01, 0.0)


def test_dense_config_has_keras_shape():
    """Keys and the serialized initializer dict as Keras 3.15.1 prints them for
    keras.layers.Dense(3, activity_regularizer="l2").get_config()."""
    config = Dense(3, activity_regularizer="l2").get_config()
    assert config["kernel_initializer"] == {"module": "keras.initializers", "class_name": "GlorotUniform",
                                            "config": {"seed": None, "input_axes": None, "output_axes": None},
                                            "registered_name": None}
    assert config["activity_regularizer"] == {"module": "keras.regularizers", "class_name": "L2",
                                              "config": {"l2": 0.01}, "registered_name": None}
    assert {"units", "activation", "use_bias", "bias_initializer", "kernel_regularizer", "bias_regularizer",
            "kernel_constraint", "bias_constraint"} <= set(config)
