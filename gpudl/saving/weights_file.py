"""The weights alone, in Keras 3's `.weights.h5` file: the HDF5 layout of Keras's
keras/src/saving/saving_lib.py (save_weights_only / load_weights_only), the same one that a
`.keras` archive holds as model.weights.h5, written and read by keras_archive's helpers:
    vars                      the model's own variables (none)
    layers/<group>/vars/<i>   a layer's weights in get_weights order; <group> is the snake_case
                              Keras class name, "_1", "_2", ... for repeats (a custom layer: its
                              own class name); a nested Sequential's layers go below its group
    optimizer/vars/<i>        a compiled model's optimizer state, as Keras writes it; load_weights
                              restores it into a compiled model whose optimizer matches (Keras's
                              rule), and skips it with a warning otherwise
Keras reads what gpudl writes and gpudl reads what Keras writes. Reading follows no links and
no external or virtual datasets, and checks every layer's count, shape and dtype kind (and that
the file has no layer the model lacks) before any weight changes.

Files gpudl wrote before (a zip of .npy arrays, np.savez) are still read, with a
DeprecationWarning; save them again to get the Keras file.
"""

import io
import os
import re
import warnings
import zipfile
import zlib

import numpy as np

from gpudl.saving import keras_archive, limits
from gpudl.saving.atomic import write_atomically

WEIGHTS_SUFFIX = ".weights.h5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
H5PY_NEEDED = "Keras weights files (.weights.h5) are"
LEGACY_MEMBER = re.compile(r"names\.npy|weight_(0|[1-9][0-9]{0,8})\.npy")


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
    optimizer_state = None
    if head.startswith(ZIP_SIGNATURE):
        weights = _read_legacy_zip(model, path, skip_mismatch)
    else:
        weights, optimizer_state = _read_h5(model, path, skip_mismatch)
    model.set_weights(weights)
    if optimizer_state is not None:
        keras_archive._assign_optimizer_state(model, *optimizer_state)


def _read_h5(model, path, skip_mismatch):
    """(every weight of `model` from the HDF5 file, all checked, in model.weights order; the
    optimizer state (iterations, slots) or None)."""
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
            optimizer_state = _read_optimizer_state(h5, plan, model)
    except ValueError as error:  # keras_archive's refusals, a counter out of range
        raise ValueError(f"Cannot load weights from {path!r} into model '{model.name}': "
                         f"{str(error).replace(keras_archive.WEIGHTS + ': ', '')}") from None
    except (OSError, KeyError, RuntimeError) as error:  # h5py's errors for a corrupted or non-HDF5 file
        raise ValueError(f"Cannot load weights from {path!r}: not a readable HDF5 weights file "
                         f"(truncated or corrupted?): {error}") from None
    for group in skipped or []:
        warnings.warn(f"Skipping loading weights for {group} of model '{model.name}' (skip_mismatch=True): "
                      f"its variables differ in number or shape from the file's.", stacklevel=3)
    return weights, optimizer_state


def _read_optimizer_state(h5, plan, model):
    """Keras's rule: a compiled model whose optimizer is built takes the file's optimizer variables
    when they match it (count, shapes: the same optimizer on the same weights); otherwise they are
    skipped with a warning, as Keras does. None when there is nothing to load."""
    if not model.compiled or keras_archive._h5_group(h5, "optimizer/vars") is None:
        return None
    optimizer, problems = model.optimizer, []
    keras_optimizer = keras_archive._optimizer_to_keras(optimizer, problems)
    slots = keras_archive._slot_order(optimizer, keras_archive._optimizer_parameters(model)) if not problems else []
    reason = None
    if problems:
        reason = "; ".join(problems)
    elif optimizer.slot_names and not optimizer.slots:
        reason = "its optimizer is not built yet"
    else:
        plan.compile = {"schedule": isinstance(keras_optimizer["config"]["learning_rate"], dict)}
        try:
            iterations, values = keras_archive._read_optimizer_variables(h5, plan, model)
        except keras_archive._Mismatch as error:
            reason = str(error).replace(keras_archive.WEIGHTS + ": ", "")
        else:
            if values is None and slots:
                reason = "the file's optimizer was never built (it holds no slots)"
            else:
                limits.counter(iterations, "optimizer/vars/0 (iterations)")
                for i, array in enumerate(values or []):
                    if not np.isfinite(array).all():
                        raise keras_archive._Refusal(f"optimizer/vars holds a non-finite value in slot {i} "
                                                     f"({slots[i][1]} of '{slots[i][0].path}')")
                return iterations, values
    warnings.warn(f"Skipping variable loading for optimizer '{optimizer.name}' of model '{model.name}': {reason}.",
                  stacklevel=4)
    return None


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
    """gpudl's former content: a zip of .npy arrays weight_0, weight_1, ... and names (np.savez),
    checked from the zip's directory and each .npy header before anything is inflated: no bomb,
    one member per weight of the model, plain numeric arrays of the weights' shapes, the names
    the model's."""
    warnings.warn(f"{path!r} is in gpudl's former weights format (a zip of .npy arrays), which Keras cannot "
                  f"read; it still loads, but save it again with save_weights to get Keras's HDF5 file.",
                  DeprecationWarning, stacklevel=4)
    params = model.weights
    try:
        with zipfile.ZipFile(path) as archive:
            members = _legacy_members(archive)
            found = sorted(name for name in members if name.startswith("weight_"))
            if found != sorted(f"weight_{i}.npy" for i in range(len(found))) or len(found) != len(params):
                raise ValueError(f"it holds {len(found)} weights ({', '.join(found[:5])}"
                                 f"{', ...' if len(found) > 5 else ''}) but model '{model.name}' has {len(params)}")
            if "names.npy" in members:
                names = _legacy_array(archive, members["names.npy"], None, "names")
                names = limits.parse_json(names.tobytes(), "names.npy")
                if names != [p.name for p in params]:
                    raise ValueError(f"its weights are named {names}; model '{model.name}' has "
                                     f"{[p.name for p in params]}")
            weights = []
            for i, p in enumerate(params):
                try:
                    weights.append(_legacy_array(archive, members[f"weight_{i}.npy"], p.shape, f"'{p.path}'"))
                except _LegacyMismatch:
                    if not skip_mismatch:
                        raise
                    weights.append(p.numpy())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as error:
        raise ValueError(f"Cannot load weights from {path!r}: {error}") from None
    return weights


class _LegacyMismatch(ValueError):
    """A weight's shape differs from the model's (skip_mismatch keeps the model's)."""


def _legacy_members(archive):
    """{member name: ZipInfo} from the zip's directory alone: few, plain, no bombs."""
    infos = archive.infolist()
    if len(infos) > limits.MAX_MEMBERS:
        raise ValueError(f"it has {len(infos)} members; at most {limits.MAX_MEMBERS} are accepted")
    members = {}
    for info in infos:
        if info.filename in members or not LEGACY_MEMBER.fullmatch(info.filename):
            raise ValueError(f"member {info.filename!r} is not part of a gpudl weights file (expected names.npy "
                             f"and weight_<i>.npy, once each)")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"member {info.filename!r} is encrypted or compressed with method {info.compress_type}")
        if limits.too_expanded(info.file_size, info.compress_size):
            raise ValueError(f"member {info.filename!r} declares {info.file_size} bytes but stores only "
                             f"{info.compress_size}: refusing a possible zip bomb")
        members[info.filename] = info
    return members


def _legacy_array(archive, info, shape, what):
    """The .npy member's array after its header is checked: a plain float/integer dtype, the
    expected `shape` (None: one dimension of at most MAX_JSON_BYTES elements, for names), and a
    byte size equal to what the member holds."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"member {info.filename!r}: .npy format version {version}; expected 1.0 or 2.0")
        declared, fortran_order, dtype = read_header(member, max_header_size=limits.MAX_NPY_HEADER_BYTES)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "fiu":
            raise ValueError(f"member {info.filename!r} ({what}) holds dtype {dtype}; expected plain real numbers")
        declared = tuple(declared)
        if shape is None:
            if len(declared) != 1 or declared[0] > limits.MAX_JSON_BYTES:
                raise ValueError(f"member {info.filename!r} declares shape {declared}")
        elif declared != tuple(shape):
            raise _LegacyMismatch(f"weight {what} has shape {tuple(shape)}; the file's {info.filename} has shape "
                                  f"{declared}")
        if member.tell() + int(np.prod(declared)) * dtype.itemsize != info.file_size:
            raise ValueError(f"member {info.filename!r} declares {declared} {dtype} but holds "
                             f"{info.file_size - member.tell()} bytes of data")
        size = int(np.prod(declared)) * dtype.itemsize
        data = member.read(size + 1)  # the size the directory declares, checked above; zipfile checks the CRC
    if len(data) != size:
        raise ValueError(f"member {info.filename!r} holds {len(data)} bytes of data; its header declares {size}")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(declared[::-1]).T.copy() if fortran_order else array.reshape(declared).copy()
