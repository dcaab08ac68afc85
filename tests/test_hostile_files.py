"""Hostile and corrupted gpudl `.npz` model files, each built here: every one is refused with a
ValueError naming the file, the member and what was expected, from what the file declares (the zip's
central directory, the .npy headers, the configuration), with peak memory bounded: nothing is
inflated, allocated or built first, and nothing is written. Well-formed variants are read exactly."""

import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

import gpudl
from gpudl import layers
from gpudl.saving import training_state

RNG = np.random.default_rng(5)
X = RNG.normal(size=(32, 6)).astype("float32")
Y = RNG.integers(0, 3, size=32)
PEAK_BYTES = 48 << 20  # every refusal stays far below this; the zip bomb below declares 256 MiB
MOVING_MEAN, MOVING_VARIANCE = 4, 5  # get_weights indices in the model below


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(path, model): a trained float32 model with batch norm, dropout and Adam, saved."""
    gpudl.utils.set_random_seed(2)
    model = gpudl.Sequential([gpudl.Input((6,)), layers.Dense(8), layers.BatchNormalization(), layers.Dropout(0.2),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("good") / "good.npz"
    model.save(path)
    return path, model


def arrays_of(path):
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_declaring(descr, shape, data=b"\0" * 64):
    """An .npy member whose header declares `descr` and `shape`, followed by `data` only."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def config_of(arrays):
    return json.loads(bytes(arrays["config"]).decode())


def with_config(arrays, config=None, text=None):
    text = json.dumps(config) if text is None else text
    return {**arrays, "config": np.frombuffer(text.encode(), dtype=np.uint8)}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """Members {name: bytes or array} as a zip (arrays saved as .npy), in order."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name if name.endswith(".npy") else name + ".npy",
                             content if isinstance(content, bytes) else npy(content))
    return path


def refused(path, match):
    """Load `path` under tracemalloc: a ValueError naming the file and matching `match`, with a
    bounded peak, and no file added beside it."""
    before = sorted(os.listdir(os.path.dirname(path)))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as error:
            gpudl.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert repr(str(path)) in str(error.value)
    assert peak < PEAK_BYTES, f"peak {peak} bytes while refusing {path}"
    assert sorted(os.listdir(os.path.dirname(path))) == before
    return str(error.value)


def assert_same_model(loaded, model):
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.epochs_done == model.epochs_done


# -- sizes: the zip's directory and the .npy headers ---------------------------------------------
def test_zip_bomb_is_refused_from_the_directory_without_inflating(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            if name != "weight_0":
                archive.writestr(name + ".npy", npy(array))
        with archive.open("weight_0.npy", "w", force_zip64=True) as member:
            member.write(npy_declaring("<f4", (1 << 26,), b""))
            chunk = bytes(16 << 20)
            for _ in range(16):  # 256 MiB of zeros, stored in about 256 KiB
                member.write(chunk)
    assert os.path.getsize(bomb) < 2 << 20
    message = refused(bomb, "'weight_0.npy' declares 268435584 bytes but stores only .*zip bomb")
    assert "more than 100x expansion" in message


def test_config_member_bomb_is_refused(good, tmp_path):
    path, _ = good
    members = dict(arrays_of(path))
    members["config"] = npy_declaring("|u1", (200 << 20,), bytes(200 << 20))
    refused(write_zip(tmp_path / "config_bomb.npz", members, zipfile.ZIP_DEFLATED), "'config.npy'.*zip bomb")


def test_npy_header_declaring_8_terabytes_is_refused_before_reading(good, tmp_path):
    path, _ = good
    members = {**arrays_of(path), "weight_0": npy_declaring("<f8", (1 << 40,))}
    refused(write_zip(tmp_path / "huge.npz", members),
            r"'weight_0.npy' declares dtype float64 and shape \(1099511627776,\) \(8796093022208 bytes\) but holds 64")


def test_member_shorter_than_its_header_and_negative_shapes_are_refused(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    kernel = arrays["weight_0"]
    short = {**arrays, "weight_0": npy(kernel)[:-4]}
    refused(write_zip(tmp_path / "short.npz", short), "'weight_0.npy' declares .* but holds")
    negative = {**arrays, "weight_0": npy_declaring("<f4", (-6, 8))}
    refused(write_zip(tmp_path / "negative.npz", negative), "'weight_0.npy'")


def test_unknown_duplicate_and_missing_config_members_are_refused(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    refused(write_zip(tmp_path / "extra.npz", {**arrays, "../../evil": np.zeros(3)}),
            "member '../../evil.npy' is not part of a gpudl model file")
    refused(write_zip(tmp_path / "no_config.npz", {k: v for k, v in arrays.items() if k != "config"}),
            "no config.npy member")
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_zip(tmp_path / "twice.npz", {**arrays, "config.npy": npy(arrays["weight_0"])})
    refused(tmp_path / "twice.npz", "member 'config.npy' appears twice")


def test_zip_declaring_millions_of_members_is_refused_before_its_directory_is_read(good, tmp_path):
    path, _ = good
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")  # the end-of-central-directory record: entry counts at +8 and +10
    data[end + 8:end + 12] = (0xFFFE).to_bytes(2, "little") * 2
    (tmp_path / "many.npz").write_bytes(bytes(data))
    refused(tmp_path / "many.npz", "it declares 65534 members; at most")


# -- the configuration: size, depth, finite numbers, counters ----------------------------------------
def test_config_asking_for_a_100_gb_dense_is_refused_before_building(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    config = config_of(arrays)
    config["model"]["build_input_shape"] = [None, 100_000]
    config["model"]["layers"][1]["config"]["units"] = 250_000  # a (100000, 250000) float32 kernel: 100 GB
    refused(write_zip(tmp_path / "dense.npz", with_config(arrays, config)),
            r"'weight_0.npy' has dtype float32 and shape \(6, 8\); weight '.*kernel' needs dtype float32 and "
            r"shape \(100000, 250000\)")
    config["model"]["build_input_shape"] = [None, 6]
    config["model"]["layers"][1]["config"]["units"] = 5_000_000_000  # one sample's output: 20 GB
    refused(write_zip(tmp_path / "wide.npz", with_config(arrays, config)), "has shape \\(5000000000,\\)")
    config["model"]["layers"][1]["config"]["units"] = 8
    config["model"]["build_input_shape"] = [None, 1 << 20, 1 << 20]
    refused(write_zip(tmp_path / "input.npz", with_config(arrays, config)), "the input has shape")


def test_config_declaring_too_many_layers_is_refused_before_building_any(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    config = config_of(arrays)
    config["model"]["layers"] += [{"class_name": "Dropout", "config": {"rate": 0.1}}] * 20_000
    refused(write_zip(tmp_path / "layers.npz", with_config(arrays, config)),
            "the model declares 20005 layers; at most 10000")


@pytest.mark.parametrize("depth", [100, 200_000])
def test_deeply_nested_json_is_refused(good, tmp_path, depth):
    path, _ = good
    arrays = arrays_of(path)
    text = json.dumps(config_of(arrays))[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    refused(write_zip(tmp_path / "deep.npz", with_config(arrays, text=text)), "nests deeper than 64 levels")


@pytest.mark.parametrize("key, value, match", [
    ("epochs_done", "Infinity", "holds Infinity"),
    ("epochs_done", "NaN", "holds NaN"),
    ("epochs_done", "1e400", "not a finite float"),
    ("epochs_done", "-1", r"epochs_done is -1; expected an integer in \[0, 2\*\*62\)"),
    ("epochs_done", "2.5", r"epochs_done is 2.5; expected an integer"),
    ("epochs_done", "true", r"epochs_done is True; expected an integer"),
    ("iterations", str(2 ** 70), r"compile.iterations is 1180591620717411303424; expected an integer"),
    ("iterations", "-4", r"compile.iterations is -4"),
    ("dropout_calls", '{"3": -2}', r"dropout_calls\['3'\] is -2"),
    ("dropout_calls", '{"0": 5}', r"dropout_calls names layer '0'; the model's random layers are at \[2\]"),
    ("dropout_calls", '{"3": 1e999}', "not a finite float"),
    ("seed", "-1", r"seed is -1; expected an integer in \[0, 2\*\*64\)"),
    ("seed", str(2 ** 64), "seed is 18446744073709551616"),
])
def test_config_numbers_out_of_range_are_refused(good, tmp_path, key, value, match):
    path, _ = good
    arrays = arrays_of(path)
    config = config_of(arrays)
    marker = "__VALUE__"
    (config["compile"] if key == "iterations" else config)[key] = marker
    text = json.dumps(config).replace(f'"{marker}"', value)
    refused(write_zip(tmp_path / "number.npz", with_config(arrays, text=text)), match)


def test_config_too_large_or_not_bytes_is_refused(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    refused(write_zip(tmp_path / "float_config.npz", {**arrays, "config": np.zeros(4)}),
            r"'config.npy' has dtype float64 and shape \(4,\); expected uint8")
    padded = json.dumps(config_of(arrays)) + " " * (65 << 20)
    refused(write_zip(tmp_path / "big_config.npz", with_config(arrays, text=padded)),
            r"'config.npy' is \d+ bytes; at most 67108864")


# -- every expected member, exact dtypes, shapes and names --------------------------------------------
def test_model_file_without_weights_is_refused_not_freshly_initialised(good, tmp_path):
    path, _ = good
    arrays = {k: v for k, v in arrays_of(path).items() if not k.startswith("weight_")}
    refused(write_zip(tmp_path / "no_weights.npz", arrays),
            "model has 8 weights but the file holds none .refusing to return a freshly initialised model")
    fewer = {k: v for k, v in arrays_of(path).items() if k != "weight_7"}
    refused(write_zip(tmp_path / "fewer.npz", fewer), "has 8 weights .*; the file holds 7")


@pytest.mark.parametrize("drop, add, match", [
    ("optimizer_v", None, r"Adam needs the members .*; missing \['optimizer_v.npy'\]"),
    (None, "optimizer_extra", r"unexpected \['optimizer_extra.npy'\]"),
])
def test_missing_or_unexpected_optimizer_slots_are_refused(good, tmp_path, drop, add, match):
    path, _ = good
    arrays = arrays_of(path)
    arrays.pop(drop, None)
    if add:
        arrays[add] = arrays["optimizer_m"]
    refused(write_zip(tmp_path / "slots.npz", arrays), match)


def test_slot_of_the_wrong_dtype_or_shape_is_refused(good, tmp_path):
    path, _ = good
    arrays = arrays_of(path)
    refused(write_zip(tmp_path / "slot64.npz", {**arrays, "optimizer_m": arrays["optimizer_m"].astype("float64")}),
            r"'optimizer_m.npy' has dtype float64 .*; optimizer slot 'm' needs dtype float32")
    refused(write_zip(tmp_path / "slot_short.npz", {**arrays, "optimizer_v": arrays["optimizer_v"][:-1]}),
            r"'optimizer_v.npy' has dtype float32 and shape \(\d+,\); optimizer slot 'v' needs")


@pytest.mark.parametrize("make, match", [
    (lambda w: w.astype(str), "dtype <U"),
    (lambda w: w.astype("complex64"), "dtype complex64"),
    (lambda w: w > 0, "dtype bool"),
    (lambda w: np.zeros(w.shape, "datetime64[s]"), "dtype datetime64"),
    (lambda w: np.zeros(w.shape, [("a", "<f4")]), r"dtype \[\('a', '<f4'\)\]"),
    (lambda w: np.zeros(w.shape, ("<f4", (2,))), "dtype"),
    (lambda w: np.full(w.shape, 1e300), r"has dtype float64 and shape \(6, 8\); weight "
                                        r"'.*kernel' needs dtype float32"),
    (lambda w: w.astype(">f4"), r"has dtype >f4 .* needs dtype float32"),
    (lambda w: w.astype("int32"), "has dtype int32"),
    (lambda w: w.T.copy(), r"shape \(8, 6\); weight '.*kernel' needs dtype float32 and shape \(6, 8\)"),
])
def test_weights_of_another_dtype_or_shape_are_refused(good, tmp_path, make, match):
    path, _ = good
    arrays = arrays_of(path)
    members = {**arrays, "weight_0": npy(make(arrays["weight_0"]))}
    refused(write_zip(tmp_path / "dtype.npz", members), "'weight_0.npy'.*" + match)


def test_names_swapping_moving_mean_and_moving_variance_are_refused(good, tmp_path):
    path, model = good
    arrays = arrays_of(path)
    names = json.loads(bytes(arrays["names"]).decode())
    assert names == [p.path for p in model.weights]
    names[MOVING_MEAN], names[MOVING_VARIANCE] = names[MOVING_VARIANCE], names[MOVING_MEAN]
    swapped = {**arrays, "names": np.frombuffer(json.dumps(names).encode(), dtype=np.uint8)}
    swapped[f"weight_{MOVING_MEAN}"], swapped[f"weight_{MOVING_VARIANCE}"] = (
        arrays[f"weight_{MOVING_VARIANCE}"], arrays[f"weight_{MOVING_MEAN}"])
    message = refused(write_zip(tmp_path / "swapped.npz", swapped), "'names.npy' lists 8 weights whose #4 is")
    assert "moving_variance" in message and "moving_mean" in message


# -- well-formed variants are read exactly --------------------------------------------------------------
def test_good_file_is_read_exactly(good):
    path, model = good
    assert_same_model(gpudl.load_model(path), model)


def test_deflated_fortran_order_and_nameless_files_are_read_exactly(good, tmp_path):
    path, model = good
    arrays = arrays_of(path)
    fortran = {**arrays, "weight_0": np.asfortranarray(arrays["weight_0"])}
    assert np.lib.format.read_array_header_1_0 and not fortran["weight_0"].flags.c_contiguous
    assert_same_model(gpudl.load_model(write_zip(tmp_path / "fortran.npz", fortran, zipfile.ZIP_DEFLATED)), model)
    nameless = {k: v for k, v in arrays.items() if k != "names"}  # files written before names.npy
    assert_same_model(gpudl.load_model(write_zip(tmp_path / "nameless.npz", nameless)), model)


def test_metadata_travels_inside_the_one_file(good, tmp_path):
    from gpudl.saving.npz import load_npz, save_npz

    _, model = good
    save_npz(model, tmp_path / "m.npz", metadata={"epoch": 3, "batch": 0})
    loaded, metadata = load_npz(tmp_path / "m.npz", metadata=True)
    assert metadata == {"epoch": 3, "batch": 0}
    assert_same_model(loaded, model)


def test_restore_refuses_bad_counters_and_changes_nothing(good):
    _, model = good
    fresh = gpudl.load_model(good[0])
    state, slots = training_state.capture(fresh)
    before = [w.copy() for w in fresh.get_weights()], fresh.epochs_done, fresh.optimizer.iterations
    for bad, match in [({**state, "epochs_done": -1}, "epochs_done is -1"),
                       ({**state, "iterations": 2 ** 70}, "iterations is 1180591620717411303424"),
                       ({**state, "dropout_calls": {"2": float("inf")}}, r"dropout_calls\['2'\] is inf"),
                       ({**state, "dropout_calls": {"9": 1}}, "names layer '9'")]:
        with pytest.raises(ValueError, match=match):
            training_state.restore(fresh, bad, slots)
    with pytest.raises(ValueError, match=r"missing \['v'\]"):
        training_state.restore(fresh, state, {"m": slots["m"]})
    with pytest.raises(ValueError, match="Optimizer slot 'm' has shape .* and dtype float64"):
        training_state.restore(fresh, state, {**slots, "m": slots["m"].astype("float64")})
    assert fresh.epochs_done == before[1] and fresh.optimizer.iterations == before[2]
    for a, b in zip(fresh.get_weights(), before[0]):
        np.testing.assert_array_equal(a, b)
