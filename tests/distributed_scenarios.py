"""Training runs that tests/test_distribution.py runs twice: here under gpudl.distribution.DataParallel
in each of several processes, and in the test process on one process; the results must agree.

    python tests/distributed_scenarios.py OUT_DIR [NAME,NAME...]  (env: KERAS_DISTRIBUTION_* or torchrun's)

With names, only those scenarios run (no backup, no progress bar): the GPU check of perf/RESULTS.md.

Each scenario returns {name: array}; the processes write them to OUT_DIR/rank<r>.npz (no pickle).
"""

import os
import sys

import numpy as np


def data(n, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = rng.integers(0, classes, size=n)
    return x, y


def model_of(layers, optimizer, seed=7):
    import gpudl

    gpudl.utils.set_random_seed(seed)
    model = gpudl.Sequential([gpudl.Input((5,)), *layers], dtype="float64", seed=seed)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def dense_stack(extra=()):
    """Dense(8, tanh, L2), the `extra` layers, Dense(3, softmax). Call it with the extra layers made
    inside the call (lambda), after the seed is set: a noise layer takes its seed when it is made."""
    import gpudl

    if callable(extra):
        gpudl.utils.set_random_seed(11)
        extra = extra()
    return [gpudl.layers.Dense(8, activation="tanh", kernel_regularizer=gpudl.regularizers.L2(1e-3)), *extra,
            gpudl.layers.Dense(3, activation="softmax")]


def fitted(model, x, y, **kwargs):
    history = model.fit(x, y, verbose=0, **kwargs).history
    out = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    out.update({f"history_{key}": np.array(values) for key, values in history.items()})
    return out


def optimizer_run(optimizer):
    def run():
        x, y = data(37)  # batches of 8: the last has 5 rows, 2 on rank 0 and 3 on rank 1
        return fitted(model_of(dense_stack(), optimizer()), x, y, batch_size=8, epochs=3)
    return run


def sgd_momentum():
    import gpudl

    return gpudl.optimizers.SGD(learning_rate=0.1, momentum=0.9)


def rmsprop():
    import gpudl

    return gpudl.optimizers.RMSprop(learning_rate=0.01)


def adam():
    import gpudl

    return gpudl.optimizers.Adam(learning_rate=0.01)


def adam_global_clipnorm():
    import gpudl

    return gpudl.optimizers.Adam(learning_rate=0.05, global_clipnorm=0.1)


def batch_norm():
    import gpudl

    x, y = data(37)
    model = model_of(dense_stack([gpudl.layers.BatchNormalization(momentum=0.9)]), "adam")
    return fitted(model, x, y, batch_size=8, epochs=2)


def dropout_and_noise():
    import gpudl

    x, y = data(37)
    model = model_of(dense_stack(lambda: [gpudl.layers.Dropout(0.3), gpudl.layers.GaussianNoise(0.1),
                                          gpudl.layers.GaussianDropout(0.2)]), "adam")
    return fitted(model, x, y, batch_size=8, epochs=2)


def empty_shards():
    """17 rows in batches of 8: the last batch has one row, which rank 0 does not get."""
    import gpudl

    x, y = data(17)
    model = model_of(dense_stack([gpudl.layers.BatchNormalization(), gpudl.layers.Dropout(0.2)]), "sgd")
    return fitted(model, x, y, batch_size=8, epochs=2)


def sample_and_class_weights():
    """sample_weight, then class_weight: the loss is sum_i w_i l_i / rows (Keras's sum_over_batch_size)."""
    x, y = data(37)
    weights = np.random.default_rng(3).uniform(0.1, 2.0, size=len(x))
    out = fitted(model_of(dense_stack(), "adam"), x, y, batch_size=8, epochs=2, sample_weight=weights)
    model = model_of(dense_stack(), "rmsprop")
    out.update({f"class_{key}": value for key, value in
                fitted(model, x, y, batch_size=8, epochs=2, class_weight={0: 0.5, 1: 2.0, 2: 1.0}).items()})
    return out


def py_dataset_and_generator():
    """A PyDataset (batches of 8, the last of 5, shuffled per epoch) to fit and evaluate, a
    generator to evaluate: each process takes its rows of each batch."""
    import gpudl

    x, y = data(37)

    class Batches(gpudl.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            return x[8 * index:8 * index + 8], y[8 * index:8 * index + 8]

    class LocalRows(gpudl.callbacks.Callback):  # the rows this process got of each batch
        rows = []

        def on_train_batch_begin(self, batch, logs=None):
            shard = gpudl.collectives.shard()
            self.rows.append(-1 if shard is None else shard.rows)

    model = model_of(dense_stack([gpudl.layers.BatchNormalization()]), "adam")
    out = fitted(model, Batches(), None, epochs=2, callbacks=[LocalRows()])
    if gpudl.collectives.active():  # not compared with one process: checked by the test itself
        out["local_rows"] = np.array(LocalRows.rows)
    out["evaluate_dataset"] = np.array(model.evaluate(Batches(), verbose=0))
    out["evaluate_generator"] = np.array(model.evaluate((batch for batch in [(x[:20], y[:20]), (x[20:], y[20:])]),
                                                        steps=2, verbose=0))
    return out


def early_stopping_evaluate_predict():
    import gpudl

    x, y = data(41)
    xv, yv = data(23, seed=1)
    model = model_of(dense_stack(), gpudl.optimizers.Adam(learning_rate=0.02))
    stop = gpudl.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=1e-9)  # stops at epoch 5
    plateau = gpudl.callbacks.ReduceLROnPlateau(monitor="val_accuracy", patience=1, factor=0.5)
    out = fitted(model, x, y, batch_size=16, epochs=40, validation_data=(xv, yv), callbacks=[stop, plateau])
    out["stopped_epoch"] = np.array(stop.stopped_epoch)
    out["evaluate"] = np.array(model.evaluate(xv, yv, batch_size=6, verbose=0))
    out["predict"] = model.predict(xv, batch_size=4, verbose=0)
    out["learning_rate"] = np.array(float(model.optimizer.learning_rate))
    return out


def train_on_batch_and_custom_loop():
    """train_on_batch (each process with its own rows: 5 and 7 of 12), then compute_gradients +
    apply_gradients (6 and 6: a custom loop's gradients are averaged over the processes)."""
    from gpudl import collectives

    x, y = data(12)
    uneven = [0, 5, 12] if collectives.world_size() == 2 else [0, 12]
    mine = slice(uneven[collectives.rank()], uneven[collectives.rank() + 1])
    model = model_of(dense_stack(), "adam")
    out = {"train_on_batch": np.array(model.train_on_batch(x[mine], y[mine]))}
    rows = collectives.split(len(x), collectives.world_size())
    mine = slice(rows[collectives.rank()], rows[collectives.rank() + 1])
    loss, grads = model.compute_gradients(x[mine], y[mine])
    model.optimizer.apply_gradients(zip(grads, model.trainable_weights))
    out.update({f"weight_{i}": w for i, w in enumerate(model.get_weights())})
    return out


def backed_up_fit(out_dir, kill=False):
    """A fit with BackupAndRestore and a CSVLogger into `out_dir`; rank 0 writes the final weights
    to final.npz. With `kill`, rank 1 dies (SIGKILL) after the backup of epoch 2 on torchrun's
    first attempt (tests/distributed_restart.py)."""
    import signal

    import gpudl

    class KillRankOne(gpudl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2 and gpudl.collectives.rank() == 1 and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
                os.kill(os.getpid(), signal.SIGKILL)

    os.makedirs(out_dir, exist_ok=True)
    x, y = data(37)
    model = model_of(dense_stack([gpudl.layers.BatchNormalization(), gpudl.layers.Dropout(0.2)]), "adam")
    model.build((None, 5))
    callbacks = [gpudl.callbacks.BackupAndRestore(os.path.join(out_dir, "backup"))]  # the kill comes after it
    callbacks += [KillRankOne()] if kill else []
    callbacks.append(gpudl.callbacks.CSVLogger(os.path.join(out_dir, "log.csv"), append=True))
    model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=callbacks)
    if gpudl.collectives.is_rank_zero():
        np.savez(os.path.join(out_dir, "final.npz"), *model.get_weights())
    return model


SCENARIOS = {
    "sgd_momentum": optimizer_run(sgd_momentum),
    "rmsprop": optimizer_run(rmsprop),
    "adam": optimizer_run(adam),
    "adam_global_clipnorm": optimizer_run(adam_global_clipnorm),
    "batch_norm": batch_norm,
    "dropout_and_noise": dropout_and_noise,
    "empty_shards": empty_shards,
    "early_stopping_evaluate_predict": early_stopping_evaluate_predict,
    "train_on_batch_and_custom_loop": train_on_batch_and_custom_loop,
    "py_dataset_and_generator": py_dataset_and_generator,
    "sample_and_class_weights": sample_and_class_weights,
}


def main(out_dir, names=None):
    import gpudl

    gpudl.distribution.initialize()
    gpudl.distribution.set_distribution(gpudl.distribution.DataParallel())
    from gpudl import collectives

    results = {}
    for name, scenario in SCENARIOS.items():
        if names and name not in names:
            continue
        results.update({f"{name}/{key}": value for key, value in scenario().items()})
    results["devices"] = np.array(gpudl.distribution.list_devices())
    if not names:
        backed_up_fit(os.path.join(out_dir, "whole"))
        x, y = data(37)  # the progress bar: printed by rank 0 alone
        model_of(dense_stack(), "sgd").fit(x, y, batch_size=8, epochs=1, verbose=1)
    np.savez(os.path.join(out_dir, f"rank{collectives.rank()}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(",") if len(sys.argv) > 2 else None)
