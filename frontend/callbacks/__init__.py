"""Callbacks with Keras 3's hooks, arguments, defaults, order, messages and warnings; one
callback per module, as keras/src/callbacks/.

`fit` builds a `CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
model=model, verbose=..., epochs=..., steps=...)` and calls its hooks in Keras's order;
set `self.model.stop_training = True` from any hook to stop. How batch logs stay on the
device: callback.py.
"""

from gpudl.errors import check_count  # importable here as before it moved to gpudl.errors
from gpudl.frontend.callbacks.backup_and_restore import BackupAndRestore
from gpudl.frontend.callbacks.callback import (HOOKS, Callback, default, learning_rate_value, overrides,
                                               pythonify_logs)
from gpudl.frontend.callbacks.callback_list import CallbackList, History
from gpudl.frontend.callbacks.csv_logger import CSVLogger
from gpudl.frontend.callbacks.early_stopping import EarlyStopping
from gpudl.frontend.callbacks.lambda_callback import LambdaCallback
from gpudl.frontend.callbacks.learning_curves import LearningCurves
from gpudl.frontend.callbacks.learning_rate_scheduler import LearningRateScheduler
from gpudl.frontend.callbacks.model_checkpoint import ModelCheckpoint
from gpudl.frontend.callbacks.monitor_callback import (DECREASING, INCREASING, BatchCounter, MonitorCallback,
                                                       auto_mode, check_save_freq, metric_direction)
from gpudl.frontend.callbacks.progbar import Progbar, ProgbarLogger
from gpudl.frontend.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from gpudl.frontend.callbacks.tensorboard import TensorBoard
from gpudl.frontend.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = ["BackupAndRestore", "BatchCounter", "CSVLogger", "Callback", "CallbackList", "DECREASING", "EarlyStopping",
           "HOOKS", "History", "INCREASING", "LambdaCallback", "LearningCurves", "LearningRateScheduler",
           "ModelCheckpoint", "MonitorCallback", "Progbar", "ProgbarLogger", "ReduceLROnPlateau", "TensorBoard",
           "TerminateOnNaN", "auto_mode", "check_count", "check_save_freq", "default", "learning_rate_value",
           "metric_direction", "overrides", "pythonify_logs"]
