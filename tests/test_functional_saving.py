"""A functional model with two inputs and two outputs saved as a Keras 3 `.keras` archive, both ways
with Keras 3.15.1: Keras loads gpudl's file and predicts, evaluates and goes on training as gpudl does;
gpudl loads Keras's file likewise (optimizer state included). SGD with momentum, whose steps the two
libraries take identically, so training after the load can be compared number for number."""

import numpy as np
import pytest

import gpudl

keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from test_functional_multi import W_REG, XA, XB, Y_CLS, Y_REG, assert_same_logs, two_in_two_out  # noqa: E402

X = [XA, XB]
Y = {"reg": Y_REG, "cls": Y_CLS}
COMPILE = dict(loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"}, loss_weights={"reg": 0.5, "cls": 2.0},
               metrics={"reg": ["mae"], "cls": ["accuracy"]})
FIT = dict(batch_size=8, epochs=1, shuffle=False, verbose=0)


def assert_same_predictions(ours, theirs):
    ours_pred, theirs_pred = ours.predict(X, verbose=0), theirs.predict(X, verbose=0)
    assert sorted(ours_pred) == sorted(theirs_pred)
    for key in ours_pred:
        np.testing.assert_allclose(ours_pred[key], np.asarray(theirs_pred[key]), rtol=1e-5, atol=1e-6)


def test_keras_loads_gpudl_functional_archive_and_trains_on_as_gpudl(tmp_path):
    ours = two_in_two_out(gpudl, outputs_as="dict")
    ours.compile(optimizer=gpudl.optimizers.SGD(0.05, momentum=0.9), **COMPILE)
    ours.fit(X, Y, **FIT)
    path = tmp_path / "gpudl_two_in_two_out.keras"
    ours.save(path)
    theirs = keras.models.load_model(path)
    assert [layer.name for layer in theirs.layers] == [layer.name for layer in ours.layers]
    assert_same_predictions(ours, theirs)
    assert_same_logs(ours.evaluate(X, Y, verbose=0, return_dict=True), theirs.evaluate(X, Y, verbose=0, return_dict=True))
    assert int(theirs.optimizer.iterations) == int(ours.optimizer.iterations) == 5
    assert_same_logs(ours.fit(X, Y, sample_weight={"reg": W_REG, "cls": W_REG}, **FIT).history,
                     theirs.fit(X, Y, sample_weight={"reg": W_REG, "cls": W_REG}, **FIT).history, rtol=1e-4)
    assert_same_predictions(ours, theirs)


def test_gpudl_loads_keras_functional_archive_and_trains_on_as_keras(tmp_path):
    theirs = two_in_two_out(keras, outputs_as="dict", inputs_as="dict")
    theirs.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), **COMPILE)
    x = {"a": XA, "b": XB}
    theirs.fit(x, Y, **FIT)
    path = tmp_path / "keras_two_in_two_out.keras"
    theirs.save(path)
    ours = gpudl.models.load_model(path)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert ours.output_names == theirs.output_names and int(ours.optimizer.iterations) == 5
    assert_same_predictions(ours, theirs)
    assert_same_logs(ours.evaluate(x, Y, verbose=0, return_dict=True), theirs.evaluate(x, Y, verbose=0, return_dict=True))
    assert_same_logs(ours.fit(x, Y, **FIT).history, theirs.fit(x, Y, **FIT).history, rtol=1e-4)
    assert_same_predictions(ours, theirs)


def test_a_graph_with_a_shared_layer_and_a_nested_model_round_trips_with_keras(tmp_path):
    def build(api):
        inner_in = api.Input((4,), name="inner_in")
        inner = api.Model(inner_in, api.layers.Dense(3, activation="tanh", name="inner_dense")(inner_in), name="inner")
        x = api.Input((4,), name="x")
        shared = api.layers.Dense(4, activation="relu", name="shared")
        h = shared(shared(x))
        return api.Model(x, api.layers.Dense(2, name="out")(api.layers.concatenate([inner(h), h], name="cat")))

    ours = build(gpudl)
    path = tmp_path / "shared_nested.keras"
    ours.save(path)
    theirs = keras.models.load_model(path)
    np.testing.assert_allclose(ours.predict(XA[:, :2].repeat(2, 1), verbose=0),
                               theirs.predict(XA[:, :2].repeat(2, 1), verbose=0), rtol=1e-5, atol=1e-6)
    keras_path = tmp_path / "shared_nested_keras.keras"
    theirs.save(keras_path)
    again = gpudl.models.load_model(keras_path)
    np.testing.assert_allclose(again.predict(XA[:, :2].repeat(2, 1), verbose=0),
                               theirs.predict(XA[:, :2].repeat(2, 1), verbose=0), rtol=1e-5, atol=1e-6)


def test_npz_save_resumes_a_two_output_functional_model_exactly(tmp_path):
    gpudl.utils.set_random_seed(8)
    a, b = gpudl.Input((3,), name="a"), gpudl.Input((2,), name="b")
    h = gpudl.layers.Dense(6, activation="relu", name="trunk")(gpudl.layers.concatenate([a, b], name="cat"))
    h = gpudl.layers.Dropout(0.3, name="drop")(gpudl.layers.BatchNormalization(name="bn")(h))
    model = gpudl.Model([a, b], {"reg": gpudl.layers.Dense(1, name="reg")(h),
                                 "cls": gpudl.layers.Dense(3, activation="softmax", name="cls")(h)}, seed=4)
    model.compile(optimizer="adam", **COMPILE)
    model.fit(X, Y, **FIT)
    path = tmp_path / "two_outputs.npz"
    model.save(path)
    loaded = gpudl.models.load_model(path)
    assert loaded.get_config() == model.get_config() and int(loaded.optimizer.iterations) == 5
    for kind in ("fit", "fit again"):
        assert model.fit(X, Y, **{**FIT, "shuffle": True}).history == loaded.fit(X, Y, **{**FIT, "shuffle": True}).history
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_onnx_export_of_a_two_input_two_output_graph_with_every_merge_runs_as_predict(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    gpudl.utils.set_random_seed(9)
    a, b = gpudl.Input((3,), name="a"), gpudl.Input((3,), name="b")
    da, db = gpudl.layers.Dense(4, activation="tanh")(a), gpudl.layers.Dense(4, activation="relu")(b)
    L = gpudl.layers
    merged = L.concatenate([L.add([da, db]), L.subtract([da, db]), L.multiply([da, db, da]), L.average([da, db]),
                            L.maximum([da, db]), L.minimum([da, db]), L.dot([da, db], axes=1),
                            L.Dot(axes=1, normalize=True)([da, db])])
    h = L.BatchNormalization()(L.Dense(6, activation="relu")(merged))
    model = gpudl.Model([a, b], [L.Dense(1, name="reg")(h), L.Dense(3, activation="softmax", name="cls")(merged)])
    path = tmp_path / "graph.onnx"
    model.export(path)
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["a", "b"]
    assert [o.name for o in session.get_outputs()] == ["reg", "cls"]
    x = [XA, XA[:, ::-1].copy()]
    for ours, theirs in zip(model.predict(x, verbose=0), session.run(None, {"a": x[0], "b": x[1]})):
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)
