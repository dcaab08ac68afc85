"""Losses, mean over the batch (Keras's "sum_over_batch_size").

    CategoricalCrossentropy     L = -1/m sum_i sum_k y_ik log p_ik          (one-hot / soft y)
    SparseCategoricalCrossentropy  same with integer labels
    BinaryCrossentropy          L = -1/(m K) sum (y log p + (1 - y) log(1 - p))
    MeanSquaredError            L = 1/(m K) sum (p - y)^2
A softmax (sigmoid) output followed by (binary) cross-entropy is fused: the model
hands the loss the logits and the gradient is (A - Y) / m, never a log of a softmax.
"""

import numpy as np

from gpudl.backend import get_backend
from gpudl.errors import unknown_name

PROBABILITY_EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps]


class Loss:
    """Base: `value_and_gradient(y_true, y_pred) -> (mean loss, dL/dy_pred)`."""

    name = "loss"
    fused_activation = None  # the output activation whose logits this loss can take

    def __init__(self, from_logits=False):
        self.from_logits = from_logits

    def prepare_targets(self, y, output_shape, where="y"):
        """Check host targets against the model's output shape (batch axis excluded);
        return them in the form value_and_gradient takes."""
        y = np.asarray(y)
        if y.ndim == 1 and output_shape == (1,):
            y = y.reshape(-1, 1)
        if y.shape[1:] != tuple(output_shape):
            raise ValueError(f"`{where}` has shape {y.shape} but the model outputs (None, "
                             f"{', '.join(map(str, output_shape))}) and {self.name} expects targets "
                             f"of the same shape.")
        return y

    def __call__(self, y_true, y_pred):
        return self.value_and_gradient(y_true, y_pred)[0]

    def get_config(self):
        return {"from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def value_and_gradient(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_value_and_gradient(y_true, y_pred)
        return _probability_cross_entropy(self.one_hot(y_true, y_pred.shape[1], y_pred.dtype), y_pred)

    def logits_value_and_gradient(self, y_true, logits):
        return get_backend().ops.softmax_cross_entropy(logits, y_true.astype(logits.dtype, copy=False))

    def one_hot(self, y_true, classes, dtype):
        return y_true.astype(dtype, copy=False)

    def prepare_targets(self, y, output_shape, where="y"):
        y = super().prepare_targets(y, output_shape, where)
        if np.any(y < 0) or np.any(y > 1):
            raise ValueError(f"`{where}` must hold one-hot or probability targets in [0, 1] for "
                             f"{self.name}; found values in [{y.min()}, {y.max()}]. For integer labels "
                             f"use SparseCategoricalCrossentropy.")
        return y


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    name = "sparse_categorical_crossentropy"

    def logits_value_and_gradient(self, y_true, logits):
        return get_backend().ops.softmax_cross_entropy(logits, y_true)

    def one_hot(self, y_true, classes, dtype):
        return get_backend().xp.eye(classes, dtype=dtype)[y_true]

    def prepare_targets(self, y, output_shape, where="y"):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        classes = output_shape[-1]
        if y.ndim != 1 or (y.dtype.kind == "f" and np.any(y != np.round(y))) or y.dtype.kind not in "iuf":
            raise ValueError(f"`{where}` must be integer class labels of shape (N,) for {self.name}; "
                             f"received dtype {y.dtype} and shape {y.shape}.")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"`{where}` holds labels in [{int(y.min())}, {int(y.max())}] but the model "
                             f"has {classes} classes: labels must be in [0, {classes - 1}].")
        return y.astype(np.int64)


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def value_and_gradient(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_value_and_gradient(y_true, y_pred)
        xp = get_backend().xp
        eps = PROBABILITY_EPSILON
        p = xp.clip(y_pred, eps, 1 - eps)
        y = y_true.astype(y_pred.dtype, copy=False)
        loss = -float((y * xp.log(p) + (1 - y) * xp.log(1 - p)).mean(dtype=np.float64))
        inside = (y_pred > eps) & (y_pred < 1 - eps)
        return loss, ((p - y) / (p * (1 - p)) * inside) / y_pred.size

    def logits_value_and_gradient(self, y_true, logits):
        """L = max(z, 0) - z y + log(1 + e^-|z|);  dL/dz = (sigmoid(z) - y) / size."""
        xp = get_backend().xp
        z, y = logits, y_true.astype(logits.dtype, copy=False)
        loss = float((xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))).mean(dtype=np.float64))
        e = xp.exp(-xp.abs(z))
        sigmoid = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return loss, (sigmoid - y) / z.size

    def prepare_targets(self, y, output_shape, where="y"):
        y = super().prepare_targets(y, output_shape, where)
        if np.any(y < 0) or np.any(y > 1):
            raise ValueError(f"`{where}` must hold targets in [0, 1] for {self.name}; found values in "
                             f"[{y.min()}, {y.max()}].")
        return y


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def __init__(self):
        super().__init__(from_logits=False)

    def value_and_gradient(self, y_true, y_pred):
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        return float((diff * diff).mean(dtype=np.float64)), diff * (2.0 / diff.size)

    def get_config(self):
        return {}


def _probability_cross_entropy(y, p):
    """Keras's CE on probabilities: q = p / sum p, clipped; exact gradient through both."""
    xp = get_backend().xp
    m = p.shape[0]
    total = p.sum(axis=1, keepdims=True)
    q = p / total
    q_clipped = xp.clip(q, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    loss = -float((y * xp.log(q_clipped)).sum(dtype=np.float64)) / m
    inside = (q > PROBABILITY_EPSILON) & (q < 1 - PROBABILITY_EPSILON)
    dq = -(y / q_clipped) * inside / m
    return loss, (dq - (dq * q).sum(axis=1, keepdims=True)) / total


LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in LOSSES:
        return LOSSES[identifier]()
    raise unknown_name("loss", identifier, LOSSES)


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    classes = {cls.__name__: cls for cls in LOSSES.values()}
    if config["class_name"] not in classes:
        raise unknown_name("loss", config["class_name"], classes)
    return classes[config["class_name"]](**config["config"])
