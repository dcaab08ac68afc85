"""Panda: babysit one model (the course: when compute is scarce, watch one run and
nudge it day by day). Everything lives in one directory:

    callbacks = gpudl.tuning.panda_callbacks("runs/panda")        # curves, log, checkpoints
    model.fit(x, y, validation_data=(x_dev, y_dev), epochs=20, callbacks=callbacks)
    # ...look at runs/panda/curves.png; the loss flattened, so go on with a smaller rate:
    model = gpudl.tuning.resume("runs/panda", learning_rate=3e-4)
    model.fit(x, y, validation_data=(x_dev, y_dev), epochs=40, initial_epoch=model.epochs_done,
              callbacks=gpudl.tuning.panda_callbacks("runs/panda"))
"""

import os

from gpudl.errors import check_positive
from gpudl.frontend.callbacks import CSVLogger, LearningCurves, ModelCheckpoint, ReduceLROnPlateau
from gpudl.saving import load_model

LAST, BEST, LOG, CURVES = "last.npz", "best.npz", "log.csv", "curves.png"


def panda_callbacks(directory, monitor="val_loss", reduce_lr_patience=5, reduce_lr_factor=0.5):
    """The callbacks of a babysat run: a log (log.csv, appended across resumes), learning
    curves redrawn every epoch over the whole log (curves.png), a checkpoint every epoch
    (last.npz) and of the best epoch by `monitor` (best.npz), and ReduceLROnPlateau (set
    reduce_lr_patience=None to leave the rate to you)."""
    os.makedirs(directory, exist_ok=True)
    log = os.path.join(directory, LOG)
    callbacks = [
        CSVLogger(log, append=True),
        LearningCurves(os.path.join(directory, CURVES), csv_log=log),
        ModelCheckpoint(os.path.join(directory, LAST), save_best_only=False),
        ModelCheckpoint(os.path.join(directory, BEST), monitor=monitor, save_best_only=True),
    ]
    if reduce_lr_patience is not None:
        callbacks.append(ReduceLROnPlateau(monitor=monitor, factor=reduce_lr_factor, patience=reduce_lr_patience,
                                           verbose=1))
    return callbacks


def resume(directory, learning_rate=None, which=LAST):
    """The model of the last (or best, which="best.npz") checkpoint in `directory`, with its
    optimizer state and `epochs_done`; `learning_rate` replaces the saved rate (a float or a
    schedule). Continue with fit(..., initial_epoch=model.epochs_done)."""
    path = os.path.join(directory, which)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint {path!r} to resume from: train with "
                                f"callbacks=panda_callbacks({directory!r}) first.")
    if learning_rate is not None and not callable(learning_rate):
        learning_rate = check_positive("learning_rate", learning_rate, "resume")
    model = load_model(path)
    if learning_rate is not None:
        model.optimizer.learning_rate = learning_rate
    return model
