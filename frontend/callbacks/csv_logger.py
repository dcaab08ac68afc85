"""CSVLogger callback."""

import csv
import os

from gpudl.frontend.callbacks.callback import Callback


class CSVLogger(Callback):
    """Write one CSV row per epoch: `epoch`, then the log keys in sorted order. Without
    validation data the header still has a val_* column per key, filled with "NA", so the
    columns stay the same when validation comes later (Keras). append=True continues a file.

    Args:
        filename: the CSV file.
        separator: the column separator.
        append: append to an existing file (its header is kept) instead of overwriting it.
    """

    _rank_zero_only = True  # writes files: rank 0 alone in a data-parallel run

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep, self.filename, self.append = separator, os.fspath(filename), append
        self.writer, self.keys, self.csv_file, self.append_header = None, None, None, True

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{key}" for key in self.keys])
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{key: _csv_value(logs.get(key, "NA")) for key in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    """Keras's cell: a string or number as is, a list as "[a, b]"."""
    if isinstance(value, str) or not hasattr(value, "__iter__") or getattr(value, "ndim", 1) == 0:
        return value
    return f'"[{", ".join(map(str, value))}]"'
