"""LearningCurves callback: a PNG of the learning curves, redrawn every epoch."""

import csv
import math
import os

from gpudl.frontend.callbacks.callback import Callback


class LearningCurves(Callback):
    """Redraw a PNG of train and dev loss and metrics after every epoch, for someone
    babysitting a run ("panda"). With `csv_log` (a CSVLogger file), the curves of earlier
    runs that the file holds are drawn too, so a resumed run shows its whole history.
    Needs matplotlib (pip install gpudl[plot])."""

    _rank_zero_only = True  # writes files: rank 0 alone in a data-parallel run

    def __init__(self, path, csv_log=None):
        super().__init__()
        self.path, self.csv_log = str(path), csv_log
        try:
            import matplotlib
        except ImportError as error:
            raise ImportError("LearningCurves needs matplotlib: pip install 'gpudl[plot]'") from error
        matplotlib.use("Agg", force=False)

    def on_train_begin(self, logs=None):
        self.epochs, self.history = [], {}
        if self.csv_log is not None and os.path.exists(self.csv_log):
            with open(self.csv_log, newline="") as f:
                for row in csv.DictReader(f):
                    values = {k: math.nan if v in ("NA", "", None) else float(v) for k, v in row.items()}
                    self._append(int(values.pop("epoch")), values)

    def _append(self, epoch, logs):
        while self.epochs and self.epochs[-1] > epoch:  # rows of epochs that are being redone
            self.epochs.pop()
            for values in self.history.values():
                values.pop()
        self.epochs.append(epoch + 1)
        for key in self.history.keys() | logs.keys():  # every curve has a value (maybe NaN) per epoch
            self.history.setdefault(key, [math.nan] * (len(self.epochs) - 1)).append(logs.get(key, math.nan))

    def on_epoch_end(self, epoch, logs=None):
        import matplotlib.pyplot as plt

        self._append(epoch, logs or {})
        names = [k for k in self.history if not k.startswith("val_") and k != "learning_rate"]
        figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
        for axis, name in zip(axes[0], names):
            for key, label in ((name, "train"), ("val_" + name, "dev")):
                if key in self.history:
                    axis.plot(self.epochs, self.history[key], marker="o", label=label)
            axis.set_xlabel("epoch")
            axis.set_title(name)
            axis.legend()
        figure.tight_layout()
        figure.savefig(self.path)
        plt.close(figure)
