"""What Keras 3 raises for the mistakes MLP scripts make most (the exception class only;
the messages are each library's own): a removed argument name (`lr=`), unknown names of
activation, loss, optimizer and metric, an invalid dropout rate, x and y of different
lengths, sample_weight of the wrong length, validation_split with a PyDataset or of 1.0,
Dense with no units, predict on the wrong number of features, fit before compile,
set_weights with a wrong shape (and the weights untouched after it), and load_weights of
a file from another architecture; and what an unbuilt Sequential answers (weights,
get_weights, summary, count_params, output_shape, get_layer of a missing name, pop of an
empty model), returned values shown by repr. (Where gpudl refuses what Keras
lets through, e.g. class_weight without a class present in y, or accepts what Keras
refuses, e.g. keras.Input(shape=4), it is not here.)"""

import json

import numpy as np

import keras

keras.utils.set_random_seed(23)
x = np.zeros((10, 4), dtype="float32")
y = np.zeros((10, 1), dtype="float32")


def model_4_to_1():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def raised(call):
    try:
        result = call()
    except Exception as error:  # the class is what is compared
        return type(error).__name__
    return None if result is None else repr(result)


out = {}
out["sgd_lr_argument"] = raised(lambda: keras.optimizers.SGD(lr=0.01))
out["unknown_activation"] = raised(lambda: keras.layers.Dense(3, activation="rellu"))


def unknown_loss():
    model = model_4_to_1()
    model.compile(optimizer="sgd", loss="mean_squarred_error")  # Keras raises here or at fit
    model.fit(x, y, verbose=0)


out["unknown_loss"] = raised(unknown_loss)
out["unknown_optimizer"] = raised(lambda: model_4_to_1().compile(optimizer="adamm", loss="mse"))
out["dropout_rate_1_5"] = raised(lambda: keras.layers.Dropout(1.5))


def unknown_metric():
    model = model_4_to_1()
    model.compile(optimizer="sgd", loss="mse", metrics=["acuracy"])
    model.fit(x, y, verbose=0)


out["unknown_metric"] = raised(unknown_metric)


def lengths_differ():
    model = model_4_to_1()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y[:7], verbose=0)


out["x_y_lengths_differ"] = raised(lengths_differ)


def compiled_4_to_1():
    model = model_4_to_1()
    model.compile(optimizer="sgd", loss="mse")
    return model


class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return x[:5], y[:5]


out["sample_weight_wrong_length"] = raised(lambda: compiled_4_to_1().fit(x, y, sample_weight=np.ones(7), verbose=0))
out["validation_split_pydataset"] = raised(lambda: compiled_4_to_1().fit(Batches(), validation_split=0.2, verbose=0))
out["validation_split_1"] = raised(lambda: compiled_4_to_1().fit(x, y, validation_split=1.0, verbose=0))
out["dense_units_0"] = raised(lambda: keras.layers.Dense(0))
out["predict_wrong_features"] = raised(lambda: compiled_4_to_1().predict(np.zeros((2, 5)), verbose=0))


def fit_without_compile():
    model_4_to_1().fit(x, y, verbose=0)


out["fit_without_compile"] = raised(fit_without_compile)

model = model_4_to_1()
before = model.get_weights()
out["set_weights_wrong_shape"] = raised(lambda: model.set_weights([np.zeros((3, 1)), np.zeros((1,))]))
out["set_weights_wrong_shape_unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
out["set_weights_wrong_count"] = raised(lambda: model.set_weights([np.zeros((4, 1))]))

keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(1)]).save_weights("other.weights.h5")
out["load_weights_other_architecture"] = raised(lambda: model_4_to_1().load_weights("other.weights.h5"))

unbuilt = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(3)])
out["unbuilt"] = {
    "weights": raised(lambda: unbuilt.weights),
    "get_weights": raised(lambda: unbuilt.get_weights()),
    "summary": raised(lambda: unbuilt.summary()),
    "count_params": raised(lambda: unbuilt.count_params()),
    "output_shape": raised(lambda: unbuilt.output_shape),
    "get_layer_missing": raised(lambda: unbuilt.get_layer("nope")),
}
out["pop_empty"] = raised(lambda: keras.Sequential().pop())

print(json.dumps(out))
