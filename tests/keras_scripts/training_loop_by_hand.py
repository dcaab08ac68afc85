"""After keras-io guides/writing_a_training_loop_from_scratch.py (Keras 3), with the
gradient written by hand instead of taken by a backend's autodiff (the course's way, and
the only way gpudl has): batches sliced from NumPy arrays, logits from
`model(x, training=True)`, the loss from a SparseCategoricalCrossentropy(from_logits=True)
object, the softmax-regression gradient dZ = (softmax(Z) - Y) / m, then
`optimizer.apply_gradients(zip(grads, model.trainable_weights))` (and once
`optimizer.apply(grads, model.trainable_weights)`), a training and a validation
SparseCategoricalAccuracy with update_state/result/reset_state per epoch; the weights,
losses, accuracies and the optimizer's variables compared with Keras's."""

import json

import numpy as np

import keras

rng = np.random.default_rng(27)
x_train = rng.normal(0, 1, (64, 6)).astype("float32")
y_train = (x_train[:, :4] + rng.normal(0, 0.5, (64, 4))).argmax(axis=1)
x_val = rng.normal(0, 1, (20, 6)).astype("float32")
y_val = x_val[:, :4].argmax(axis=1)
batch_size = 16

model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(4, name="predictions")])
model.set_weights([(np.cos(np.arange(24, dtype="float64")).reshape(6, 4) * 0.3).astype("float32"),
                   np.zeros(4, dtype="float32")])
optimizer = keras.optimizers.Adam(learning_rate=1e-2, epsilon=1e-12)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
train_acc_metric = keras.metrics.SparseCategoricalAccuracy()
val_acc_metric = keras.metrics.SparseCategoricalAccuracy()


def gradients(x, y, logits):
    """Softmax cross-entropy gradient of Dense's kernel and bias, by hand."""
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(y)), y] -= 1.0
    d_logits = probabilities / len(y)
    return [x.T @ d_logits, d_logits.sum(axis=0)]


out = {"losses": [], "train_acc": [], "val_acc": []}
for epoch in range(2):
    for step in range(len(x_train) // batch_size):
        x_batch = x_train[step * batch_size:(step + 1) * batch_size]
        y_batch = y_train[step * batch_size:(step + 1) * batch_size]
        logits = np.asarray(model(x_batch, training=True))
        loss_value = float(loss_fn(y_batch, logits))
        grads = gradients(x_batch, y_batch, logits)
        if epoch == 1 and step == 0:
            optimizer.apply(grads, model.trainable_weights)
        else:
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
        train_acc_metric.update_state(y_batch, logits)
        out["losses"].append(loss_value)
    out["train_acc"].append(float(train_acc_metric.result()))
    train_acc_metric.reset_state()
    val_acc_metric.update_state(y_val, np.asarray(model(x_val, training=False)))
    out["val_acc"].append(float(val_acc_metric.result()))
    val_acc_metric.reset_state()

out["weights"] = np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64").tolist()
out["iterations"] = int(optimizer.iterations)
# A probe (hasattr), so that a missing alias stops only this key.
out["trainable_variables_len"] = len(model.trainable_variables) if hasattr(model, "trainable_variables") else None
out["optimizer_variable_shapes"] = [list(v.shape) for v in optimizer.variables]
out["metric_after_reset"] = float(train_acc_metric.result())

print(json.dumps(out))
