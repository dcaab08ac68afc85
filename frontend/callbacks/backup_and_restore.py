"""BackupAndRestore callback: back up the training state, and resume from it after a crash."""

import json
import os
import shutil
import uuid

from gpudl import collectives
from gpudl.errors import invalid_value
from gpudl.frontend.callbacks.callback import Callback
from gpudl.frontend.callbacks.monitor_callback import BatchCounter, check_save_freq
from gpudl.saving import limits, training_state


class BackupAndRestore(Callback):
    """Back up the whole training state to `backup_dir` after every epoch (or every
    `save_freq` batches), and resume from it when fit is run again after a crash.

    The backup is one file, `latest.npz`: gpudl's exact-resume file (weights, optimizer slots
    and step, dropout counters, epochs done) holding the epoch and batch to resume at too, written
    to a temporary file and renamed over the previous one, so a crash at any moment leaves either
    the previous backup or the new one, whole. Keras's training_metadata.json is written after it
    for compatibility; resuming never depends on it. On train begin the backup is loaded into the
    model and fit starts at the epoch it names (`model._initial_epoch`), so a run interrupted
    anywhere and resumed ends with the weights an uninterrupted run gives (the same model seed is
    needed for the same shuffling and dropout; a different one is warned about). A backup made
    mid-epoch (save_freq batches) resumes at the start of that epoch from the mid-epoch weights,
    as in Keras. After a successful fit the backup directory is renamed away in one step, then
    deleted (`delete_checkpoint`): a crash during the deletion leaves no backup to resume from.
    The backup also keeps what the fit's other callbacks need to resume (`resume_state()`:
    ModelCheckpoint's best value, which Keras forgets), restored with the weights; its epoch and
    batch ends run after the other callbacks' (Keras: in list order), so a backup never holds a
    best value whose model file was not yet written, nor misses one that was.

    Args:
        backup_dir: directory of the backup (made if missing).
        save_freq: "epoch" or a number of batches.
        double_checkpoint: also keep the previous backup (`latest.npz.bkp`), used when the latest
            is missing or unreadable.
        delete_checkpoint: delete `backup_dir` when fit completes.
    """

    _reads_batch_logs_lazily = True  # counts batches, never reads their logs
    _commits_last = True  # CallbackList runs its epoch and batch ends after the other callbacks'

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise invalid_value("backup_dir", "a directory path", backup_dir, "BackupAndRestore")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = check_save_freq(save_freq, "BackupAndRestore")
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self._model_path = os.path.join(self.backup_dir, "latest.npz")
        self._previous_path = self._model_path + ".bkp"
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._batches = None if save_freq == "epoch" else BatchCounter(save_freq)
        self._current_epoch = 0
        self._resumable = []  # the fit's callbacks with a resume_state (ModelCheckpoint)

    def set_callback_list(self, callbacks):
        """The fit's callbacks (CallbackList calls this): their resume states go into the backup."""
        self._resumable = [c for c in callbacks if c is not self and hasattr(c, "resume_state")]

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, your model must be built before you call "
                             f"`fit()`. Model '{self.model.name}' is unbuilt.")
        if collectives.is_rank_zero():  # data parallel: rank 0 writes; every process reads the same file
            self._remove_deleted_backups()
        collectives.barrier()
        latest, previous = os.path.exists(self._model_path), os.path.exists(self._previous_path)
        if latest:
            try:
                return self._load(self._model_path)
            except (OSError, ValueError):
                if not previous:
                    raise
        if previous:  # killed between keeping the previous backup and committing the new one
            self._load(self._previous_path)

    def _load(self, path):
        from gpudl.saving import get_custom_objects
        from gpudl.saving.npz import load_npz

        saved, metadata = load_npz(path, get_custom_objects(), metadata=True)
        if metadata is None and os.path.exists(self._metadata_path):  # written before the epoch moved into the npz
            with open(self._metadata_path) as f:
                metadata = json.load(f)
        epoch = limits.counter((metadata or {}).get("epoch", saved.epochs_done), f"the epoch of the backup {path!r}")
        self._restore_callbacks((metadata or {}).get("callbacks", []), path)  # checked before it sets anything
        training_state.copy(self.model, saved)
        self.model._initial_epoch = self._current_epoch = epoch

    def _restore_callbacks(self, states, path):
        """Give each resumable callback its state back, matched by position and class."""
        where = f"BackupAndRestore: the backup {path!r}"
        if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
            raise ValueError(f"{where}: `callbacks` must be a list of objects; found {type(states).__name__}.")
        for callback, state in zip(self._resumable, states):
            if state.get("class") == type(callback).__name__:
                callback.restore_resume_state(state, where)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self._batches is None:
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self._batches is not None and self._batches.due(batch):
            self._save()

    def _save(self):
        if collectives.is_rank_zero():  # data parallel: rank 0 writes, the others wait for the file
            self._write()
        collectives.barrier()

    def _write(self):
        from gpudl.saving import write_atomically
        from gpudl.saving.npz import save_npz

        os.makedirs(self.backup_dir, exist_ok=True)
        batch = self._batches.last_batch if self._batches is not None else 0
        metadata = {"epoch": self._current_epoch, "batch": batch,
                    "callbacks": [{"class": type(c).__name__, **c.resume_state()} for c in self._resumable]}
        text = json.dumps({"epoch": self._current_epoch, "batch": batch}).encode("utf-8")
        if self.double_checkpoint and os.path.exists(self._model_path):
            os.replace(self._model_path, self._previous_path)  # one rename: the last commit is now the .bkp
        save_npz(self.model, self._model_path, metadata=metadata)  # the commit point
        write_atomically(self._metadata_path, lambda f: f.write(text))  # Keras's file; resume never needs it

    def on_train_end(self, logs=None):
        if collectives.is_rank_zero():
            self._delete()
        collectives.barrier()

    def _delete(self):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            doomed = f"{self._deleted_prefix()}{os.getpid()}-{uuid.uuid4().hex}"
            try:
                os.replace(self.backup_dir, doomed)  # one rename: from here on no backup can be resumed
            except OSError:  # a mount point, or a directory in use: each file left is still a whole backup
                doomed = self.backup_dir
            shutil.rmtree(doomed)

    def _deleted_prefix(self):
        parent, name = os.path.split(os.path.abspath(self.backup_dir))
        return os.path.join(parent, f".{name}.gpudl-deleted-")

    def _remove_deleted_backups(self):
        """Finish the deletions a crash interrupted (directories renamed away, not yet removed)."""
        prefix = self._deleted_prefix()
        parent, start = os.path.split(prefix)
        for name in os.listdir(parent) if os.path.isdir(parent) else ():
            if name.startswith(start):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
