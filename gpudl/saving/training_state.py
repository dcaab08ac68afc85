"""A model's training state: what, besides its weights, a run needs to continue exactly.

That is the model seed, the epochs done, every random layer's training-call counter (dropout
masks and noise are pure functions of the seed, the layer and that counter), and the optimizer's
step, learning rate and slots. `save_model`, `load_model`, ModelCheckpoint and BackupAndRestore
all go through this module; nothing else decides what the state is.
"""

import warnings

from gpudl.backend import get_backend
from gpudl.saving import limits


def random_layers(model):
    """{index among the model's layers: layer} of the layers that draw fresh random numbers on
    each training call (Dropout, GaussianNoise, GaussianDropout, AlphaDropout, a user's layer
    with a `calls` counter). Indices, not names, key them: a rebuilt model's names may differ."""
    return {index: layer for index, layer in enumerate(model._leaves()) if hasattr(layer, "calls")}


def capture(model):
    """(state, arrays): the JSON-able counters and the optimizer's slot arrays (host copies)."""
    state = {"seed": model.seed, "epochs_done": model.epochs_done,
             "dropout_calls": {str(index): int(layer.calls) for index, layer in random_layers(model).items()}}
    arrays = {}
    if model.compiled:
        optimizer = model.optimizer
        state["iterations"] = int(optimizer.iterations)
        for name in optimizer.slot_names if model.built and optimizer.slots else ():
            arrays[name] = get_backend().to_numpy(optimizer.slots[name])
    return state, arrays


def restore(model, state, arrays):
    """Put `capture`'s counters and slots back into `model` (built, and compiled when the state
    has an optimizer step). Everything is checked before anything is written: the counters are
    integers in [0, 2**62), every random layer named exists, and (for a built model whose
    optimizer has slots) every slot is present with exactly the slot's dtype and shape, and no
    other is given. A ValueError says what was wrong; the model is then unchanged."""
    import numpy as np

    epochs_done = limits.counter(state.get("epochs_done"), "epochs_done")
    layers = random_layers(model)
    calls = state.get("dropout_calls")
    if not isinstance(calls, dict):
        raise ValueError(f"dropout_calls is {calls!r}; expected a mapping of layer index to call count")
    counters = {}
    for index, count in calls.items():
        position = int(index) if isinstance(index, str) and index.isdigit() else index
        if position not in layers:
            raise ValueError(f"dropout_calls names layer {index!r}; the model's random layers are at "
                             f"{sorted(layers)}")
        counters[position] = limits.counter(count, f"dropout_calls[{index!r}]")
    resume_optimizer = "iterations" in state and model.compiled
    if resume_optimizer:
        iterations = limits.counter(state["iterations"], "iterations")
        optimizer = model.optimizer
        names = tuple(optimizer.slot_names) if model.built else ()
        if names and not optimizer.slots:
            optimizer.build(model.arena)
        given = {name for name, array in arrays.items() if array is not None}
        if given != set(names):
            missing, extra = sorted(set(names) - given), sorted(given - set(names))
            raise ValueError(f"{type(optimizer).__name__} needs the slots {list(names)}; "
                             + (f"missing {missing}" if missing else "") + ("; " if missing and extra else "")
                             + (f"unexpected {extra}" if extra else ""))
        for name in names:
            saved, slot = arrays[name], optimizer.slots[name]
            if saved.dtype != np.dtype(slot.dtype) or tuple(saved.shape) != tuple(slot.shape):
                raise ValueError(f"Optimizer slot {name!r} has shape {tuple(saved.shape)} and dtype {saved.dtype}; "
                                 f"the model needs shape {tuple(slot.shape)} and dtype {np.dtype(slot.dtype)}.")
    model.epochs_done = epochs_done
    for position, count in counters.items():
        layers[position].calls = count
    if not resume_optimizer:
        return
    for name in names:
        optimizer.slots[name][...] = get_backend().asarray(arrays[name])
    optimizer.iterations = iterations


def copy(model, saved):
    """Make `model` continue where `saved` (the same architecture, e.g. loaded from a backup)
    stopped: weights, the numeric learning rate, and the training state. Warns when the seeds
    differ: the resumed epochs would then shuffle and drop out differently."""
    if saved.seed != model.seed:
        warnings.warn(f"BackupAndRestore: the backup was made by a model with seed={saved.seed}, this model has "
                      f"seed={model.seed}; the resumed epochs will shuffle (and drop out) differently from the "
                      f"interrupted run. Fix the seed (Sequential(seed=...) or gpudl.utils.set_random_seed) for "
                      f"an exact resume.", stacklevel=4)
    model.set_weights(saved.get_weights())
    state, arrays = capture(saved)
    if not (model.compiled and saved.compiled):
        state.pop("iterations", None)
    elif not callable(saved.optimizer._learning_rate) and not callable(model.optimizer._learning_rate):
        model.optimizer.learning_rate = float(saved.optimizer.learning_rate)
    restore(model, state, arrays)
