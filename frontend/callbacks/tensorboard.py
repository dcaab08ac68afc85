"""TensorBoard callback (event files through tensorboardX)."""

import os
import time

import numpy as np

from gpudl.errors import check_count, invalid_value
from gpudl.frontend.callbacks.callback import Callback, learning_rate_value, pythonify_logs


class TensorBoard(Callback):
    """Write TensorBoard event files (through tensorboardX: pip install "gpudl[tensorboard]").

    As Keras: per epoch, the train logs (and the learning rate) go to `log_dir/train` and
    the val_* logs, without the prefix, to `log_dir/validation`, as scalars tagged
    `epoch_loss`, `epoch_accuracy`, ... at step = epoch; each validation also writes
    `evaluation_<name>_vs_iterations` at the optimizer's step. With update_freq="batch" or N,
    the training batch logs are written as `batch_<name>` every N batches (step = batches
    seen in this fit, from 1). histogram_freq=N writes a histogram of every weight every N
    epochs (`<layer>/<weight>/histogram`).

    Args:
        log_dir: root directory of the event files.
        histogram_freq: epochs between weight histograms (0: none).
        write_graph: accepted for Keras scripts; gpudl has no computation graph to write.
        write_steps_per_second: also write `epoch_steps_per_second`.
        update_freq: "epoch", "batch" or a number of batches.
        write_images, profile_batch, embeddings_freq, embeddings_metadata: Keras's; gpudl
            supports only their defaults (no images, profiler or embedding layers).
    """

    _reads_batch_logs_lazily = True  # reads the batch logs only on the batches it writes

    _rank_zero_only = True  # writes files: rank 0 alone in a data-parallel run

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        try:
            import tensorboardX
        except ImportError as error:
            raise ImportError('TensorBoard needs tensorboardX: pip install "gpudl[tensorboard]"') from error
        self._summary_writer = tensorboardX.SummaryWriter
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, (int, np.integer))
                                       or update_freq < 1):
            raise invalid_value("update_freq", "'epoch', 'batch' or a positive integer", update_freq, "TensorBoard")
        histogram_freq = check_count("histogram_freq", histogram_freq, "TensorBoard")
        for argument, value, supported in (("write_images", write_images, False), ("profile_batch", profile_batch, 0),
                                           ("embeddings_freq", embeddings_freq, 0),
                                           ("embeddings_metadata", embeddings_metadata, None)):
            if value != supported:
                raise invalid_value(argument, f"{supported!r} (gpudl's TensorBoard writes scalars and weight "
                                    f"histograms only)", value, "TensorBoard")
        self.log_dir, self.histogram_freq, self.write_graph = os.fspath(log_dir), int(histogram_freq), write_graph
        self.write_steps_per_second, self.update_freq = write_steps_per_second, update_freq
        self._writers = {}
        self._global_train_batch, self._global_test_batch = 0, 0

    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = self._summary_writer(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        writer = self._writer("train")
        for name, value in pythonify_logs(logs).items():
            writer.add_scalar(f"batch_{name}", value, global_step=self._global_train_batch)

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "iterations"):
            return
        writer, step = self._writer("validation"), optimizer.iterations
        for name, value in (logs or {}).items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", value, global_step=step)

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start = time.time()
            self._epoch_start_iterations = self.model.optimizer.iterations

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if logs and getattr(self.model, "optimizer", None) is not None:
            train["learning_rate"] = learning_rate_value(self.model.optimizer)
        if logs and self.write_steps_per_second:
            steps = self.model.optimizer.iterations - self._epoch_start_iterations
            train["steps_per_second"] = steps / (time.time() - self._epoch_start)
        for which, scalars in (("train", train), ("validation", validation)):
            if scalars:
                writer = self._writer(which)
                for name, value in scalars.items():
                    writer.add_scalar(f"epoch_{name}", value, global_step=epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch):
        from gpudl.backend import get_backend

        writer = self._writer("train")
        for layer in self.model._leaves():
            for weight in layer.weights:
                path = getattr(weight, "path", f"{layer.name}/{weight.name}").replace(":", "_")
                writer.add_histogram(f"{path}/histogram", get_backend().to_numpy(weight.value), global_step=epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
