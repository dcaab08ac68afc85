"""TerminateOnNaN callback."""

import numpy as np

from gpudl.frontend.callbacks.callback import Callback
from gpudl.frontend.callbacks.progbar import _message


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or inf (with raise_error=True, raise instead).
    It reads the loss every batch (a device sync per step)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   f"Terminating training immediately.")
            _message(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
