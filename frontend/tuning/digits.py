"""The digits MLP as a search problem: the model of `gpudl demo`, with its learning rate,
Adam's beta_1, depth, widths and batch size as hyperparameters. Used by `gpudl tune`
and perf/tune_digits.py."""

import functools

import numpy as np

from gpudl.frontend.tuning.spaces import Choice, IntUniform, LogUniform, OneMinusLogUniform, SearchSpace

SPACE = SearchSpace({
    "learning_rate": LogUniform(1e-4, 1.0),
    "beta_1": OneMinusLogUniform(0.9, 0.999),
    "layers": IntUniform(1, 3),
    "units_1": IntUniform(16, 256, log=True),
    "units_2": IntUniform(16, 256, log=True, when=("layers", ">=", 2)),
    "units_3": IntUniform(16, 256, log=True, when=("layers", ">=", 3)),
    "batch_size": Choice([32, 64, 128, 256]),
})

# The hand-set recipe of `gpudl demo`, as a point of SPACE.
DEMO = {"learning_rate": 3e-3, "beta_1": 0.9, "layers": 2, "units_1": 128, "units_2": 64, "batch_size": 64}


def load_splits(seed=0):
    """Scikit-learn's 8x8 digits, split 60/20/20 into train/dev/test (stratified, seeded)."""
    from sklearn.datasets import load_digits

    from gpudl.frontend.data import train_dev_test_split

    digits = load_digits()
    return train_dev_test_split(digits.data.astype(np.float32), digits.target, fractions=(0.6, 0.2, 0.2),
                                stratify=True, seed=seed)


def build_mlp(hp, mean, variance, dropout=0.2, l2=1e-4):
    """Normalization (training-set statistics) -> [Dense(he_normal, L2) -> BatchNorm -> ReLU
    -> Dropout] x layers -> Dense(10, softmax), compiled with Adam(learning_rate, beta_1)."""
    import gpudl
    from gpudl.layers import BatchNormalization, Dense, Dropout, Normalization, ReLU

    layers = [gpudl.Input((mean.shape[0],)), Normalization(mean=mean, variance=variance)]
    for depth in range(1, hp["layers"] + 1):
        layers += [Dense(hp[f"units_{depth}"], kernel_initializer="he_normal",
                         kernel_regularizer=gpudl.regularizers.L2(l2)),
                   BatchNormalization(), ReLU(), Dropout(dropout)]
    model = gpudl.Sequential(layers + [Dense(10, activation="softmax")])
    model.compile(optimizer=gpudl.optimizers.Adam(learning_rate=hp["learning_rate"], beta_1=hp["beta_1"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def builder(x_train):
    """build_model(hp) for a search: build_mlp with the training set's input statistics
    (a partial of a module function, so worker processes can unpickle it)."""
    x_train = np.asarray(x_train, np.float64)
    return functools.partial(build_mlp, mean=x_train.mean(axis=0), variance=x_train.var(axis=0))


def search(trials=25, zoom_trials=10, top_k=5, epochs=40, executor="processes", workers=2, directory=None,
           seed=0, verbose=1):
    """The course's recipe on digits: `trials` random trials in SPACE, then a zoom around the
    `top_k` best and `zoom_trials` more. Returns (search, splits)."""
    from gpudl.frontend.tuning.search import RandomSearch

    splits = (x_train, y_train), (x_dev, y_dev), _ = load_splits(seed)
    random_search = RandomSearch(builder(x_train), SPACE, objective="val_accuracy", max_trials=trials, seed=seed,
                                 directory=directory)
    run = dict(validation_data=(x_dev, y_dev), epochs=epochs, executor=executor, workers=workers, verbose=verbose)
    random_search.run(x_train, y_train, **run)
    if zoom_trials:
        random_search.zoom(top_k=top_k)
        random_search.run(x_train, y_train, max_trials=zoom_trials, **run)
    return random_search, splits
