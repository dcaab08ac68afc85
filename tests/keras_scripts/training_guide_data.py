"""After keras-io guides/training_with_built_in_methods.py (Keras 3), its data sections: a
`keras.utils.PyDataset` subclass (`__len__`, `__getitem__`, `on_epoch_end`, `workers=`)
for fit, validation and evaluate; batches that carry sample weights as a third element;
a Python generator with `steps_per_epoch`; `validation_freq`; `validation_data` with
sample weights; and `initial_epoch` to continue numbering epochs."""

import json

import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(12)
rng = np.random.default_rng(12)
x_train = rng.random((300, 16)).astype("float32")
y_train = x_train[:, :5].argmax(axis=1)
x_val = rng.random((70, 16)).astype("float32")
y_val = x_val[:, :5].argmax(axis=1)


def get_compiled_model():
    model = keras.Sequential(
        [keras.Input(shape=(16,)), layers.Dense(32, activation="relu"), layers.Dense(5, activation="softmax")]
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    return model


class ExamplePyDataset(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, sample_weight=None, **kwargs):
        super().__init__(**kwargs)
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.sample_weight = sample_weight
        self.epochs_seen = 0

    def __len__(self):
        return int(np.ceil(len(self.x) / float(self.batch_size)))

    def __getitem__(self, idx):
        batch = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
        if self.sample_weight is None:
            return self.x[batch], self.y[batch]
        return self.x[batch], self.y[batch], self.sample_weight[batch]

    def on_epoch_end(self):
        self.epochs_seen += 1


out = {}
train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=32)
val_py_dataset = ExamplePyDataset(x_val, y_val, batch_size=32)
out["pydataset_len"] = len(train_py_dataset)
model = get_compiled_model()
history = model.fit(train_py_dataset, validation_data=val_py_dataset, epochs=2, verbose=0)
out["pydataset_history_keys"] = sorted(history.history)
out["pydataset_steps"] = history.params["steps"]
out["pydataset_epoch_end_called"] = train_py_dataset.epochs_seen >= 2
result = model.evaluate(val_py_dataset, verbose=0)
out["pydataset_evaluate_len"] = len(result)
out["pydataset_predict_shape"] = list(model.predict(ExamplePyDataset(x_val, y_val, batch_size=32), verbose=0).shape)

train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=32, workers=4)
model = get_compiled_model()
history = model.fit(train_py_dataset, epochs=1, verbose=0)
out["workers_history_keys"] = sorted(history.history)

sample_weight = np.ones(len(y_train), dtype="float32")
sample_weight[y_train == 3] = 2.0
weighted = ExamplePyDataset(x_train, y_train, batch_size=32, sample_weight=sample_weight)
model = get_compiled_model()
history = model.fit(weighted, epochs=1, verbose=0)
out["weighted_pydataset_keys"] = sorted(history.history)


def batches():
    while True:
        for start in range(0, len(x_train), 50):
            yield x_train[start:start + 50], y_train[start:start + 50]


model = get_compiled_model()
history = model.fit(batches(), steps_per_epoch=6, epochs=2, verbose=0)
out["generator_history_lengths"] = {k: len(v) for k, v in history.history.items()}
out["generator_iterations"] = int(model.optimizer.iterations)

model = get_compiled_model()
history = model.fit(x_train, y_train, epochs=4, batch_size=64, validation_data=(x_val, y_val), validation_freq=2,
                    verbose=0)
out["validation_freq_lengths"] = {k: len(v) for k, v in history.history.items()}

val_weight = np.linspace(0.5, 1.5, len(y_val)).astype("float32")
model = get_compiled_model()
history = model.fit(x_train, y_train, epochs=1, batch_size=64, validation_data=(x_val, y_val, val_weight), verbose=0)
out["weighted_validation_keys"] = sorted(history.history)

history = model.fit(x_train, y_train, epochs=3, initial_epoch=1, batch_size=64, verbose=0)
out["initial_epoch_epochs"] = history.epoch
out["initial_epoch_loss_len"] = len(history.history["loss"])

print(json.dumps(out))
