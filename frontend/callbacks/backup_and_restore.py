"""BackupAndRestore callback: back up the training state, and resume from it after a crash."""

import json
import os
import shutil

from gpudl.errors import invalid_value
from gpudl.frontend.callbacks.callback import Callback
from gpudl.frontend.callbacks.monitor_callback import BatchCounter, check_save_freq
from gpudl.saving import training_state


class BackupAndRestore(Callback):
    """Back up the whole training state to `backup_dir` after every epoch (or every
    `save_freq` batches), and resume from it when fit is run again after a crash.

    The backup is gpudl's exact-resume file (weights, optimizer slots and step, dropout
    counters, epochs done; written atomically) plus Keras's training_metadata.json. On
    train begin an existing backup is loaded into the model and fit starts at the epoch
    after the last one backed up (`model._initial_epoch`), so a run interrupted at an
    epoch boundary and resumed ends with the weights an uninterrupted run gives (the same
    model seed is needed for the same shuffling and dropout; a different one is warned
    about). A backup made mid-epoch (save_freq batches) resumes at the start of that epoch
    from the mid-epoch weights, as in Keras. After a successful fit the backup is deleted
    (`delete_checkpoint`).

    Args:
        backup_dir: directory of the backup (made if missing).
        save_freq: "epoch" or a number of batches.
        double_checkpoint: also keep the previous backup (`.bkp`), used if the latest is unreadable.
        delete_checkpoint: delete `backup_dir` when fit completes.
    """

    _reads_batch_logs_lazily = True  # counts batches, never reads their logs

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise invalid_value("backup_dir", "a directory path", backup_dir, "BackupAndRestore")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = check_save_freq(save_freq, "BackupAndRestore")
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self._model_path = os.path.join(self.backup_dir, "latest.npz")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._batches = None if save_freq == "epoch" else BatchCounter(save_freq)
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        try:
            self._load()
        except (OSError, ValueError):
            previous = self._model_path + ".bkp"
            if not os.path.exists(previous):
                raise
            shutil.copyfile(previous, self._model_path)
            if os.path.exists(self._metadata_path + ".bkp"):
                shutil.copyfile(self._metadata_path + ".bkp", self._metadata_path)
            self._load()

    def _load(self):
        from gpudl.saving import load_model

        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, your model must be built before you call "
                             f"`fit()`. Model '{self.model.name}' is unbuilt.")
        if os.path.exists(self._model_path):
            training_state.copy(self.model, load_model(self._model_path))
        if os.path.exists(self._metadata_path):
            with open(self._metadata_path) as f:
                self.model._initial_epoch = json.load(f)["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self._batches is None:
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self._batches is not None and self._batches.due(batch):
            self._save()

    def _save(self):
        from gpudl.saving import save_model, write_atomically

        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path in (self._model_path, self._metadata_path):
                if os.path.exists(path):
                    shutil.copyfile(path, path + ".bkp")
        save_model(self.model, self._model_path)
        batch = self._batches.last_batch if self._batches is not None else 0
        metadata = json.dumps({"epoch": self._current_epoch, "batch": batch}).encode("utf-8")
        write_atomically(self._metadata_path, lambda f: f.write(metadata))

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)
