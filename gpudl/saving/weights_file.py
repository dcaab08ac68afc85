"""The weights alone, in Keras 3's `.weights.h5` file: the HDF5 layout of Keras's
keras/src/saving/saving_lib.py (save_weights_only / load_weights_only), the same one that a
`.keras` archive holds as model.weights.h5, written and read by keras_archive's helpers:
    vars                      the model's own variables (none)
    layers/<group>/vars/<i>   a layer's weights in get_weights order; <group> is the snake_case
                              Keras class name, "_1", "_2", ... for repeats (a custom layer: its
                              own class name); a nested Sequential's layers go below its group
    optimizer/vars/<i>        a compiled model's optimizer state, as Keras writes it (Keras's
                              load_weights reads it; gpudl's reads the layers only)
Keras reads what gpudl writes and gpudl reads what Keras writes. Reading follows no links and
no external or virtual datasets, and checks every layer's count, shape and dtype kind (and that
the file has no layer the model lacks) before any weight changes.

Files gpudl wrote before (a zip of .npy arrays, np.savez) are still read, with a
DeprecationWarning; save them again to get the Keras file.
"""

import io
import json
import os
import warnings
import zipfile

import numpy as np

from gpudl.saving import keras_archive
from gpudl.saving.atomic import write_atomically

WEIGHTS_SUFFIX = ".weights.h5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
H5PY_NEEDED = "Keras weights files (.weights.h5) are"


def save_weights(model, filepath, overwrite=True):
    """Write the model's weights to `filepath` in Keras 3's `.weights.h5` layout, atomically; the
    name must end in ".weights.h5" as in Keras. A compiled model's optimizer state is written too
    when Keras has its optimizer (as Keras's save_weights does)."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"The filename must end in `{WEIGHTS_SUFFIX}`. Received: filepath={path}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    h5py = keras_archive._h5py(H5PY_NEEDED)
    include_optimizer = False
    if model.compiled:
        problems = []
        keras_archive._optimizer_to_keras(model.optimizer, problems)
        include_optimizer = not problems
    content = io.BytesIO()
    with h5py.File(content, "w") as h5:
        keras_archive._write_variables(h5, model, include_optimizer=include_optimizer)
    write_atomically(path, lambda f: f.write(content.getvalue()))


def load_weights(model, filepath, skip_mismatch=False):
    """Read a `.weights.h5` file (Keras's or gpudl's) into `model`; every layer's count, shape
    and dtype is checked, naming the layer's group, before any weight changes. skip_mismatch:
    a layer whose weights differ in number or shape keeps its own, with a warning (Keras's rule)."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"load_weights reads files written by save_weights, ending in `{WEIGHTS_SUFFIX}`. "
                         f"Received: filepath={path}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as error:
        raise ValueError(f"Cannot load weights from {path!r}: {error}") from None
    if head.startswith(ZIP_SIGNATURE):
        weights = _read_legacy_zip(model, path, skip_mismatch)
    else:
        weights = _read_h5(model, path, skip_mismatch)
    model.set_weights(weights)


def _read_h5(model, path, skip_mismatch):
    """Every weight of `model` from the HDF5 file, all checked, in model.weights order."""
    h5py = keras_archive._h5py(H5PY_NEEDED)
    if not model.built:
        raise ValueError(f"Cannot load weights from {path!r} into model '{model.name}': it is not built yet "
                         f"(give it an Input or call build(input_shape) first, as in Keras).")
    skipped = [] if skip_mismatch else None
    try:
        with h5py.File(path, "r") as h5:
            plan = keras_archive._plan_of(model)
            _refuse_unknown_groups(h5, plan, path)
            weights = keras_archive._read_layer_variables(h5, plan, model, skipped=skipped)
    except keras_archive._Refusal as error:
        raise ValueError(f"Cannot load weights from {path!r} into model '{model.name}': "
                         f"{str(error).replace(keras_archive.WEIGHTS + ': ', '')}") from None
    except (OSError, KeyError, RuntimeError) as error:  # h5py's errors for a corrupted or non-HDF5 file
        raise ValueError(f"Cannot load weights from {path!r}: not a readable HDF5 weights file "
                         f"(truncated or corrupted?): {error}") from None
    for group in skipped or []:
        warnings.warn(f"Skipping loading weights for {group} of model '{model.name}' (skip_mismatch=True): "
                      f"its variables differ in number or shape from the file's.", stacklevel=3)
    return weights


def _refuse_unknown_groups(h5, plan, path, prefix=""):
    """A layer group in the file that the model does not have means another architecture: refuse
    it by name rather than load part of a file."""
    used, expected, nested = {}, set(), []
    for planned, class_name in plan.layers:
        name = keras_archive._group_name(class_name, used)
        expected.add(name)
        if isinstance(planned, keras_archive._Plan):
            nested.append((planned, f"{prefix}layers/{name}/"))
    group = keras_archive._h5_group(h5, f"{prefix}layers")
    found = set(group.keys()) if group is not None else set()
    extra = sorted(found - expected)
    if extra:
        raise keras_archive._Refusal(f"the file has layers {', '.join(prefix + 'layers/' + n for n in extra)} that "
                                     f"the model lacks (it has {', '.join(sorted(expected)) or 'none'})")
    for planned, inner in nested:
        _refuse_unknown_groups(h5, planned, path, inner)


def _read_legacy_zip(model, path, skip_mismatch):
    """gpudl's former content: a zip of .npy arrays weight_0, weight_1, ... (np.savez), read with
    allow_pickle=False."""
    warnings.warn(f"{path!r} is in gpudl's former weights format (a zip of .npy arrays), which Keras cannot "
                  f"read; it still loads, but save it again with save_weights to get Keras's HDF5 file.",
                  DeprecationWarning, stacklevel=4)
    try:
        with np.load(path, allow_pickle=False) as data:
            count = sum(1 for name in data.files if name.startswith("weight_"))
            weights = [data[f"weight_{i}"] for i in range(count)]
            names = json.loads(bytes(data["names"]).decode("utf-8")) if "names" in data.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot load weights from {path!r}: not a readable gpudl weights file "
                         f"(truncated or corrupted?): {error}") from None
    params = model.weights
    if len(weights) != len(params):
        raise ValueError(f"{path!r} holds {len(weights)} weights but model '{model.name}' has {len(params)}.")
    if names is not None and len(names) != len(weights):
        raise ValueError(f"{path!r} names {len(names)} weights but holds {len(weights)}.")
    if skip_mismatch:
        weights = [w if w.shape == p.shape else p.numpy() for w, p in zip(weights, params)]
    return weights
