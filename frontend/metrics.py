"""Accuracy metrics, accumulated as (correct, count) over an epoch.

    categorical_accuracy         argmax(y_pred) == argmax(y_true)
    sparse_categorical_accuracy  argmax(y_pred) == y_true
    binary_accuracy              (y_pred > 0.5) == y_true   (logits: z > 0)
"accuracy" picks one from the loss, like Keras.
"""

from gpudl.errors import unknown_name


class Accuracy:
    """Base: `update(y_true, y_pred, logits)` adds a batch; `result()` is the mean so far."""

    def __init__(self, name):
        self.name = name
        self.reset()

    def reset(self):
        self.correct, self.count = 0, 0

    def update(self, y_true, y_pred, logits=False):
        hits = self.hits(y_true, y_pred, logits)
        self.correct += int(hits.sum())
        self.count += int(hits.size)

    def result(self):
        return self.correct / max(self.count, 1)


class CategoricalAccuracy(Accuracy):
    def hits(self, y_true, y_pred, logits):
        return y_pred.argmax(axis=1) == y_true.argmax(axis=1)


class SparseCategoricalAccuracy(Accuracy):
    def hits(self, y_true, y_pred, logits):
        return y_pred.argmax(axis=1) == y_true


class BinaryAccuracy(Accuracy):
    def hits(self, y_true, y_pred, logits):
        return (y_pred > (0 if logits else 0.5)) == (y_true > 0.5)


METRICS = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
}


def get(identifier, loss, output_units):
    """A metric from its name; "accuracy"/"acc" is chosen from the loss and output width."""
    if isinstance(identifier, Accuracy):
        return identifier
    if identifier in ("accuracy", "acc"):
        if loss.name == "sparse_categorical_crossentropy":
            cls = SparseCategoricalAccuracy
        elif loss.name == "binary_crossentropy" or output_units == 1:
            cls = BinaryAccuracy
        else:
            cls = CategoricalAccuracy
        return cls(identifier)
    if identifier in METRICS:
        return METRICS[identifier](identifier)
    raise unknown_name("metric", identifier, list(METRICS) + ["accuracy"])
