"""Numbers that must equal Keras's for a multiclass MLP with fixed weights: logits with
`from_logits=True` and label smoothing, one-hot and integer labels, class weights, the
accuracy family (categorical, sparse, top-k) and cross-entropies as metrics, evaluated
and after two SGD steps; plus predict on a softmax head and argmax classes."""

import json

import numpy as np

import keras

rng = np.random.default_rng(20)
x = rng.normal(0, 1, (30, 6)).astype("float32")
labels = rng.integers(0, 4, 30)
one_hot = keras.utils.to_categorical(labels, 4)
weights = [(np.cos(np.arange(24, dtype="float64")).reshape(6, 4) * 0.7).astype("float32"),
           np.array([0.2, -0.1, 0.0, 0.1], dtype="float32")]


def make_model(loss, metrics, activation=None):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation=activation)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2), loss=loss, metrics=metrics)
    model.set_weights(weights)
    return model


out = {}
model = make_model(
    keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    [keras.metrics.CategoricalAccuracy(), keras.metrics.TopKCategoricalAccuracy(k=2),
     keras.metrics.CategoricalCrossentropy(from_logits=True), "kl_divergence"])
out["onehot_evaluate"] = model.evaluate(x, one_hot, batch_size=8, verbose=0, return_dict=True)
history = model.fit(x, one_hot, batch_size=15, epochs=1, shuffle=False, verbose=0)
out["onehot_after_fit"] = np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64").tolist()
out["onehot_history"] = history.history

model = make_model(
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    [keras.metrics.SparseCategoricalAccuracy(), keras.metrics.SparseTopKCategoricalAccuracy(k=2),
     keras.metrics.SparseCategoricalCrossentropy(from_logits=True)])
out["sparse_evaluate"] = model.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
history = model.fit(x, labels, batch_size=15, epochs=1, shuffle=False, class_weight={0: 1.0, 1: 2.0, 2: 0.5, 3: 1.0},
                    verbose=0)
out["sparse_class_weight_after_fit"] = (
    np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64").tolist()
)
out["sparse_history"] = history.history

model = make_model("categorical_crossentropy", ["accuracy", "categorical_crossentropy"], activation="softmax")
out["softmax_evaluate"] = model.evaluate(x, one_hot, batch_size=8, verbose=0, return_dict=True)
probabilities = model.predict(x[:4], verbose=0)
out["softmax_predict"] = probabilities.astype("float64").ravel().tolist()
out["predicted_classes"] = np.argmax(probabilities, axis=1).tolist()

print(json.dumps(out))
