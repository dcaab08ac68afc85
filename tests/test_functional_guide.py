"""The MLP parts of the keras-io functional-API guide (guides/functional_api.py), run with gpudl and with
Keras 3.15.1 side by side from the same initial weights: the mnist_model (summary rows, training with
validation_split, evaluate), models called like layers (the ensembling example), node extraction
(`keras.Model(model.input, [layer.output ...])`), and get_config/from_config, to_json/model_from_json,
clone_model. MNIST is replaced by synthetic 784-pixel data (no download)."""

import numpy as np
import pytest

import gpudl
from gpudl import layers

keras = pytest.importorskip("keras")

RNG = np.random.default_rng(3)
X = RNG.uniform(size=(300, 784)).astype(np.float32)
Y = (X @ RNG.normal(size=(784, 10))).argmax(1)


def mnist_model(api):
    """The guide's first model, as written there."""
    inputs = api.Input(shape=(784,))
    dense = api.layers.Dense(64, activation="relu")
    x = dense(inputs)
    x = api.layers.Dense(64, activation="relu")(x)
    outputs = api.layers.Dense(10)(x)
    return api.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def copy_weights(theirs, ours):
    """Keras's weights into gpudl's model, layer by layer in Keras's order (gpudl's is the same)."""
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])


def summary_rows(model):
    rows = []
    model.summary(print_fn=lambda line, *args, **kwargs: rows.append(line))
    return rows


def test_input_shape_and_dtype_as_keras():
    ours, theirs = gpudl.Input(shape=(784,)), keras.Input(shape=(784,))
    assert ours.shape == theirs.shape == (None, 784)
    assert ours.dtype == theirs.dtype == "float32"


def test_mnist_model_summary_lists_keras_layers_shapes_and_parameters():
    ours, theirs = mnist_model(gpudl), mnist_model(keras)
    text = "\n".join(summary_rows(ours))
    assert 'Model: "mnist_model"' in text and "Connected to" in text
    for ours_layer, layer in zip(ours.layers, theirs.layers):
        shape = str(tuple(layer.output.shape))
        line = next(row for row in text.splitlines() if row.startswith(f"{ours_layer.name} ("))
        assert f"({type(layer).__name__})" in line and shape in line and f"{layer.count_params():,}" in line
    assert f"Total params: {theirs.count_params():,}" in text
    assert ours.count_params() == theirs.count_params() == 55050


def test_mnist_model_trains_as_keras_with_validation_split():
    """The guide compiles with RMSprop, whose epsilon gpudl places as PyTorch does (README), so the numbers
    are compared under SGD, where the two libraries take the same steps; RMSprop gives the same keys."""
    for optimizer in ("sgd", "rmsprop"):
        ours, theirs = mnist_model(gpudl), mnist_model(keras)
        copy_weights(theirs, ours)
        for api, model in ((gpudl, ours), (keras, theirs)):
            model.compile(loss=api.losses.SparseCategoricalCrossentropy(from_logits=True),
                          optimizer=api.optimizers.get(optimizer), metrics=["accuracy"])
        kwargs = dict(batch_size=64, epochs=2, validation_split=0.2, shuffle=False, verbose=0)
        ours_history, theirs_history = ours.fit(X, Y, **kwargs).history, theirs.fit(X, Y, **kwargs).history
        assert list(ours_history) == list(theirs_history)
        if optimizer == "sgd":
            for key in theirs_history:
                np.testing.assert_allclose(ours_history[key], theirs_history[key], rtol=2e-5, err_msg=key)
            np.testing.assert_allclose(ours.evaluate(X, Y, verbose=0), theirs.evaluate(X, Y, verbose=0), rtol=2e-5)


def test_models_called_like_layers_ensemble_as_keras():
    def get_model(api):
        inputs = api.Input(shape=(128,))
        outputs = api.layers.Dense(1)(inputs)
        return api.Model(inputs, outputs)

    def ensemble(api):
        models = [get_model(api) for _ in range(3)]
        inputs = api.Input(shape=(128,))
        outputs = api.layers.average([model(inputs) for model in models])
        return models, api.Model(inputs=inputs, outputs=outputs)

    (our_models, ours), (their_models, theirs) = ensemble(gpudl), ensemble(keras)
    for our_model, their_model in zip(our_models, their_models):
        copy_weights(their_model, our_model)
    x, y = RNG.normal(size=(40, 128)).astype(np.float32), RNG.normal(size=(40, 1)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    for model in (ours, theirs):
        model.compile("sgd", "mse")
    kwargs = dict(batch_size=10, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(ours.fit(x, y, **kwargs).history["loss"], theirs.fit(x, y, **kwargs).history["loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(our_models[0].predict(x, verbose=0), their_models[0].predict(x, verbose=0), rtol=1e-4,
                               atol=1e-5)  # the inner models trained: they are the ensemble's layers


def test_extracting_intermediate_outputs_as_keras():
    ours, theirs = mnist_model(gpudl), mnist_model(keras)
    copy_weights(theirs, ours)
    features = [gpudl.Model(ours.input, ours.layers[2].output),
                gpudl.Model(inputs=ours.input, outputs=[layer.output for layer in ours.layers[1:]])]
    expected = [keras.Model(theirs.input, theirs.layers[2].output),
                keras.Model(inputs=theirs.input, outputs=[layer.output for layer in theirs.layers[1:]])]
    np.testing.assert_allclose(features[0].predict(X, verbose=0), expected[0].predict(X, verbose=0), rtol=1e-5,
                               atol=1e-5)
    for a, b in zip(features[1].predict(X, verbose=0), expected[1].predict(X, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_layer_order_follows_keras_depth_order():
    """An input that only a late layer reads comes later in Keras's `layers`; so it does in gpudl's."""
    def build(api):
        a, b = api.Input((4,), name="early"), api.Input((3,), name="late")
        h = api.layers.Dense(5, name="d1")(a)
        h = api.layers.Dense(3, name="d2")(h)
        merged = api.layers.concatenate([h, api.layers.Dense(3, name="side")(b)], name="cat")
        return api.Model([a, b], api.layers.Dense(2, name="out")(merged))

    assert [l.name for l in build(gpudl).layers] == [l.name for l in build(keras).layers]


def test_config_json_and_clone_round_trip_and_keras_reads_gpudl_config():
    ours = mnist_model(gpudl)
    config = ours.get_config()
    assert set(config) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    rebuilt = gpudl.Model.from_config(config)
    from_json = gpudl.models.model_from_json(ours.to_json())
    clone = gpudl.models.clone_model(ours)
    for model in (rebuilt, from_json, clone):
        assert model.get_config()["layers"][1:] == config["layers"][1:] or model is clone
        assert [w.shape for w in model.get_weights()] == [w.shape for w in ours.get_weights()]
        model.set_weights(ours.get_weights())
        np.testing.assert_array_equal(model.predict(X[:5], verbose=0), ours.predict(X[:5], verbose=0))
    theirs = keras.Model.from_config(config)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(theirs.predict(X[:5], verbose=0), ours.predict(X[:5], verbose=0), rtol=1e-5,
                               atol=1e-6)


def keras_summary_rows(model, monkeypatch):
    """Keras's summary table as rows of (layer (type), output shape, params, connected to)."""
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    lines = []
    model.summary(print_fn=lambda text, line_break=False: lines.extend(text.splitlines()))
    return [tuple(cell.strip() for cell in line.strip("│").split("│")) for line in lines if line.startswith("│")]


def gpudl_summary_rows(model):
    header, *rows = [line for line in summary_rows(model) if line and line[0] not in "─M "]
    starts = [header.index(title) for title in ("Layer (type)", "Output Shape", "Param #", "Connected to")]
    return [tuple(row[a:b].strip() for a, b in zip(starts, starts[1:] + [None])) for row in rows]


def test_summary_rows_with_connected_to_match_keras(monkeypatch):
    def shared_graph(api):
        shared = api.layers.Dense(2, name="sh")
        x = api.Input((2,), name="x")
        return api.Model(x, api.layers.add([shared(x), shared(shared(x))], name="ad"))

    def two_heads(api):
        a, b = api.Input((3,), name="a"), api.Input((2,), name="b")
        h = api.layers.Dense(5, activation="relu", name="hidden")(api.layers.concatenate([a, b], name="cat"))
        return api.Model([a, b], [api.layers.Dense(1, name="reg")(h), api.layers.Dense(3, name="cls")(h)])

    def nested(api):
        inner_in = api.Input((4,), name="inner_in")
        inner = api.Model(inner_in, api.layers.Dense(3, name="inner_dense")(inner_in), name="inner")
        x = api.Input((4,), name="outer_in")
        return api.Model(x, api.layers.average([inner(x), api.layers.Dense(3, name="side")(x)], name="avg"))

    for build in (shared_graph, two_heads, nested):
        assert gpudl_summary_rows(build(gpudl)) == keras_summary_rows(build(keras), monkeypatch), build.__name__


def test_every_merge_layer_round_trips_through_config_in_gpudl_and_keras():
    def build(api):
        a, b = api.Input((3,), name="a"), api.Input((3,), name="b")
        da, db = api.layers.Dense(4, name="da")(a), api.layers.Dense(4, name="db")(b)
        L = api.layers
        merged = L.concatenate([L.add([da, db]), L.subtract([da, db]), L.multiply([da, db]), L.average([da, db]),
                                L.maximum([da, db]), L.minimum([da, db]), L.Dot(axes=1, normalize=True)([da, db])],
                               axis=-1)
        return api.Model([a, b], api.layers.Dense(2, name="out")(merged))

    ours = build(gpudl)
    x = [X[:6, :3], X[:6, 3:6]]
    for twin in (gpudl.Model.from_config(ours.get_config()), keras.Model.from_config(ours.get_config())):
        twin.set_weights(ours.get_weights())
        np.testing.assert_allclose(twin.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [layer.get_config() for layer in gpudl.Model.from_config(ours.get_config()).layers] == [
        layer.get_config() for layer in ours.layers]
