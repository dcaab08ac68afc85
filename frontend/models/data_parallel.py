"""The trainer's side of a data-parallel run (gpudl.distribution.DataParallel): what happens at
the few fixed points where the processes talk. Without an active distribution every function
here is the identity or a no-op, so one process runs exactly as before.

    fit begins         start_in_step: seeds, weights, non-trainable weights and optimizer state
                       are broadcast from rank 0
    each step          reduce_gradients: grads *= rows / global rows, then one SUM all-reduce of
                       the flat gradient arena (the weights of rank r's rows in the global mean)
    logs are read      reduced_logs: loss sum, rows seen and every metric's state are summed over
                       the processes (at each batch end when a callback has a batch hook, else at
                       each epoch's end), so every process's callbacks see the global values
    each batch end     stop_training is OR-ed over the processes (when a callback has a batch hook)
    each epoch end     stop_training is OR-ed over the processes
    predict            each process predicts its contiguous part; the parts are gathered in order
"""

import numpy as np

from gpudl import collectives
from gpudl.backend import get_backend


ROW_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")  # L = sum_i w_i l_i / rows: weighted by rows exactly


def weights_of(model):
    """Every weight array a run must agree on: the parameter arena (one buffer), then the
    non-trainable weights (moving statistics) one by one."""
    arrays = [model.arena.params]
    arrays += [p.value for layer in model._leaves() for p in layer.weights if not p.trainable]
    return arrays


def start_in_step(model):
    """Make every process start from rank 0's model: its seed (shuffles), each random layer's
    seed (dropout masks, noise), weights, non-trainable weights and optimizer state."""
    if not collectives.active():
        return
    reduction = getattr(model.compiled_loss, "reduction", "sum_over_batch_size")
    if reduction not in ROW_MEAN_REDUCTIONS:  # refused on every process alike, before any collective
        raise ValueError(f"Model '{model.name}': under gpudl.distribution.DataParallel the loss must be a mean "
                         f"over the batch's rows, reduction in {ROW_MEAN_REDUCTIONS} (each process's gradient is "
                         f"weighted by its rows); received the loss {model.compiled_loss.name!r} with "
                         f"reduction={reduction!r}.")
    model.seed = collectives.broadcast_int(model.seed)
    for layer in model._leaves():
        for attribute in ("base_seed", "noise_seed"):
            if hasattr(layer, attribute):
                setattr(layer, attribute, collectives.broadcast_int(getattr(layer, attribute)))
    for array in weights_of(model):
        collectives.broadcast(array)
    optimizer = model.optimizer
    for name in sorted(optimizer.slots):
        collectives.broadcast(optimizer.slots[name])
    collectives.broadcast(optimizer.step_counter)


def reduce_gradients(arena):
    """grads <- sum over processes of grads * rows / global rows (the current Shard), in place:
    the gradient of the global batch's mean loss, penalties included once (their weights sum
    to one). A step outside fit's sharded batches (train_on_batch) weighs each process by its
    own rows over all of them."""
    if not collectives.active():
        return
    shard = collectives.shard() or own_shard(None)
    if shard.rows != shard.global_rows:
        arena.grads *= arena.grads.dtype.type(shard.rows / shard.global_rows)
    collectives.all_reduce(arena.grads)


def own_batch(rows):
    """Set the Shard of a batch of `rows` rows that this process brought itself (train_on_batch):
    the global batch is every process's rows, in rank order."""
    if collectives.active():
        collectives.set_shard(own_shard(rows))


def end_of_run():
    """fit or train_on_batch is over: no batch is current any more."""
    collectives.set_shard(None)


def local_batch_size(batch_size):
    """predict's batches on each process: ceil(global batch size / processes) rows."""
    return -(-batch_size // collectives.world_size())


def own_shard(rows):
    """The Shard of a batch that each process brought itself (`rows` rows; None: the batch of
    the current step is unknown, counted as one row each, an equal weight)."""
    rows = 1 if rows is None else int(rows)
    counts = collectives.all_gather_rows(np.array([rows], dtype=np.int64), [1] * collectives.world_size())
    return collectives.Shard(int(counts[:collectives.rank()].sum()), rows, int(counts.sum()))


def metric_states(metrics):
    """The state arrays of `metrics` (Keras's metric variables), in a fixed order."""
    return [variable for metric in metrics for variable in metric.variables]


def reduced_logs(model, loss_sum, seen):
    """(loss sum, rows seen, a function giving the metric results) summed over the processes.
    Every metric's state is reduced into a copy, its result taken on the copy, and the state put
    back, so the metrics keep accumulating this process's rows."""
    if not collectives.active():
        return loss_sum, seen, None
    xp = get_backend().xp
    totals = collectives.all_reduce(xp.stack([xp.asarray(loss_sum, dtype=np.float64),
                                              xp.asarray(float(seen), dtype=np.float64)]))
    variables = metric_states(model.metrics or [])
    own = [variable.value for variable in variables]
    reduced = [collectives.all_reduce(value.copy()) for value in own]

    def results():
        for variable, value in zip(variables, reduced):
            variable.value = value
        try:
            return {m.name: m.result() for m in model.metrics}
        finally:
            for variable, value in zip(variables, own):
                variable.value = value
    return totals[0], int(round(float(get_backend().to_numpy(totals[1])))), results


def batch_hooks(callback_list, kind):
    """Whether some callback of `callback_list` has a batch-end hook of `kind` ("train" or "test"),
    so the batch logs are reduced (and stop_training OR-ed) at every batch end, on every process
    alike: the progress bar and other callbacks that read the logs only now and then read them at
    moments that differ between processes. Without a distribution: False (nothing to reduce)."""
    if not collectives.active():
        return False
    from gpudl.frontend.callbacks.callback import overrides

    hooks = ("on_train_batch_end", "on_batch_end") if kind == "train" else ("on_test_batch_end",)
    return any(overrides(callback, *hooks) for callback in callback_list.callbacks)


def any_process(flag):
    """True when `flag` is true on some process (stop_training decided anywhere stops everywhere)."""
    if not collectives.active():
        return bool(flag)
    return bool(collectives.all_reduce(np.array([int(bool(flag))], dtype=np.int64), op="max")[0])


def predict_part(length):
    """This process's contiguous [start, stop) of `length` samples to predict."""
    bounds = collectives.split(length, collectives.world_size())
    rank = collectives.rank()
    return bounds[rank], bounds[rank + 1]


def gathered_predictions(outputs, length):
    """Every process's predictions of its part, in order: the predictions of all `length` samples."""
    if not collectives.active():
        return outputs
    bounds = collectives.split(length, collectives.world_size())
    return collectives.all_gather_rows(np.ascontiguousarray(outputs), list(np.diff(bounds)))
