"""ModelCheckpoint(save_best_only=True) with BackupAndRestore keeps its best value across a
crash and resume: the best-model file at the end is the one an uninterrupted run leaves,
wherever the crash lands around the epoch's checkpoint and backup. Keras 3 keeps `best` in
memory only (keras/src/callbacks/model_checkpoint.py; backup_and_restore.py writes the
weights and {epoch, batch}): its resumed run saves at its first epoch whatever the value,
which the last test shows on Keras itself."""

import numpy as np
import pytest

import gpudl
from gpudl.callbacks import BackupAndRestore, Callback, ModelCheckpoint

EPOCHS = 8


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Raise Crash at the end of epoch `epoch` (hook "on_epoch_end") or at the start of the
    next one (hook "on_epoch_begin", after the backup of `epoch` is committed)."""

    def __init__(self, epoch, hook):
        super().__init__()
        self.epoch, self.hook = epoch, hook

    def on_epoch_end(self, epoch, logs=None):
        if self.hook == "on_epoch_end" and epoch == self.epoch:
            raise Crash

    def on_epoch_begin(self, epoch, logs=None):
        if self.hook == "on_epoch_begin" and epoch == self.epoch + 1:
            raise Crash


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=96) > 0).astype(np.int64)
    return x[:64], y[:64], (x[64:], y[64:])


def initial_weights(seed=11):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(5, 16)).astype(np.float32) * 0.5, np.zeros(16, np.float32),
            rng.normal(size=(16, 2)).astype(np.float32) * 0.3, np.zeros(2, np.float32)]


def make_model():
    """The same compiled model with the same initial weights every time; a high learning rate
    puts its best validation loss early, every later epoch worse (checked below)."""
    model = gpudl.Sequential([gpudl.Input((5,)), gpudl.layers.Dense(16, activation="relu"),
                              gpudl.layers.Dense(2, activation="softmax")], seed=11)
    model.compile(gpudl.optimizers.SGD(1.5), "sparse_categorical_crossentropy")
    model.build((None, 5))
    model.set_weights(initial_weights())
    return model


def run(callbacks, model=None):
    x, y, validation = data()
    model = model or make_model()
    history = model.fit(x, y, epochs=EPOCHS, batch_size=16, validation_data=validation, shuffle=False,
                        callbacks=callbacks, verbose=0)
    return model, history.history.get("val_loss")


def saved_weights(path):
    model = make_model()
    model.load_weights(path)
    return model.get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(the best file's weights, best val_loss, the epoch to crash after) of a run without a crash."""
    path = str(tmp_path_factory.mktemp("alone") / "best.weights.h5")
    checkpoint = ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    _, val_loss = run([checkpoint])
    # crash right after the best epoch: every later epoch is worse, and a checkpoint that forgot
    # its best would save the first of them
    crash_epoch = int(np.argmin(val_loss))
    assert 1 <= crash_epoch <= EPOCHS - 2, val_loss
    assert checkpoint.best == min(val_loss)
    return saved_weights(path), checkpoint.best, crash_epoch


ORDERS = {  # where the crash lands, by the list order and hook
    "before the checkpoint of the epoch": (["crash", "checkpoint", "backup"], "on_epoch_end"),
    "after the checkpoint, before the backup": (["backup", "checkpoint", "crash"], "on_epoch_end"),
    "after the checkpoint, backup listed first": (["checkpoint", "backup", "crash"], "on_epoch_end"),
    "after the backup is committed": (["backup", "checkpoint", "crash"], "on_epoch_begin"),
}


@pytest.mark.parametrize("where", ORDERS)
def test_a_resumed_run_keeps_the_best_value_and_the_best_file(where, uninterrupted, tmp_path):
    expected_weights, expected_best, crash_epoch = uninterrupted
    order, hook = ORDERS[where]
    path, backup_dir = str(tmp_path / "best.weights.h5"), str(tmp_path / "backup")

    def callbacks(crash):
        made = {"checkpoint": ModelCheckpoint(path, save_best_only=True, save_weights_only=True),
                "backup": BackupAndRestore(backup_dir), "crash": crash}
        return [made[name] for name in order if made[name] is not None], made["checkpoint"]

    first, _ = callbacks(CrashAt(crash_epoch, hook))
    with pytest.raises(Crash):
        run(first)
    second, checkpoint = callbacks(None)  # a new process: fresh callbacks, the same files
    run(second)
    assert checkpoint.best == expected_best
    for saved, expected in zip(saved_weights(path), expected_weights):
        np.testing.assert_array_equal(saved, expected)


def test_without_the_kept_best_the_resumed_run_overwrites_the_best_file(uninterrupted, tmp_path, monkeypatch):
    """The check above can fail: a checkpoint that forgets (as Keras's does) saves a worse model."""
    expected_weights, _, crash_epoch = uninterrupted
    monkeypatch.setattr(BackupAndRestore, "set_callback_list", lambda self, callbacks: None)
    path, backup_dir = str(tmp_path / "best.weights.h5"), str(tmp_path / "backup")
    with pytest.raises(Crash):
        run([ModelCheckpoint(path, save_best_only=True, save_weights_only=True), BackupAndRestore(backup_dir),
             CrashAt(crash_epoch, "on_epoch_begin")])
    run([ModelCheckpoint(path, save_best_only=True, save_weights_only=True), BackupAndRestore(backup_dir)])
    assert any(not np.array_equal(s, e) for s, e in zip(saved_weights(path), expected_weights))


def test_a_backup_with_a_non_finite_or_misshapen_best_is_refused(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "m.weights.h5"), save_best_only=True, save_weights_only=True)
    backup = BackupAndRestore(str(tmp_path / "backup"))
    backup.set_callback_list([checkpoint, backup])
    with pytest.raises(ValueError, match="finite number or null"):
        backup._restore_callbacks([{"class": "ModelCheckpoint", "monitor": "val_loss",
                                    "filepath": checkpoint.filepath, "best": "0.1"}], "b.npz")
    with pytest.raises(ValueError, match="list of objects"):
        backup._restore_callbacks({"best": 1.0}, "b.npz")
    assert checkpoint.best is None


def test_keras_forgets_its_best_value_on_resume(tmp_path):
    """Keras 3.15.1 itself: after a crash, its resumed ModelCheckpoint starts from best=None and
    saves at the first resumed epoch even when that epoch is worse than the best so far."""
    keras = pytest.importorskip("keras")
    x, y, validation = data()
    weights = initial_weights()

    def keras_run(callbacks):
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(keras.optimizers.SGD(1.5), "sparse_categorical_crossentropy")
        model.set_weights(weights)
        return model.fit(x, y, epochs=EPOCHS, batch_size=16, validation_data=validation, shuffle=False,
                         callbacks=callbacks, verbose=0).history["val_loss"]

    class KerasCrash(keras.callbacks.Callback):
        def __init__(self, epoch):
            super().__init__()
            self.epoch = epoch

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.epoch + 1:
                raise Crash

    val_loss = keras_run([])
    crash_epoch = int(np.argmin(val_loss))
    assert 1 <= crash_epoch <= EPOCHS - 2, val_loss
    path, backup_dir = str(tmp_path / "best.weights.h5"), str(tmp_path / "backup")
    first = keras.callbacks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    with pytest.raises(Crash):
        keras_run([first, keras.callbacks.BackupAndRestore(backup_dir), KerasCrash(crash_epoch)])
    best_before_crash = first.best
    resumed = keras.callbacks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    assert resumed.best is None  # what the backup gives it back: nothing
    keras_run([resumed, keras.callbacks.BackupAndRestore(backup_dir)])
    resumed_losses = val_loss[crash_epoch + 1:]
    assert resumed_losses[0] > best_before_crash  # a worse epoch ...
    assert resumed.best <= resumed_losses[0]  # ... that the forgetful checkpoint took as its best
