"""The layer-side differences from Keras 3 that tests/test_keras_scripts.py listed, each
closed and checked against Keras's numbers (Keras 3.15.1, JAX 0.10.2 CPU backend, run as
`KERAS_BACKEND=jax /work/kerasvenv/bin/python script.py`; the script is quoted in the
comment of each literal), a float64 NumPy formula, PyTorch, or finite differences:
compute_output_shape with the batch axis, Normalization(axis=None) on 1-D data,
layers.serialize/deserialize, the Dropout and BatchNormalization configs, Identity and
UnitNormalization, layer.losses, activations.get/serialize/deserialize and
OrthogonalRegularizer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpudl
from gpudl.frontend import activations, constraints, initializers, regularizers
from gpudl.frontend.gradient_check import gradient_check
from gpudl.layers import (BatchNormalization, Dense, Dropout, Flatten, Identity, Layer, Normalization, Rescaling,
                          Reshape, UnitNormalization)

RNG = np.random.default_rng(1207)
LABELS = RNG.integers(0, 3, 8)


def check(layers, x_shape=(8, 5)):
    """float64 gradient check of Input -> layers (last: 3 softmax units) on fresh data."""
    model = gpudl.Sequential([gpudl.Input(x_shape[1:])] + layers, dtype="float64")
    model.compile("sgd", "sparse_categorical_crossentropy")
    return gradient_check(model, RNG.normal(size=x_shape), LABELS)


# -- layer_shapes: compute_output_shape takes and returns the batch axis -------------------------

# Keras 3.15.1, tests/keras_scripts/layer_shapes.py: list(layer.compute_output_shape(shape))
@pytest.mark.parametrize("layer, shape, keras_shape", [
    (Dense(5), (None, 6), (None, 5)),
    (Flatten(), (None, 4, 6), (None, 24)),
    (Reshape((3, 8)), (None, 4, 6), (None, 3, 8)),
    (Dropout(0.5), (None, 6), (None, 6)),
    (BatchNormalization(), (None, 6), (None, 6)),
    (Rescaling(1.0 / 255), (None, 4, 6), (None, 4, 6)),
    (Dense(5), (7, 6), (7, 5)),  # Keras: layers.Dense(5).compute_output_shape((7, 6)) -> (7, 5)
    (UnitNormalization(), (None, 6), (None, 6)),  # Keras: (None, 6)
    (Identity(), (None, 4, 6), (None, 4, 6)),
], ids=lambda value: type(value).__name__ if isinstance(value, Layer) else None)
def test_compute_output_shape_keeps_the_batch_axis_as_keras(layer, shape, keras_shape):
    assert layer.compute_output_shape(shape) == keras_shape
    x = RNG.normal(size=(2,) + shape[1:])
    assert np.asarray(layer(x)).shape[1:] == keras_shape[1:]  # the shape the layer really gives


def test_compute_output_shape_without_a_batch_axis_is_refused_by_name():
    with pytest.raises(ValueError, match=r"Layer 'dense\w*'.compute_output_shape expects a shape with the batch "
                                         r"axis first, e.g. \(None, 6\); received \(\)"):
        Dense(2).compute_output_shape(())


def test_sequential_output_shape_and_summary_rows_come_from_the_per_sample_shapes():
    model = gpudl.Sequential([gpudl.Input((4, 6)), Flatten(), Dense(12), Reshape((3, 4))])
    assert model.output_shape == (None, 3, 4)  # Keras 3.15.1, layer_shapes.py: [None, 3, 4]
    assert model.compute_output_shape((None, 4, 6)) == (None, 3, 4)
    lines = []
    model.summary(print_fn=lines.append)
    assert [line.split(")")[1].split("(")[1] for line in lines if "(Flatten)" in line or "(Reshape)" in line] == [
        "None, 24", "None, 3, 4"]


# -- Normalization(axis=None) on 1-D data ---------------------------------------------------

def test_normalization_axis_none_adapts_on_1d_data_and_normalizes_a_1d_input_as_keras_docstring():
    layer = Normalization(axis=None)
    layer.adapt(np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype="float32"))
    y = layer(np.array([1.0, 2.0, 3.0], dtype="float32"))
    # Keras 3.15.1, tests/keras_scripts/docstring_normalization.py "norm_axis_none"
    np.testing.assert_allclose(y, [-1.4142135381698608, -0.7071067690849304, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.mean), [3.0])  # Keras: layer.mean -> [3.]
    np.testing.assert_allclose(np.asarray(layer.variance), [2.0])
    data = RNG.normal(size=17) * 3 + 1
    batches = Normalization(axis=None, dtype="float64")
    batches.adapt([data[:5], data[5:]])  # streamed 1-D batches give numpy's statistics too
    np.testing.assert_allclose(batches(data), (data - data.mean()) / data.std(), rtol=1e-12)


def test_normalization_axis_none_on_2d_data_uses_one_mean_over_everything():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]], dtype="float32")
    layer = Normalization(axis=None)
    layer.adapt(x)
    # Keras 3.15.1: mean [[4.]], variance [[6.6666665]], layer([[1., 2.]]) -> [[-1.161895, -0.7745967]]
    np.testing.assert_allclose(np.asarray(layer.mean), [[4.0]])
    np.testing.assert_allclose(np.asarray(layer.variance), [[6.6666665]], rtol=1e-6)
    np.testing.assert_allclose(layer(x[:1]), [[-1.161895, -0.7745967]], rtol=1e-6)


def test_normalization_axis_none_adapted_on_1d_data_builds_in_a_model_on_one_feature():
    horsepower = RNG.uniform(50, 200, size=30)
    layer = Normalization(input_shape=[1], axis=None, dtype="float64")
    layer.adapt(horsepower)
    model = gpudl.Sequential([layer], dtype="float64")
    model.build()
    x = horsepower[:4, None]
    np.testing.assert_allclose(model.predict(x, verbose=0), (x - horsepower.mean()) / horsepower.std(), rtol=1e-12)


def test_normalization_with_a_feature_axis_still_refuses_1d_data_by_name():
    with pytest.raises(ValueError, match=r"Normalization '\w+'.adapt expects a non-empty array of shape "
                                         r"\(N, features...\); received shape \(5,\)"):
        Normalization().adapt(np.arange(5.0))


# -- layers.serialize / layers.deserialize ------------------------------------------------

def test_layers_serialize_gives_keras_dict_form_and_deserialize_rebuilds_the_layer():
    layer = Dense(4, activation="relu", kernel_initializer="he_uniform", name="hidden")
    serialized = gpudl.layers.serialize(layer)
    # Keras 3.15.1: keras.layers.serialize(layers.Dense(4, activation="relu", name="hidden")) has exactly
    # these keys (build_config only once built) and module/class_name/registered_name values
    assert sorted(serialized) == ["class_name", "config", "module", "registered_name"]
    assert (serialized["module"], serialized["class_name"], serialized["registered_name"]) == (
        "keras.layers", "Dense", None)
    clone = gpudl.layers.deserialize(serialized)
    # Keras 3.15.1, tests/keras_scripts/serialization_layers.py "layer_roundtrip": ["Dense", 4, "hidden", "relu"]
    assert [type(clone).__name__, clone.units, clone.name, clone.get_config()["activation"]] == [
        "Dense", 4, "hidden", "relu"]
    assert clone.get_config() == layer.get_config() and not clone.built


def test_a_built_layer_serializes_its_build_config_and_comes_back_built():
    layer = BatchNormalization(momentum=0.9, gamma_regularizer="l2")
    layer.build((None, 3))
    serialized = gpudl.layers.serialize(layer)
    assert serialized["build_config"] == {"input_shape": (None, 3)}  # Keras: {'input_shape': (None, 3)}
    clone = gpudl.layers.deserialize(serialized)
    assert clone.built and [w.shape for w in clone.weights] == [(3,)] * 4
    assert clone.get_config() == layer.get_config()


class Doubling(Layer):
    def forward(self, x, training=False):
        return 2 * x

    def backward(self, dy):
        return 2 * dy


def test_custom_layers_serialize_with_their_module_and_need_custom_objects_to_come_back():
    serialized = gpudl.layers.serialize(Doubling(name="twice"))
    assert (serialized["module"], serialized["class_name"], serialized["registered_name"]) == (
        __name__, "Doubling", "Doubling")  # Keras: the class's module (None for __main__) and its name
    with pytest.raises(TypeError, match="Could not locate class 'Doubling': pass it in custom_objects"):
        gpudl.layers.deserialize(serialized)
    clone = gpudl.layers.deserialize(serialized, custom_objects={"Doubling": Doubling})
    assert isinstance(clone, Doubling) and clone.name == "twice"
    np.testing.assert_array_equal(clone(np.ones((1, 2))), [[2.0, 2.0]])


def test_layers_deserialize_never_imports_the_module_a_config_names():
    with pytest.raises(TypeError, match="Could not locate class 'system'"):
        gpudl.layers.deserialize({"module": "os", "class_name": "system", "config": {"command": "true"}})
    with pytest.raises(ValueError, match="expects a dict with 'class_name' and 'config'"):
        gpudl.layers.deserialize("Dense")
    with pytest.raises(ValueError, match="not a gpudl Layer"):
        gpudl.layers.deserialize({"class_name": "L2", "config": {}}, custom_objects={"L2": regularizers.L2})


# -- Dropout and BatchNormalization configs ----------------------------------------------

def test_dropout_config_has_keras_keys_and_noise_shape_other_than_none_is_refused():
    # Keras 3.15.1: sorted(layers.Dropout(0.5).get_config())
    assert sorted(Dropout(0.5).get_config()) == ['dtype', 'name', 'noise_shape', 'rate', 'seed', 'trainable']
    assert Dropout.from_config(Dropout(0.5, noise_shape=None, seed=3).get_config()).seed == 3
    with pytest.raises(ValueError, match=r"Dropout '\w+': Invalid value received for argument `noise_shape`. "
                                         r"Expected None .*Received: noise_shape=\(None, 1\)"):
        Dropout(0.5, noise_shape=(None, 1))


# Keras 3.15.1: sorted(keras.layers.BatchNormalization().get_config())
KERAS_BATCH_NORM_KEYS = [
    'axis', 'beta_constraint', 'beta_initializer', 'beta_regularizer', 'center', 'dtype', 'epsilon',
    'gamma_constraint', 'gamma_initializer', 'gamma_regularizer', 'momentum', 'moving_mean_initializer',
    'moving_variance_initializer', 'name', 'renorm', 'renorm_clipping', 'renorm_momentum', 'scale', 'synchronized',
    'trainable']


def test_batch_normalization_config_has_keras_keys_and_values():
    config = BatchNormalization().get_config()
    assert sorted(config) == KERAS_BATCH_NORM_KEYS
    # Keras 3.15.1's values (its dtype is a DTypePolicy dict: gpudl's is a name)
    assert {key: config[key] for key in ("axis", "synchronized", "renorm", "renorm_clipping", "renorm_momentum",
                                         "beta_regularizer", "gamma_constraint")} == {
        "axis": -1, "synchronized": False, "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99,
        "beta_regularizer": None, "gamma_constraint": None}
    assert [config[key]["class_name"] for key in ("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                                                  "moving_variance_initializer")] == ["Zeros", "Ones", "Zeros", "Ones"]


def test_batch_normalization_uses_its_initializers_and_round_trips_its_config():
    layer = BatchNormalization(axis=1, beta_initializer="ones", gamma_initializer=initializers.Constant(2.5),
                               moving_mean_initializer=initializers.Constant(0.5), moving_variance_initializer="zeros",
                               gamma_constraint="non_neg", beta_regularizer=regularizers.L1(0.1), dtype="float64")
    layer.build((None, 3))
    np.testing.assert_array_equal(np.stack(layer.get_weights()), [[2.5] * 3, [1.0] * 3, [0.5] * 3, [0.0] * 3])
    x = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(layer(x), 2.5 * (x - 0.5) / np.sqrt(0.0 + 1e-3) + 1.0, rtol=1e-12)  # inference
    twin = BatchNormalization.from_config(layer.get_config())
    assert twin.get_config() == layer.get_config()
    layer.gamma.assign(np.array([-1.0, 2.0, -3.0]))
    layer.apply_constraints()
    np.testing.assert_array_equal(layer.gamma.numpy(), [0.0, 2.0, 0.0])


def test_batch_normalization_regularizers_join_the_loss_with_correct_gradients():
    result = check([Dense(4), BatchNormalization(gamma_regularizer=regularizers.L2(0.3),
                                                 beta_regularizer=regularizers.L1(0.2), beta_initializer="ones"),
                    Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result
    layer = BatchNormalization(gamma_regularizer=regularizers.L2(0.3), beta_regularizer=regularizers.L1(0.2),
                               gamma_initializer=initializers.Constant(2.0), beta_initializer="ones")
    layer.build((None, 3))
    assert layer.losses == pytest.approx([0.3 * 4.0 * 3, 0.2 * 3])  # gamma then beta: Keras's weight order


@pytest.mark.parametrize("argument, value", [
    ("renorm", True), ("synchronized", "yes"), ("renorm_clipping", {"rmax": 3.0}), ("axis", 0), ("axis", 2)])
def test_batch_normalization_refuses_what_gpudl_does_not_implement_by_name(argument, value):
    with pytest.raises(ValueError, match=rf"BatchNormalization '\w+': Invalid value received for argument "
                                         rf"`{argument}`. Expected .*Received: {argument}="):
        BatchNormalization(**{argument: value})


# -- Identity and UnitNormalization --------------------------------------------------------

def test_identity_passes_values_and_gradients_through():
    x = RNG.normal(size=(3, 4))
    np.testing.assert_array_equal(Identity(dtype="float64")(x), x)
    result = check([Dense(6), Identity(), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result
    assert sorted(Identity().get_config()) == ["dtype", "name", "trainable"]  # Keras 3.15.1's keys


def test_unit_normalization_equals_keras_and_a_float64_formula():
    x = np.array([[3.0, 4.0, 0.0], [1.0, -2.0, 2.0]], dtype="float32")
    # Keras 3.15.1: keras.layers.UnitNormalization()(x), and the same with axis=[1]
    keras_y = [[0.6000000238418579, 0.800000011920929, 0.0], [0.3333333432674408, -0.6666666865348816,
                                                              0.6666666865348816]]
    np.testing.assert_allclose(UnitNormalization()(x), keras_y, rtol=1e-7)
    np.testing.assert_allclose(UnitNormalization(axis=[1])(x), keras_y, rtol=1e-7)
    np.testing.assert_array_equal(UnitNormalization()(np.zeros((1, 3))), [[0.0, 0.0, 0.0]])  # Keras: [[0. 0. 0.]]
    cube = RNG.normal(size=(4, 3, 2))
    y = UnitNormalization(axis=[1, 2], dtype="float64")(cube)
    np.testing.assert_allclose(y, cube / np.sqrt((cube ** 2).sum(axis=(1, 2), keepdims=True)), rtol=1e-14)
    assert UnitNormalization(axis=(1, 2)).get_config()["axis"] == [1, 2]  # Keras keeps a list


def test_unit_normalization_backward_equals_pytorch_and_passes_the_gradient_check():
    x, dy = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4))
    x[0] = 0.0  # a zero row: y = 0, dx = dy * 1e12 (Keras's floor of the norm, 1e-12)
    layer = UnitNormalization(dtype="float64")
    layer(x)
    dx = layer.backward(dy)
    t = torch.tensor(x[1:], requires_grad=True)
    (F.normalize(t, dim=-1, eps=1e-12) * torch.tensor(dy[1:])).sum().backward()
    np.testing.assert_allclose(dx[1:], t.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(dx[0], dy[0] * 1e12)
    result = check([Dense(6), UnitNormalization(), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result
    result = check([Dense(6), Reshape((3, 2)), UnitNormalization(axis=1), Flatten(), Dense(3, activation="softmax")])
    assert result.difference < 1e-7, result


def test_unit_normalization_refuses_bad_axes_by_name():
    with pytest.raises(TypeError, match=r"UnitNormalization '\w+': Invalid value for `axis` argument: expected an "
                                        r"int or a list/tuple of ints. Received: axis='last'"):
        UnitNormalization(axis="last")
    with pytest.raises(ValueError, match=r"Axis 2 is out of bounds for input shape \(None, 3\)"):
        UnitNormalization(axis=2).build((None, 3))


# -- layer.losses ----------------------------------------------------------------------

def test_layer_losses_list_the_last_activity_penalty_then_each_regularized_weight_as_keras():
    layer = Dense(2, kernel_regularizer=regularizers.L2(0.1), bias_regularizer="l1",
                  activity_regularizer=regularizers.L1(0.05), kernel_initializer="ones", bias_initializer="ones")
    layer.build((None, 3))
    x = np.array([[3.0, 4.0, 0.0], [1.0, -2.0, 2.0]], dtype="float32")
    # Keras 3.15.1 (the same layer in keras.Sequential([keras.Input((3,)), ...])): [float(l) for l in model.losses]
    # before a call [0.6000000238418579, 0.019999999552965164]; after model(x) [0.5, 0.6000000238418579, 0.0199...]
    assert layer.losses == pytest.approx([0.6000000238418579, 0.019999999552965164], rel=1e-7)
    layer(x)
    assert layer.losses == pytest.approx([0.5, 0.6000000238418579, 0.019999999552965164], rel=1e-7)
    assert sum(layer.losses) == pytest.approx(layer.regularization_loss(), rel=1e-12)
    layer.trainable = False  # Keras: only trainable weights' penalties (a frozen Dense lists none)
    assert layer.losses == pytest.approx([0.5], rel=1e-7)


def test_activity_regularization_layer_losses_equal_keras():
    layer = gpudl.layers.ActivityRegularization(l1=0.1, l2=0.2)
    assert layer.losses == []
    layer(np.array([[1.0, -2.0], [3.0, 0.5]], dtype="float32"))
    assert layer.losses == pytest.approx([1.7500001192092896], rel=1e-7)  # Keras 3.15.1: [1.7500001192092896]


# -- activations.get / serialize / deserialize ---------------------------------------------

def test_activations_get_returns_the_function_itself_as_keras():
    swish = activations.get("swish")
    z = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(swish(z), z / (1 + np.exp(-z)), rtol=1e-14)
    assert swish is activations.silu  # Keras: get("swish") is silu (its serialize gives "silu")
    assert activations.get(None) is activations.linear and activations.get(activations.gelu) is activations.gelu
    custom = lambda x: x  # noqa: E731  (Keras returns any callable as is)
    assert activations.get(custom) is custom
    assert activations.get({"module": "keras.activations", "class_name": "function", "config": "tanh",
                            "registered_name": "function"}) is activations.tanh
    with pytest.raises(ValueError, match="Unknown activation: 'nope'"):
        activations.get("nope")
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: 3"):
        activations.get(3)
    dense = Dense(2, activation=activations.get("gelu"), dtype="float64")
    assert dense.get_config()["activation"] == "gelu"


def test_activations_serialize_and_deserialize_round_trip_as_keras():
    # Keras 3.15.1: serialize(relu) -> "relu", serialize(swish) -> "silu", deserialize("relu") -> relu
    assert activations.serialize(activations.relu) == "relu"
    assert activations.serialize(activations.swish) == "silu"
    for name in ("relu", "silu", "tanh", "log_softmax"):
        assert activations.deserialize(activations.serialize(activations.get(name))) is activations.get(name)
    custom = lambda x: 2 * x  # noqa: E731
    assert activations.deserialize("double", custom_objects={"double": custom}) is custom
    with pytest.raises(ValueError, match="Unknown activation: 'double'"):
        activations.deserialize("double")
    assert activations.forward_backward("swish") == (activations.silu, activations.silu_backward)


# -- OrthogonalRegularizer -----------------------------------------------------------------

def orthogonal_penalty_float64(weights, factor, mode):
    """Keras's formula written out pair by pair in float64."""
    vectors = weights if mode == "rows" else weights.T
    unit = [v / max(np.linalg.norm(v), 1e-7) for v in vectors]
    n = len(unit)
    pairs = [abs(unit[i] @ unit[j]) for i in range(n) for j in range(n) if i != j]
    return factor * 0.5 * sum(pairs) / (n * (n - 1) / 2)


W_FIXED = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-1.0, 2.0, 0.5], [0.0, 1.0, 1.0]], dtype="float32")


@pytest.mark.parametrize("mode, keras_penalty", [("rows", 0.10928335785865784), ("columns", 0.06314710527658463)])
def test_orthogonal_regularizer_penalty_equals_keras(mode, keras_penalty):
    # Keras 3.15.1: float(keras.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)(
    #     keras.ops.convert_to_tensor(W_FIXED)))
    regularizer = regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
    assert regularizer(W_FIXED) == pytest.approx(keras_penalty, rel=1e-6)
    weights = RNG.normal(size=(5, 4))
    assert regularizer(weights) == pytest.approx(orthogonal_penalty_float64(weights, 0.3, mode), rel=1e-12)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_gradient_equals_float64_finite_differences(mode):
    regularizer = regularizers.OrthogonalRegularizer(factor=0.7, mode=mode)
    weights = RNG.normal(size=(4, 6))
    step = 1e-6
    numeric = np.zeros_like(weights)
    for index in np.ndindex(weights.shape):
        plus, minus = weights.copy(), weights.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (regularizer(plus) - regularizer(minus)) / (2 * step)
    np.testing.assert_allclose(regularizer.gradient(weights), numeric, rtol=1e-6, atol=1e-9)


def test_orthogonal_regularizer_on_a_dense_kernel_trains_with_correct_gradients():
    result = check([Dense(4, kernel_regularizer=regularizers.OrthogonalRegularizer(0.5, mode="columns")),
                    Dense(3, activation="softmax", kernel_regularizer="orthogonal_regularizer")])
    assert result.difference < 1e-7, result


def test_orthogonal_regularizer_config_names_and_bad_input():
    regularizer = regularizers.get({"class_name": "OrthogonalRegularizer", "config": {"factor": 0.1, "mode": "columns"}})
    assert regularizer.get_config() == {"factor": 0.1, "mode": "columns"}  # Keras's keys
    assert isinstance(regularizers.get("OrthogonalRegularizer"), regularizers.orthogonal_regularizer)
    assert regularizers.deserialize(regularizers.serialize(regularizer)).get_config() == regularizer.get_config()
    with pytest.raises(ValueError, match=r'Invalid value received for argument `mode`. Expected one of '
                                         r'\{"rows", "columns"\}. Received: mode=\'diagonal\''):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="argument `factor`. Expected a non-negative float. Received: factor=-1"):
        regularizers.OrthogonalRegularizer(factor=-1)
    with pytest.raises(ValueError, match=r"Inputs to OrthogonalRegularizer must have rank 2. Received: "
                                         r"inputs.shape=\(2, 2, 2\)"):
        regularizers.OrthogonalRegularizer()(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"needs at least 2 rows to compare; received a weight of shape \(1, 4\)"):
        regularizers.OrthogonalRegularizer()(np.ones((1, 4)))
