"""`.weights.h5` is Keras 3's HDF5 weights file, both ways, checked against Keras itself (JAX
backend on CPU): what gpudl's save_weights writes, Keras's load_weights reads; what Keras's
save_weights writes (a model Keras built and trained), gpudl's load_weights reads; the arrays
are the same. Bad files change no weight; gpudl's former zip content still loads, with a
DeprecationWarning."""

import json
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras reads it once, at its first import
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import gpudl  # noqa: E402
from gpudl.saving import keras_archive  # noqa: E402
from gpudl.saving.keras_archive import INSTALL_HINT  # noqa: E402

h5py = pytest.importorskip("h5py")
keras = pytest.importorskip("keras")  # in the test extra; the skip is only a safety net

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # Keras 3.15
L = gpudl.layers


def data(n=32, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


def gpudl_model(seed=0, hidden=8, nested=True, compiled=True, rate=0.2):
    """Dense, BatchNormalization (moving statistics moved by training), Dropout, a nested
    Sequential and a repeated class (dense, dense_1, ...)."""
    gpudl.utils.set_random_seed(seed)
    inner = [L.Dense(5, activation="relu"), L.BatchNormalization()]
    body = [gpudl.Sequential(inner, name="block")] if nested else inner
    model = gpudl.Sequential([gpudl.Input((6,)), L.Dense(hidden, activation="relu"), L.BatchNormalization(),
                              L.Dropout(rate), L.Dense(5), *body, L.Dense(3, activation="softmax")], seed=seed)
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def keras_model(hidden=8, nested=True):
    inner = [keras.layers.Dense(5, activation="relu"), keras.layers.BatchNormalization()]
    body = [keras.Sequential(inner)] if nested else inner
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.Dropout(0.2), keras.layers.Dense(5),
                             *body, keras.layers.Dense(3, activation="softmax")])


def assert_same_weights(expected, found):
    assert len(expected) == len(found)
    for a, b in zip(expected, found):
        assert a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras: unbuilt optimizer
def test_gpudl_writes_hdf5_that_keras_load_weights_reads_with_the_same_arrays(tmp_path):
    x, y = data()
    model = gpudl_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # moving statistics and optimizer slots move
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    for compiled in (False, True):
        other = keras_model()
        if compiled:
            other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        other.load_weights(path)
        assert_same_weights(model.get_weights(), other.get_weights())
        np.testing.assert_allclose(np.asarray(other.predict(x, verbose=0)), model.predict(x, verbose=0),
                                   rtol=2e-5, atol=2e-6)


def test_keras_written_weights_h5_loads_into_gpudl_with_the_same_arrays(tmp_path):
    x, y = data()
    keras.utils.set_random_seed(3)
    other = keras_model()
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    other.fit(x, y, epochs=2, batch_size=8, verbose=0)  # the file then holds optimizer/vars too
    path = tmp_path / "k.weights.h5"
    other.save_weights(path)
    for compiled in (False, True):
        model = gpudl_model(seed=5, compiled=compiled)
        model.load_weights(path)
        assert_same_weights(other.get_weights(), model.get_weights())
        np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(other.predict(x, verbose=0)),
                                   rtol=2e-5, atol=2e-6)


def test_keras_flat_dense_batchnorm_dropout_model_loads_into_gpudl(tmp_path):
    keras.utils.set_random_seed(4)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    other.layers[1].moving_mean.assign(np.array([0.5, -1.0, 2.0], np.float32))  # not the initial values
    path = tmp_path / "k.weights.h5"
    other.save_weights(path)
    model = gpudl.Sequential([gpudl.Input((4,)), L.Dense(3), L.BatchNormalization(), L.Dropout(0.5), L.Dense(2)])
    model.load_weights(path)
    assert_same_weights(other.get_weights(), model.get_weights())


def test_gpudl_round_trip_keeps_every_weight_and_writes_keras_groups(tmp_path):
    model = gpudl_model()
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r") as h5:
        assert sorted(h5["layers"].keys()) == ["batch_normalization", "dense", "dense_1", "dense_2", "dropout",
                                               "sequential"]
        assert sorted(h5["layers/sequential/layers"].keys()) == ["batch_normalization", "dense"]
        assert "optimizer" in h5  # compiled: Keras's save_weights writes the optimizer's variables too
    other = gpudl_model(seed=9)
    other.load_weights(path)
    assert_same_weights(model.get_weights(), other.get_weights())


def test_wrong_shapes_change_nothing_and_name_the_layer_and_weight(tmp_path):
    path = tmp_path / "wide.weights.h5"
    gpudl_model(hidden=9).save_weights(path)
    model = gpudl_model(hidden=8, seed=1)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"layer 'dense\w*' \(weights: 'dense\w*/kernel' \(6, 8\).*"
                                         r"layers/dense/vars/0 has shape \(6, 9\)"):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights())


def test_skip_mismatch_keeps_the_mismatched_layers_and_loads_the_others(tmp_path):
    path = tmp_path / "wide.weights.h5"
    source = gpudl_model(hidden=9)
    source.save_weights(path)
    model = gpudl_model(hidden=8, seed=1)
    before = model.get_weights()
    with pytest.warns(UserWarning, match="Skipping loading weights for layers/dense "):
        model.load_weights(path, skip_mismatch=True)
    after = model.get_weights()
    assert_same_weights(before[:2], after[:2])  # dense (6, 8) kept: the file's is (6, 9)
    assert_same_weights(source.get_weights()[-2:], after[-2:])  # the last Dense loaded


def test_a_file_of_another_architecture_is_refused_naming_the_extra_layer(tmp_path):
    path = tmp_path / "m.weights.h5"
    gpudl_model(nested=False).save_weights(path)
    with h5py.File(path, "a") as h5:
        h5.create_group("layers/dense_9/vars")
    model = gpudl_model(nested=False, seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"layers/dense_9 that the model lacks"):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights())


def test_links_and_non_hdf5_content_are_refused(tmp_path):
    path = tmp_path / "m.weights.h5"
    gpudl_model(nested=False).save_weights(path)
    with h5py.File(path, "a") as h5:
        del h5["layers/dense_1/vars/0"]
        h5["layers/dense_1/vars/0"] = h5py.SoftLink("/layers/dense/vars/0")
    model = gpudl_model(nested=False, seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"layers/dense_1/vars/0 is not a plain dataset"):
        model.load_weights(path)
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"not a readable HDF5 weights file"):
        model.load_weights(garbage)
    assert_same_weights(before, model.get_weights())


def test_a_string_dataset_is_refused_before_any_weight_changes(tmp_path):
    path = tmp_path / "m.weights.h5"
    model = gpudl_model(nested=False)
    model.save_weights(path)
    with h5py.File(path, "a") as h5:
        shape = h5["layers/dense_2/vars/1"].shape
        del h5["layers/dense_2/vars/1"]
        h5["layers/dense_2/vars/1"] = np.full(shape, b"1.0")
    other = gpudl_model(nested=False, seed=2)
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"layers/dense_2/vars/1 has shape \(5,\) and dtype \|S3"):
        other.load_weights(path)
    assert_same_weights(before, other.get_weights())


def test_unbuilt_model_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "m.weights.h5"
    gpudl_model().save_weights(path)
    model = gpudl.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="not built yet"):
        model.load_weights(path)


def test_former_zip_content_still_loads_with_a_deprecation_warning(tmp_path):
    model = gpudl_model()
    path = tmp_path / "old.weights.h5"
    names = np.frombuffer(json.dumps([p.name for p in model.weights]).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:  # what save_weights wrote before: np.savez of weight_0, weight_1, ...
        np.savez(f, names=names, **{f"weight_{i}": w for i, w in enumerate(model.get_weights())})
    other = gpudl_model(seed=7)
    with pytest.warns(DeprecationWarning, match="former weights format"):
        other.load_weights(path)
    assert_same_weights(model.get_weights(), other.get_weights())
    short = tmp_path / "short.weights.h5"
    with open(short, "wb") as f:
        np.savez(f, weight_0=model.get_weights()[0])
    before = other.get_weights()
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="holds 1 weights"):
        other.load_weights(short)
    assert_same_weights(before, other.get_weights())


def test_missing_h5py_gives_the_install_hint(tmp_path, monkeypatch):
    model = gpudl_model()
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"\.weights\.h5.*" + INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        model.save_weights(tmp_path / "m.weights.h5")
    assert not (tmp_path / "m.weights.h5").exists()


def test_save_weights_is_atomic_and_respects_overwrite(tmp_path):
    path = tmp_path / "m.weights.h5"
    model = gpudl_model()
    model.save_weights(path)
    with pytest.raises(FileExistsError):
        model.save_weights(path, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.weights.h5"]


def legacy_file(path, arrays, names):
    """Write gpudl's former content: np.savez of names (JSON as uint8) and weight_<i>."""
    with open(path, "wb") as f:
        np.savez(f, names=np.frombuffer(json.dumps(names).encode("utf-8"), dtype=np.uint8),
                 **{f"weight_{i}": w for i, w in enumerate(arrays)})


def small_model(seed=0):
    gpudl.utils.set_random_seed(seed)
    return gpudl.Sequential([gpudl.Input((4,)), L.Dense(3), L.BatchNormalization()])


def refused_legacy(tmp_path, write, match):
    path = tmp_path / "old.weights.h5"
    write(path)
    model = small_model(seed=1)
    before = model.get_weights()
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=match):
        model.load_weights(path)
    assert_same_weights(before, model.get_weights())


def test_legacy_names_that_swap_moving_mean_and_variance_are_refused(tmp_path):
    model = small_model()
    names = [p.name for p in model.weights]
    names[-2], names[-1] = names[-1], names[-2]
    refused_legacy(tmp_path, lambda path: legacy_file(path, model.get_weights(), names),
                   r"weights are named \[.*'moving_variance', 'moving_mean'\]")


def test_legacy_zip_bomb_is_refused_from_the_directory(tmp_path):
    model = small_model()

    def write(path):
        import zipfile
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for i, w in enumerate(model.get_weights()):
                archive.writestr(f"weight_{i}.npy", b"\x93NUMPY" + bytes(8 << 20) if i == 0 else w.tobytes())
    refused_legacy(tmp_path, write, "possible zip bomb")


def test_legacy_header_declaring_a_huge_shape_is_refused_before_reading(tmp_path):
    model = small_model()

    def write(path):
        import io
        import zipfile
        with zipfile.ZipFile(path, "w") as archive:
            for i, w in enumerate(model.get_weights()):
                buffer = io.BytesIO()
                np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                              "shape": (1 << 20, 1 << 20) if i == 0 else w.shape})
                archive.writestr(f"weight_{i}.npy", buffer.getvalue() + w.tobytes())
    refused_legacy(tmp_path, write, r"weight 'dense\w*/kernel' has shape \(4, 3\); the file's weight_0\.npy has "
                                     r"shape \(1048576, 1048576\)")


def test_legacy_complex_or_unknown_members_are_refused(tmp_path):
    model = small_model()
    weights = model.get_weights()
    names = [p.name for p in model.weights]
    refused_legacy(tmp_path, lambda path: legacy_file(path, weights[:-1] + [weights[-1] + 1j], names),
                   r"weight_5\.npy.*dtype complex64; expected plain real numbers")

    def extra(path):
        with open(path, "wb") as f:
            np.savez(f, **{f"weight_{i}": w for i, w in enumerate(weights)}, payload=np.zeros(3))
    refused_legacy(tmp_path, extra, r"member 'payload\.npy' is not part of a gpudl weights file")


def test_legacy_skip_mismatch_keeps_the_mismatched_weight(tmp_path):
    source, model = small_model(), small_model(seed=1)
    weights = source.get_weights()
    weights[0] = np.zeros((4, 7), np.float32)
    path = tmp_path / "old.weights.h5"
    legacy_file(path, weights, [p.name for p in model.weights])
    kernel = model.get_weights()[0]
    with pytest.warns(DeprecationWarning):
        model.load_weights(path, skip_mismatch=True)
    np.testing.assert_array_equal(model.get_weights()[0], kernel)
    assert_same_weights(source.get_weights()[1:], model.get_weights()[1:])


def test_optimizer_state_round_trips_and_the_next_steps_are_identical(tmp_path):
    x, y = data()
    model = gpudl_model(rate=0.0)  # dropout's masks follow the seed and call counters, which a weights file lacks
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    other = gpudl_model(seed=3, rate=0.0)
    other.load_weights(path)
    assert other.optimizer.iterations == model.optimizer.iterations == 8
    for name in model.optimizer.slots:
        np.testing.assert_array_equal(gpudl.backend.get_backend().to_numpy(other.optimizer.slots[name]),
                                      gpudl.backend.get_backend().to_numpy(model.optimizer.slots[name]))
    model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    other.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert_same_weights(model.get_weights(), other.get_weights())


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_optimizer_state_goes_both_ways_with_keras(tmp_path):
    x, y = data()
    keras.utils.set_random_seed(3)
    other = keras_model()
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    other.fit(x, y, epochs=3, batch_size=8, verbose=0)
    path = tmp_path / "k.weights.h5"
    other.save_weights(path)
    model = gpudl_model(seed=5)
    model.load_weights(path)
    assert model.optimizer.iterations == int(other.optimizer.iterations) == 12
    keras_m = keras.ops.convert_to_numpy(other.optimizer.variables[2])  # m of the first kernel (Keras's order)
    first = model.weights[0]
    at = keras_archive._arena_slices(model)[id(first)]
    gpudl_m = gpudl.backend.get_backend().to_numpy(model.optimizer.slots["m"][at]).reshape(first.shape)
    np.testing.assert_array_equal(gpudl_m, keras_m)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save_weights(path)
    other.load_weights(path)
    assert int(other.optimizer.iterations) == 16
    assert_same_weights(model.get_weights(), other.get_weights())


def test_another_optimizer_in_the_file_is_skipped_with_a_warning_and_the_weights_load(tmp_path):
    x, y = data()
    model = gpudl_model()
    model.fit(x, y, batch_size=8, verbose=0)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    other = gpudl_model(seed=3, compiled=False)
    other.compile(optimizer=gpudl.optimizers.RMSprop(momentum=0.5), loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        other.load_weights(path)
    assert other.optimizer.iterations == 0
    assert_same_weights(model.get_weights(), other.get_weights())


@pytest.mark.parametrize("corrupt, match", [
    (lambda h5: h5["optimizer/vars/0"].write_direct(np.array(2 ** 63 - 1)), r"Cannot load weights from .*iterations\) is 9223372036854775807"),
    (lambda h5: h5["optimizer/vars/2"].write_direct(np.full(h5["optimizer/vars/2"].shape, np.nan, np.float32)),
     r"non-finite value in slot 0 \(m of 'dense\w*/kernel'\)"),
], ids=["iterations-out-of-range", "nan-slot"])
def test_a_corrupt_optimizer_state_changes_nothing(tmp_path, corrupt, match):
    x, y = data()
    model = gpudl_model(nested=False)
    model.fit(x, y, batch_size=8, verbose=0)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "a") as h5:
        corrupt(h5)
    other = gpudl_model(nested=False, seed=3)
    before, step = other.get_weights(), int(other.optimizer.iterations)
    with pytest.raises(ValueError, match=match):
        other.load_weights(path)
    assert_same_weights(before, other.get_weights())
    assert int(other.optimizer.iterations) == step


def test_functional_models_go_both_ways_with_keras(tmp_path):
    def gpudl_graph(seed):
        gpudl.utils.set_random_seed(seed)
        inputs = gpudl.Input((4,))
        hidden = L.BatchNormalization()(L.Dense(5, activation="relu")(inputs))
        return gpudl.Model(inputs, L.Dense(2)(L.Add()([hidden, L.Dense(5)(inputs)])))

    def keras_graph():
        inputs = keras.Input((4,))
        hidden = keras.layers.BatchNormalization()(keras.layers.Dense(5, activation="relu")(inputs))
        return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Add()([hidden, keras.layers.Dense(5)(inputs)])))

    model, path = gpudl_graph(0), tmp_path / "f.weights.h5"
    model.save_weights(path)
    other = keras_graph()
    other.load_weights(path)
    assert_same_weights(model.get_weights(), other.get_weights())
    keras.utils.set_random_seed(7)
    other = keras_graph()
    other.save_weights(path)
    model = gpudl_graph(1)
    model.load_weights(path)
    assert_same_weights(other.get_weights(), model.get_weights())
