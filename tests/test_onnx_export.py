"""ONNX export: the file passes onnx.checker and onnxruntime's outputs equal gpudl's
predict to float32 rounding, for a trained model of every exportable layer kind and
every activation; training-only layers leave no node; what cannot be exported is named."""

import numpy as np
import pytest

import gpudl
from gpudl.saving.onnx_export import OPSET, export_onnx

onnx = pytest.importorskip("onnx")  # in the test extra; the skip is only a safety net
ort = pytest.importorskip("onnxruntime")

L = gpudl.layers


def data(n=40, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, features)) * 2).astype(np.float32), rng.integers(0, classes, n)


def every_layer_model(x, dtype=None, seed=0):
    """Every layer kind (some inside a nested Sequential), trained a few steps so that
    batch-norm's moving statistics and PReLU's slopes are no longer their initial values."""
    gpudl.utils.set_random_seed(seed)
    normalization = L.Normalization()
    normalization.adapt(x)
    block = gpudl.Sequential([L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dropout(0.3)], name="block")
    layers = [gpudl.Input((x.shape[1],)), normalization, block, L.Activation("tanh"), L.ReLU(), L.LeakyReLU(0.2),
              L.PReLU(), L.ELU(0.7), L.LayerNormalization(), L.GaussianNoise(0.1), L.GaussianDropout(0.1), L.AlphaDropout(0.1),
              L.ActivityRegularization(l2=1e-4), L.Rescaling(0.5, offset=0.25), L.Reshape((2, 4)), L.Flatten(),
              L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
              L.Normalization(mean=0.5, variance=4.0, invert=True)]
    layers += [L.Dense(8, use_bias=False), L.Dense(3), L.Softmax()]
    model = gpudl.Sequential(layers, dtype=dtype, seed=seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(len(x)) % 3, batch_size=8, epochs=2, verbose=0)
    return model


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def test_every_layer_kind_exports_and_onnxruntime_matches_predict(tmp_path):
    x, _ = data()
    model = every_layer_model(x)
    model.export(tmp_path / "m.onnx", format="onnx")  # Keras 3's name, routed to export_onnx

    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    ops = [node.op_type for node in proto.graph.node]
    assert "Dropout" not in ops and ops.count("BatchNormalization") == 1 and ops.count("LayerNormalization") == 1
    expected = model.predict(x, verbose=0)
    assert expected.std() > 0.05  # the outputs depend on the input: the comparison means something
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x[:1]), expected[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", sorted(gpudl.activations.ACTIVATIONS))
def test_each_activation_exports_to_ops_that_match_gpudl(tmp_path, activation):
    """In a Dense and as an Activation layer, on inputs of both signs and up to |z| ~ 8."""
    x, _ = data(seed=3)
    for head in (L.Dense(8, activation=activation), L.Activation(activation)):
        model = gpudl.Sequential([gpudl.Input((6,)), head, L.Dense(3)], seed=3)
        expected = model.predict(x, verbose=0)
        export_onnx(model, tmp_path / "a.onnx")
        np.testing.assert_allclose(run_onnx(tmp_path / "a.onnx", x), expected, rtol=1e-5, atol=2e-6)


def test_batch_norm_exports_its_moving_statistics_not_the_batch_ones(tmp_path):
    """A batch whose own mean is far from the moving mean: inference uses the moving one."""
    x, y = data(seed=1)
    model = gpudl.Sequential([gpudl.Input((6,)), L.Dense(4), L.BatchNormalization(momentum=0.5), L.Dense(3)], seed=1)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.eye(3)[y], batch_size=8, epochs=3, verbose=0)
    kernel, bias, gamma, beta, mean, variance, kernel2, bias2 = model.get_weights()
    epsilon = model.layers[1].epsilon
    z = (x + 3.0).astype(np.float64) @ kernel + bias
    reference = (gamma * (z - mean) / np.sqrt(variance + epsilon) + beta) @ kernel2 + bias2
    with_batch_statistics = (gamma * (z - z.mean(0)) / np.sqrt(z.var(0) + epsilon) + beta) @ kernel2 + bias2
    assert np.abs(reference - with_batch_statistics).max() > 0.1
    export_onnx(model, tmp_path / "bn.onnx")
    np.testing.assert_allclose(run_onnx(tmp_path / "bn.onnx", x + 3.0), reference, rtol=1e-5, atol=1e-5)


def test_float64_model_exports_in_double(tmp_path):
    x, _ = data(seed=2)
    model = gpudl.Sequential([gpudl.Input((6,)), L.Dense(5, activation="tanh"), L.BatchNormalization(),
                              L.Dense(3, activation="softmax")], dtype="float64", seed=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(len(x)) % 3, epochs=1, verbose=0)
    export_onnx(model, tmp_path / "m64.onnx")
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(run_onnx(tmp_path / "m64.onnx", x64), model.predict(x64, verbose=0),
                               rtol=1e-9, atol=1e-12)


def test_what_cannot_be_exported_is_named_and_no_file_is_written(tmp_path):
    class Cube(L.Layer):
        def forward(self, x, training=False):
            return x ** 3

    model = gpudl.Sequential([gpudl.Input((3,)), L.Dense(2), Cube()])
    with pytest.raises(ValueError, match=r"no export for layer class\(es\) Cube\. Exportable: .*Dense"):
        export_onnx(model, tmp_path / "m.onnx")
    unbuilt = gpudl.Sequential([L.Dense(2)])
    with pytest.raises(ValueError, match="must be built before export"):
        export_onnx(unbuilt, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_without_onnx_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    model = gpudl.Sequential([gpudl.Input((3,)), L.Dense(2)])
    with pytest.raises(ImportError, match=r'pip install "gpudl\[onnx\]"'):
        export_onnx(model, tmp_path / "m.onnx")
