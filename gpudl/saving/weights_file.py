"""The weights alone, in a file named like Keras's (`.weights.h5`): gpudl's safe content, a zip of
.npy arrays (np.savez) in get_weights order with the weights' names, read with allow_pickle=False."""

import json
import os
import zipfile

import numpy as np

from gpudl.saving.atomic import write_atomically

WEIGHTS_SUFFIX = ".weights.h5"


def save_weights(model, filepath, overwrite=True):
    """Write the model's weights (get_weights order) to `filepath`, which must end in
    ".weights.h5" as in Keras. The content is gpudl's safe format: a zip of .npy arrays
    (np.savez), read back with allow_pickle=False."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"The filename must end in `{WEIGHTS_SUFFIX}`. Received: filepath={path}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    names = np.frombuffer(json.dumps([p.name for p in model.weights]).encode("utf-8"), dtype=np.uint8)
    write_atomically(path, lambda f: np.savez(f, names=names, **arrays))


def load_weights(model, filepath, skip_mismatch=False):
    """Read weights written by save_weights into `model`; every count and shape is checked
    (naming the weight and both shapes) before any weight changes."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"load_weights reads files written by save_weights, ending in `{WEIGHTS_SUFFIX}`. "
                         f"Received: filepath={path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            count = sum(1 for name in data.files if name.startswith("weight_"))
            weights = [data[f"weight_{i}"] for i in range(count)]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot load weights from {path!r}: not a gpudl weights file "
                         f"(truncated, or written by Keras's HDF5 writer?): {error}") from None
    params = model.weights
    if len(weights) != len(params):
        raise ValueError(f"{path!r} holds {len(weights)} weights but model '{model.name}' has {len(params)}.")
    if skip_mismatch:
        keep = [w if w.shape == p.shape else model.get_weights()[i] for i, (w, p) in enumerate(zip(weights, params))]
        weights = keep
    model.set_weights(weights)
