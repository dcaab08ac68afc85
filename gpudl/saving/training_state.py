"""A model's training state: what, besides its weights, a run needs to continue exactly.

That is the model seed, the epochs done, every random layer's training-call counter (dropout
masks and noise are pure functions of the seed, the layer and that counter), and the optimizer's
step, learning rate and slots. `save_model`, `load_model`, ModelCheckpoint and BackupAndRestore
all go through this module; nothing else decides what the state is.
"""

import warnings

from gpudl.backend import get_backend


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
    has an optimizer step); every slot's shape is checked before any is written."""
    model.epochs_done = int(state["epochs_done"])
    layers = random_layers(model)
    for index, calls in state["dropout_calls"].items():
        layers[int(index)].calls = int(calls)
    if "iterations" not in state or not model.compiled:
        return
    optimizer = model.optimizer
    if model.built and optimizer.slot_names and not optimizer.slots:
        optimizer.build(model.arena)
    for name in optimizer.slot_names if model.built else ():
        saved = arrays.get(name)
        if saved is not None and saved.shape != optimizer.slots[name].shape:
            raise ValueError(f"Optimizer slot {name!r} has shape {saved.shape}; the model needs "
                             f"{optimizer.slots[name].shape}.")
    for name in optimizer.slot_names if model.built else ():
        if arrays.get(name) is not None:
            optimizer.slots[name][...] = get_backend().asarray(arrays[name])
    optimizer.iterations = int(state["iterations"])


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
