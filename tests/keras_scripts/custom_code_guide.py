"""User code with keras.ops, as keras-io's "Training & evaluation with the built-in methods" guide
writes it (custom losses, a custom metric, add_loss in a layer) and its "Making new layers and models
via subclassing" guide (a Layer with build/add_weight/call, a subclassed Model), on fixed data and fixed
weights so that every number must equal Keras's: histories, evaluate, predict."""

import json

import numpy as np

import keras
from keras import layers, ops

rng = np.random.default_rng(21)
x = rng.normal(size=(96, 12)).astype("float32")
labels = (x @ rng.normal(size=(12, 4))).argmax(1)
y_onehot = np.eye(4, dtype="float32")[labels]
W1 = (rng.normal(size=(12, 16)) * 0.3).astype("float32")
W2 = (rng.normal(size=(16, 4)) * 0.3).astype("float32")


def get_uncompiled_model():
    inputs = keras.Input(shape=(12,), name="features")
    h = layers.Dense(16, activation="relu", name="dense_1")(inputs)
    outputs = layers.Dense(4, name="predictions")(h)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.set_weights([W1, np.zeros(16, "float32"), W2, np.zeros(4, "float32")])
    return model


def custom_mean_squared_error(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class CustomMSE(keras.losses.Loss):
    def __init__(self, regularization_factor=0.1, name="custom_mse"):
        super().__init__(name=name)
        self.regularization_factor = regularization_factor

    def call(self, y_true, y_pred):
        mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
        reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
        return mse + reg * self.regularization_factor


class CategoricalTruePositives(keras.metrics.Metric):
    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.argmax(y_pred, axis=1)
        values = ops.cast(ops.equal(ops.argmax(y_true, axis=1), y_pred), "float32")
        if sample_weight is not None:
            values = ops.multiply(values, ops.cast(sample_weight, "float32"))
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives.value

    def reset_state(self):
        self.true_positives.assign(0.0)


class ActivityRegularizationLayer(layers.Layer):
    def call(self, inputs):
        self.add_loss(ops.sum(inputs) * 0.01)
        return inputs


class Linear(keras.layers.Layer):
    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="zeros", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class MLPBlock(keras.Model):
    def __init__(self):
        super().__init__()
        self.linear_1 = Linear(16)
        self.linear_2 = Linear(4)

    def call(self, inputs):
        x = self.linear_1(inputs)
        x = ops.relu(x)
        return self.linear_2(x)


def rounded(values):
    return [round(float(v), 6) for v in values]


out = {}
model = get_uncompiled_model()
model.compile(optimizer=keras.optimizers.SGD(0.05), loss=custom_mean_squared_error)
out["function_loss"] = rounded(model.fit(x, y_onehot, batch_size=32, epochs=3, shuffle=False, verbose=0).history["loss"])

model = get_uncompiled_model()
model.compile(optimizer=keras.optimizers.SGD(0.05), loss=CustomMSE())
out["loss_subclass"] = rounded(model.fit(x, y_onehot, batch_size=32, epochs=3, shuffle=False, verbose=0).history["loss"])

model = get_uncompiled_model()
model.compile(optimizer=keras.optimizers.SGD(0.05),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=[CategoricalTruePositives()])
history = model.fit(x, y_onehot, batch_size=32, epochs=2, shuffle=False, verbose=0).history
out["metric_subclass"] = {key: rounded(values) for key, values in sorted(history.items())}
out["metric_evaluate"] = rounded(model.evaluate(x, y_onehot, verbose=0))

inputs = keras.Input(shape=(12,), name="digits")
h = layers.Dense(16, activation="relu", name="dense_1")(inputs)
h = ActivityRegularizationLayer()(h)
outputs = layers.Dense(4, name="predictions")(h)
model = keras.Model(inputs=inputs, outputs=outputs)
model.set_weights([W1, np.zeros(16, "float32"), W2, np.zeros(4, "float32")])
model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
out["add_loss_layer"] = rounded(model.fit(x, y_onehot, batch_size=32, epochs=2, shuffle=False, verbose=0).history["loss"])

mlp = MLPBlock()
y_mlp = mlp(x[:2])
out["subclassed_outputs_shape"] = list(y_mlp.shape)
out["subclassed_weights"] = len(mlp.weights)
mlp.set_weights([W1, np.zeros(16, "float32"), W2, np.zeros(4, "float32")])
mlp.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
out["subclassed_fit"] = rounded(mlp.fit(x, y_onehot, batch_size=32, epochs=2, shuffle=False, verbose=0).history["loss"])
out["subclassed_predict"] = rounded(mlp.predict(x[:2], verbose=0).reshape(-1))
print(json.dumps(out))
