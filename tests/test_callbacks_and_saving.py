"""Callbacks, saving, loading and exact resume (the toolkit issue)."""

import json
import zipfile

import numpy as np
import pytest

import gpudl
from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 6)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)


def model_with_everything(seed=3, learning_rate=None):
    gpudl.utils.set_random_seed(seed)
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(8, kernel_regularizer=gpudl.regularizers.L2(0.01)),
                              BatchNormalization(), ReLU(), Dropout(0.3), Dense(3, activation="softmax")])
    learning_rate = learning_rate or gpudl.schedules.ExponentialDecay(0.01, 5, 0.9)
    model.compile(gpudl.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Logs(gpudl.callbacks.Callback):
    """Feeds fixed epoch logs: lets the callbacks below be checked against Keras's rules by hand."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def fit_with(callbacks, epochs, learning_rate=None, **kwargs):
    model = model_with_everything(learning_rate=learning_rate)
    history = model.fit(X, Y, batch_size=20, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)
    return model, history


def test_early_stopping_waits_patience_epochs_without_improvement():
    # val_loss: best at epoch 1 (0.5); epochs 2, 3 do not improve -> with patience 2 stop after epoch 3
    _, history = fit_with([Logs([0.9, 0.5, 0.6, 0.55, 0.1, 0.1]),
                           gpudl.callbacks.EarlyStopping(patience=2)], epochs=6)
    assert len(history.history["loss"]) == 4


def test_early_stopping_min_delta_and_restore_best_weights():
    saved = {}

    class Snapshot(gpudl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch] = self.model.get_weights()

    stopper = gpudl.callbacks.EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1,
                                            restore_best_weights=True)
    # accuracy-like: maximized; 0.62 is not better than 0.6 by more than min_delta
    model, history = fit_with([Logs([0.5, 0.6, 0.62, 0.9], "val_accuracy"), Snapshot(), stopper], epochs=4)
    assert len(history.history["loss"]) == 3 and stopper.best_epoch == 1
    for restored, best in zip(model.get_weights(), saved[1]):
        np.testing.assert_array_equal(restored, best)


def test_unknown_monitor_and_negative_patience_are_named():
    # Keras 3: with mode="auto", a name whose direction is unknown raises at the first epoch end
    # (a known name missing from the logs only warns: tests/test_callbacks_keras.py)
    with pytest.raises(ValueError, match="received monitor=val_los, but gpudl isn't able to automatically "
                                         "determine whether that metric should be maximized or minimized"):
        fit_with([gpudl.callbacks.EarlyStopping(monitor="val_los")], epochs=1)
    with pytest.raises(ValueError, match="`patience`. Expected a non-negative integer. Received: patience=-1"):
        gpudl.callbacks.EarlyStopping(patience=-1)


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    model, history = fit_with([gpudl.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (1 + epoch))], 3)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_manual_decay_between_fits():
    model = model_with_everything(learning_rate=0.05)
    model.fit(X, Y, epochs=1, verbose=0)
    model.optimizer.learning_rate = 0.01
    assert model.optimizer.current_learning_rate() == 0.01


def test_reduce_lr_on_plateau_follows_keras_rule():
    # Keras: best 0.5 at epoch 0; epochs 1, 2 no better -> wait reaches 2, rate halves after epoch 2;
    # cooldown 1 is spent at epoch 3 (its wait counts again from 0 there), so wait reaches 2 at
    # epoch 4 and the rate halves again. Logged rates are those in force during each epoch.
    _, history = fit_with([Logs([0.5, 0.6, 0.6, 0.6, 0.6, 0.6]),
                           gpudl.callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)],
                          epochs=6, learning_rate=0.2)
    assert history.history["learning_rate"] == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1, 0.05])


def test_terminate_on_nan_stops_at_the_bad_batch():
    model = model_with_everything(learning_rate=1.0)
    bad_y = Y.copy()

    class Poison(gpudl.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                logs["loss"] = float("nan")

    history = model.fit(X, bad_y, batch_size=10, epochs=3, verbose=0,
                        callbacks=[Poison(), gpudl.callbacks.TerminateOnNaN()])
    assert model.optimizer.iterations == 2 and len(history.history["loss"]) == 1


def test_csv_logger_and_learning_curves_write_files(tmp_path):
    pytest.importorskip("matplotlib")
    csv, png = tmp_path / "log.csv", tmp_path / "curves.png"
    _, history = fit_with([gpudl.callbacks.CSVLogger(csv), gpudl.callbacks.LearningCurves(png)], 2,
                          validation_split=0.25)
    rows = csv.read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    assert float(rows[2].split(",")[2]) == history.history["loss"][1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_run_resumed_from_its_checkpoint_is_bit_identical(tmp_path):
    path = str(tmp_path / "epoch_{epoch}.gpudl.npz")
    whole = model_with_everything()
    whole.fit(X, Y, batch_size=8, epochs=5, verbose=0, validation_split=0.2,
              callbacks=[gpudl.callbacks.ModelCheckpoint(path)])
    for stop in (1, 3):
        resumed = gpudl.load_model(path.format(epoch=stop))
        assert resumed.epochs_done == stop
        resumed.fit(X, Y, batch_size=8, epochs=5, initial_epoch=resumed.epochs_done, verbose=0, validation_split=0.2)
        for a, b in zip(whole.get_weights(), resumed.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert resumed.optimizer.iterations == whole.optimizer.iterations


def test_save_best_only_keeps_the_best_epoch(tmp_path):
    path = tmp_path / "best.npz"
    model, _ = fit_with([Logs([0.9, 0.3, 0.5]), gpudl.callbacks.ModelCheckpoint(path, save_best_only=True)], 3)
    assert gpudl.load_model(path).epochs_done == 2


def test_saved_file_is_a_zip_of_npy_arrays_without_pickle(tmp_path):
    model = model_with_everything()
    model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    loaded = gpudl.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert isinstance(loaded.optimizer._learning_rate, gpudl.schedules.ExponentialDecay)  # .learning_rate: its value


def rewrite_config(source, target, edit):
    with np.load(source, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    config = json.loads(bytes(arrays["config"]).decode())
    edit(config)
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    np.savez(target, **arrays)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["model"]["layers"][0].update(class_name="os.system"), "Unknown layer class 'os.system'"),
    (lambda c: next(e for e in c["model"]["layers"] if "kernel_initializer" in e["config"])["config"].update(
        kernel_initializer={"class_name": "builtins.eval", "config": {}}), "Unknown initializer: 'builtins.eval'"),
    (lambda c: c["compile"].update(loss={"class_name": "subprocess.Popen", "config": {}}),
     "Unknown loss: 'subprocess.Popen'"),
    (lambda c: c["compile"].update(loss="subprocess.Popen"), "Unknown loss: 'subprocess.Popen'"),
    (lambda c: c["compile"]["optimizer"].update(class_name="__import__"), "Unknown optimizer class '__import__'"),
])
def test_hostile_config_naming_a_python_callable_is_refused(tmp_path, edit, match):
    model = model_with_everything()
    model.save(tmp_path / "good.npz")
    rewrite_config(tmp_path / "good.npz", tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError, match=match):
        gpudl.load_model(tmp_path / "bad.npz")


def test_truncated_and_garbage_files_give_a_clear_error(tmp_path):
    model = model_with_everything()
    model.save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a model")
    for name in ("truncated.npz", "garbage.npz"):
        with pytest.raises(ValueError, match="not a readable gpudl model file"):
            gpudl.load_model(tmp_path / name)


def test_object_arrays_in_a_file_are_refused_not_unpickled(tmp_path):
    model = model_with_everything()
    model.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["weight_0"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(ValueError, match="'weight_0.npy' holds an array of dtype object"):
        gpudl.load_model(tmp_path / "pickled.npz")


def test_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = model_with_everything()
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_custom_layer_loads_only_through_custom_objects(tmp_path):
    class Scale(gpudl.layers.Layer):
        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dy):
            return 2 * dy

    model = gpudl.Sequential([gpudl.Input((6,)), Dense(3), Scale()])
    model.save(tmp_path / "custom.npz")
    with pytest.raises(ValueError, match="Unknown layer class 'Scale': pass it in custom_objects"):
        gpudl.load_model(tmp_path / "custom.npz")
    loaded = gpudl.load_model(tmp_path / "custom.npz", custom_objects={"Scale": Scale})
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_public_gradient_check_and_diagnose():
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(4), Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gpudl.gradient_check(model, X[:8], Y[:8]).verdict == "fine"
    never_built = gpudl.Sequential([Dense(3)])
    never_built.compile("sgd", "mse")
    with pytest.raises(ValueError, match="never built"):
        gpudl.gradient_check(never_built, X, Y)
    assert gpudl.diagnose((0.01, 0.11)).verdict == "high variance"
