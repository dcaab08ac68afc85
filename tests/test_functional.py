"""Functional models: keras.Input -> layers -> keras.Model(inputs, outputs), checked against the same
Sequential (bit-identical), against central differences (every merge layer, fan-out, a shared layer)
and against Keras 3 itself (the same graph and weights give the same outputs)."""

import numpy as np
import pytest

import gpudl as keras
from gpudl import layers

RNG = np.random.default_rng(7)
X = RNG.normal(size=(24, 5))
Y = RNG.integers(0, 3, size=24)


def test_input_is_a_symbolic_tensor_with_keras_shape():
    inputs = keras.Input(shape=(784,), name="pixels")
    assert inputs.shape == (None, 784) and inputs.name == "pixels"
    x = layers.Dense(64)(inputs)
    assert x.shape == (None, 64) and x.node.layer.input is inputs
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)


def test_a_weight_reads_like_an_array_as_keras_code_indexes_it():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Dense(2)(inputs))
    kernel, bias = model.weights
    assert kernel[0][1] == kernel.numpy()[0, 1] and len(kernel) == 3 and bias[:].shape == (2,)


def test_a_functional_chain_trains_bit_identically_to_the_same_sequential():
    def stack():
        return [layers.Dense(16, kernel_regularizer="l2"), layers.BatchNormalization(), layers.ReLU(),
                layers.Dropout(0.3), layers.Dense(3, activation="softmax")]

    keras.utils.set_random_seed(1)
    sequential = keras.Sequential([keras.Input((5,)), *stack()], seed=3, dtype="float64")
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5,), dtype="float64")
    x = inputs
    for layer in stack():
        x = layer(x)
    functional = keras.Model(inputs, x, seed=3)
    functional.set_weights(sequential.get_weights())
    for model in (sequential, functional):
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    histories = [model.fit(X, Y, batch_size=8, epochs=3, verbose=0).history for model in (sequential, functional)]
    assert histories[0] == histories[1]
    for a, b in zip(sequential.get_weights(), functional.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sequential.predict(X, verbose=0), functional.predict(X, verbose=0))


MERGES = {
    "add": lambda a, b: layers.add([a, b]), "subtract": lambda a, b: layers.subtract([a, b]),
    "multiply": lambda a, b: layers.multiply([a, b]), "average": lambda a, b: layers.average([a, b]),
    "maximum": lambda a, b: layers.maximum([a, b]), "minimum": lambda a, b: layers.minimum([a, b]),
    "concatenate": lambda a, b: layers.concatenate([a, b]), "dot": lambda a, b: layers.dot([a, b], axes=1),
    "cosine": lambda a, b: layers.Dot(axes=1, normalize=True)([a, b]),
}


def two_branch_model(merge):
    """Input -> two Dense branches (fan-out of the input) -> merge -> Dense softmax, in float64."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5,), dtype="float64")
    a = layers.Dense(4, activation="tanh")(inputs)
    b = layers.Dense(4, activation="sigmoid")(inputs)
    outputs = layers.Dense(3, activation="softmax")(merge(a, b))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("name", sorted(MERGES))
def test_every_merge_layer_passes_gradient_checking(name):
    result = keras.gradient_check(two_branch_model(MERGES[name]), X[:8], Y[:8])
    assert result.difference < 1e-7, str(result)


def test_fan_out_and_a_shared_layer_sum_their_gradients():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((5,), dtype="float64")
    shared = layers.Dense(5, activation="tanh")
    h = shared(inputs)
    twice = shared(h)  # the same weights applied twice: their gradients add
    merged = layers.concatenate([h, twice, layers.Dense(2)(h)])  # h fans out to three nodes
    outputs = layers.Dense(3, activation="softmax")(merged)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert [layer.name for layer in model.layers].count(shared.name) == 1
    assert len(model.trainable_weights) == 6
    result = keras.gradient_check(model, X[:8], Y[:8])
    assert result.difference < 1e-7, str(result)


def test_the_same_graph_and_weights_give_keras_outputs_and_loss():
    keras3 = pytest.importorskip("keras")

    def build(api):
        inputs = api.Input((5,))
        a = api.layers.Dense(6, activation="relu")(inputs)
        b = api.layers.Dense(6, activation="tanh")(inputs)
        x = api.layers.concatenate([api.layers.add([a, b]), api.layers.multiply([a, b])])
        outputs = api.layers.Dense(3, activation="softmax")(x)
        return api.Model(inputs, outputs)

    theirs, ours = build(keras3), build(keras)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = X.astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(theirs.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, Y, verbose=0), theirs.evaluate(x, Y, verbose=0), rtol=1e-5)


def test_bad_graphs_get_errors_naming_the_layer_and_shapes():
    inputs = keras.Input((5,))
    a, b = layers.Dense(4)(inputs), layers.Dense(3)(inputs)
    with pytest.raises(ValueError, match=r"Layer 'add.*' \(Add\) needs inputs of one shape; received shapes "
                                         r"\(None, 4\), \(None, 3\)"):
        layers.Add()([a, b])
    with pytest.raises(ValueError, match="Graph disconnected"):
        keras.Model(keras.Input((5,)), a)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        layers.Add()([a])
    with pytest.raises(ValueError, match="Input 'unused' is disconnected"):
        keras.Model([inputs, keras.Input((2,), name="unused")], a)
    with pytest.raises(ValueError, match="All `outputs` values must be KerasTensors"):
        keras.Model(inputs, [a, np.zeros(3)])
    with pytest.raises(NotImplementedError, match="subclass it and write call"):
        keras.Model()


def test_merge_layers_on_arrays_compute_eagerly_in_floatx():
    a, b = RNG.normal(size=(3, 4)).astype(np.float32), RNG.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(layers.Add()([a, b]), a + b)
    np.testing.assert_array_equal(layers.Maximum()([a, b]), np.maximum(a, b))
    np.testing.assert_array_equal(layers.Concatenate()([a, b]), np.concatenate([a, b], axis=1))
    np.testing.assert_allclose(layers.Dot(axes=1)([a, b])[:, 0], (a.astype(np.float64) * b).sum(axis=1), rtol=1e-6)


def test_models_used_as_layers_pass_gradients_through_a_nested_sequential_and_a_two_input_model():
    keras.utils.set_random_seed(9)
    p, q = keras.Input((4,), dtype="float64"), keras.Input((4,), dtype="float64")
    pair = keras.Model([p, q], layers.Dense(3, activation="tanh")(layers.multiply([p, q])))  # two inputs
    tower = keras.Sequential([layers.Dense(4, activation="sigmoid"), layers.Dense(4)], dtype="float64")
    inputs = keras.Input((5,), dtype="float64")
    h = layers.Dense(4, activation="tanh")(inputs)  # below the nested models: it needs their input gradients
    outputs = layers.Dense(3, activation="softmax")(layers.concatenate([pair([h, tower(h)]), h]))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert [type(layer).__name__ for layer in model.layers].count("Functional") == 1
    assert len(model.trainable_weights) == 10
    result = keras.gradient_check(model, X[:8], Y[:8])
    assert result.difference < 1e-7, str(result)
    with pytest.raises(ValueError, match=r"Model '.*' expects inputs of shape \[\(None, 4\), \(None, 4\)\]"):
        pair([h, layers.Dense(2)(h)])
