"""A model's training state (gpudl.saving.training_state): every random layer's call counter,
the epochs done, the optimizer's step and slots travel together through save/load, ModelCheckpoint
and BackupAndRestore, so a resumed run replays the noise of the uninterrupted one."""

import numpy as np
import pytest

import gpudl
from gpudl import layers
from gpudl.callbacks import BackupAndRestore, Callback
from gpudl.saving import training_state

RNG = np.random.default_rng(3)
X = RNG.normal(size=(40, 6))
Y = RNG.integers(0, 3, size=40)


def noisy_model():
    """Every kind of random layer, each seeded by gpudl's generator (as a fresh process would)."""
    gpudl.utils.set_random_seed(11)
    model = gpudl.Sequential([
        gpudl.Input((6,)), layers.GaussianNoise(0.3), layers.Dense(8, activation="selu"),
        layers.AlphaDropout(0.2), layers.Dense(8, activation="relu"), layers.GaussianDropout(0.3),
        layers.Dropout(0.25), layers.Dense(3, activation="softmax")], dtype="float64")
    model.compile(optimizer=gpudl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


class CrashAtEpoch(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


def test_random_layers_are_every_layer_with_a_call_counter():
    model = noisy_model()
    names = [type(layer).__name__ for layer in training_state.random_layers(model).values()]
    assert names == ["GaussianNoise", "AlphaDropout", "GaussianDropout", "Dropout"]


@pytest.mark.parametrize("crash_epoch", [1, 2])
def test_backup_and_restore_resumes_noise_layers_bit_identically(tmp_path, crash_epoch):
    whole = noisy_model()
    whole.fit(X, Y, batch_size=8, epochs=3, verbose=0)
    crashed = noisy_model()
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(X, Y, batch_size=8, epochs=3, verbose=0,
                    callbacks=[BackupAndRestore(tmp_path / "backup"), CrashAtEpoch(crash_epoch)])
    rerun = noisy_model()  # a new process: every counter starts at 0
    history = rerun.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path / "backup")])
    assert history.epoch == list(range(crash_epoch, 3))
    counters = [layer.calls for layer in training_state.random_layers(rerun).values()]
    assert counters == [layer.calls for layer in training_state.random_layers(whole).values()] == [15] * 4
    for a, b in zip(whole.get_weights(), rerun.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_carry_every_counter_and_the_optimizer_state(tmp_path):
    model = noisy_model()
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = gpudl.models.load_model(tmp_path / "m.npz")
    state, slots = training_state.capture(model)
    loaded_state, loaded_slots = training_state.capture(loaded)
    assert loaded_state == state and state["dropout_calls"] == {"0": 10, "2": 10, "4": 10, "5": 10}
    assert state["epochs_done"] == 2 and state["iterations"] == 10
    assert sorted(slots) == sorted(loaded_slots) == ["m", "v"]
    for name in slots:
        np.testing.assert_array_equal(slots[name], loaded_slots[name])


def test_restore_checks_every_slot_shape_before_writing_any(tmp_path):
    model = noisy_model()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    state, slots = training_state.capture(model)
    before = {name: slot.copy() for name, slot in slots.items()}
    bad = {"m": slots["m"] + 1.0, "v": slots["v"][:-1]}
    with pytest.raises(ValueError, match="Optimizer slot 'v' has shape"):
        training_state.restore(model, state, bad)
    for name in before:
        np.testing.assert_array_equal(gpudl.backend.get_backend().to_numpy(model.optimizer.slots[name]), before[name])
