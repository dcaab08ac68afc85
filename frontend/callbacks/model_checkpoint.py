"""ModelCheckpoint callback."""

import math
import os

from gpudl import collectives

from gpudl.frontend.callbacks.callback import pythonify_logs
from gpudl.frontend.callbacks.monitor_callback import BatchCounter, MonitorCallback, check_save_freq
from gpudl.frontend.callbacks.progbar import _message


class ModelCheckpoint(MonitorCallback):
    """Save the model (or its weights) after every epoch, every `save_freq` batches, or only
    when `monitor` improves.

    `filepath` may hold "{epoch:02d}" (1-based) and log keys such as "{val_loss:.2f}"; with
    save_freq batches, "{batch}" (1-based) too. A `.keras` path writes a Keras 3 archive,
    another path gpudl's `.npz` (which also resumes training exactly); with
    save_weights_only the path must end in ".weights.h5" (Keras's rule). Every save is atomic
    (gpudl.saving.write_atomically: a temporary file renamed over the target), so a crash leaves
    the previous file or the new one, whole; the temporaries of a killed save are removed by the
    next save into the same directory.

    Args:
        filepath: where to save (a format string).
        monitor: log key for save_best_only. Default "val_loss".
        verbose: 1 prints each save.
        save_best_only: save only when `monitor` improves; if it is missing from the logs,
            warn and save anyway (Keras).
        save_weights_only: model.save_weights instead of model.save.
        mode: "auto", "min" or "max".
        save_freq: "epoch" or a number of batches.
        initial_value_threshold: the value to beat at first (save_best_only).

    With BackupAndRestore in the same fit, the best value so far is kept in the backup and
    restored on resume, so a resumed run never overwrites the best model with a worse one
    (Keras keeps it in memory only: a resumed Keras run saves at its first epoch whatever it is).
    """

    _reads_batch_logs_lazily = True  # reads the batch logs only on the batches it saves at

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        self.save_freq = check_save_freq(save_freq, "ModelCheckpoint")
        self._batches = None if save_freq == "epoch" else BatchCounter(save_freq)
        self._current_epoch = 0
        if save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided "
                             "must end in `.weights.h5` (Keras weights format). Received: "
                             f"filepath={self.filepath}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._batches is not None and self._batches.due(batch):
            self._save_model(self._current_epoch, batch, pythonify_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                _message(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            self._warn_missing(f"Can save best model only with {self.monitor} available.")
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _message(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                         f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _message(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if collectives.is_rank_zero():  # data parallel: rank 0 writes, the others wait for the file
            self._write(epoch, filepath)
        collectives.barrier()

    def _write(self, epoch, filepath):
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an "
                          f"existing directory: {filepath}")
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            _message(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def resume_state(self):
        """What a resumed fit needs, for BackupAndRestore's backup (taken after this callback's
        epoch end): the best value so far; a non-finite one (a NaN loss) is kept as None."""
        finite = self.best is not None and math.isfinite(self.best)
        return {"monitor": self.monitor, "filepath": self.filepath, "best": float(self.best) if finite else None}

    def restore_resume_state(self, state, where):
        """Take `best` back from a resume_state read from a backup (`where` names it), if it was
        this checkpoint's (same monitor and filepath)."""
        if state.get("monitor") != self.monitor or state.get("filepath") != self.filepath:
            return
        best = state.get("best")
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))
                                 or not math.isfinite(best)):
            raise ValueError(f"{where}: the best value kept for ModelCheckpoint({self.filepath!r}) must be a "
                             f"finite number or null; found {best!r}.")
        self.best = best

    def _file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as error:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}') from None
