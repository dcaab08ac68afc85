"""Weight penalties with Keras semantics, added to the loss of the kernels they sit on.

    L1(l1):      penalty l1 * sum|W|          gradient l1 * sign(W)
    L2(l2):      penalty l2 * sum W^2         gradient 2 * l2 * W   (course: l2 = lambda / (2 m))
    L1L2(l1, l2) both.
"""

from gpudl.backend import get_backend
from gpudl.errors import invalid_value, unknown_name


class Regularizer:
    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not float(value) >= 0:
                raise invalid_value(name, "a non-negative float", value, type(self).__name__)
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weights):
        xp = get_backend().xp
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(xp.abs(weights).sum())
        if self.l2:
            penalty += self.l2 * float(xp.square(weights).sum())
        return penalty

    def gradient(self, weights):
        grad = 0.0
        if self.l1:
            grad = grad + weights.dtype.type(self.l1) * get_backend().xp.sign(weights)
        if self.l2:
            grad = grad + weights.dtype.type(2.0 * self.l2) * weights
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    pass


REGULARIZERS = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in REGULARIZERS:
        return REGULARIZERS[identifier]()
    raise unknown_name("regularizer", identifier, REGULARIZERS)


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def deserialize(config):
    if config is None:
        return None
    classes = {"L1": L1, "L2": L2, "L1L2": L1L2}
    if config["class_name"] not in classes:
        raise unknown_name("regularizer", config["class_name"], classes)
    return classes[config["class_name"]](**config["config"])
