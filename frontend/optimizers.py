"""Optimizers over the flat parameter arena: one update per contiguous run of
trainable parameters (one run, hence one launch, unless layers are frozen).
The formulas are in gpudl.kernels.optimizer_updates."""

from gpudl.backend import get_backend
from gpudl.errors import check_positive, check_rate, invalid_value, unknown_name


class Optimizer:
    """Base: holds the learning rate (a float or a schedule `lr(step)` of the 0-based
    step), the step count `iterations` and the slot buffers (arena twins)."""

    slot_names = ()

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate
        self.iterations = 0
        self.slots = {}

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            value = check_positive("learning_rate", value, type(self).__name__)
        self._learning_rate = value

    def current_learning_rate(self):
        """The rate of the next step (a schedule is evaluated at `iterations`)."""
        if not callable(self._learning_rate):
            return self._learning_rate
        lr = float(self._learning_rate(self.iterations))
        if not lr >= 0:  # 0 is allowed: where CosineDecay(alpha=0) ends
            raise ValueError(f"The learning-rate schedule {self._learning_rate!r} gave {lr} at step "
                             f"{self.iterations}; expected a non-negative number.")
        return lr

    def build(self, arena):
        self.slots = {name: arena.new_twin() for name in self.slot_names}

    def apply(self, arena, runs):
        """One step over `runs` of the arena."""
        lr = self.current_learning_rate()
        self.iterations += 1
        for start, stop in runs:
            slots = {name: buffer[start:stop] for name, buffer in self.slots.items()}
            self.update(arena.params[start:stop], arena.grads[start:stop], slots, lr)

    def variables(self):
        """[iterations, slot buffers...] for saving."""
        return [self.iterations] + [self.slots[name] for name in self.slot_names]

    def get_config(self):
        lr = self._learning_rate
        return {"learning_rate": lr if not callable(lr) else None, **self.hyperparameters()}

    def hyperparameters(self):
        return {}

    @property
    def ops(self):
        return get_backend().ops


class SGD(Optimizer):
    """w -= lr * g; with momentum mu: v = mu*v + g, w -= lr*v (nesterov: lr*(g + mu*v))."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        self.momentum = check_rate("momentum", momentum, "SGD")
        self.nesterov = bool(nesterov)
        self.slot_names = ("velocity",) if self.momentum else ()
        super().__init__(learning_rate)

    def update(self, param, grad, slots, lr):
        if self.momentum:
            self.ops.sgd_momentum(param, grad, slots["velocity"], lr, self.momentum, self.nesterov)
        else:
            self.ops.sgd(param, grad, lr)

    def hyperparameters(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Momentum(Optimizer):
    """The course's gradient descent with momentum: v = beta*v + (1-beta)*g; w -= lr*v."""

    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.01, beta=0.9):
        self.beta = check_rate("beta", beta, "Momentum")
        super().__init__(learning_rate)

    def update(self, param, grad, slots, lr):
        self.ops.ema_momentum(param, grad, slots["velocity"], lr, self.beta)

    def hyperparameters(self):
        return {"beta": self.beta}


class RMSprop(Optimizer):
    """s = rho*s + (1-rho)*g^2; w -= lr * g / (sqrt(s) + eps)."""

    slot_names = ("mean_square",)

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-8):
        self.rho = check_rate("rho", rho, "RMSprop")
        self.epsilon = check_positive("epsilon", epsilon, "RMSprop")
        super().__init__(learning_rate)

    def update(self, param, grad, slots, lr):
        self.ops.rmsprop(param, grad, slots["mean_square"], lr, self.rho, self.epsilon)

    def hyperparameters(self):
        return {"rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam with bias correction, epsilon outside the square root (Kingma & Ba, PyTorch)."""

    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.beta_1 = check_rate("beta_1", beta_1, type(self).__name__)
        self.beta_2 = check_rate("beta_2", beta_2, type(self).__name__)
        self.epsilon = check_positive("epsilon", epsilon, type(self).__name__)
        self.weight_decay = 0.0
        super().__init__(learning_rate)

    def update(self, param, grad, slots, lr):
        self.ops.adam(param, grad, slots["m"], slots["v"], lr, self.beta_1, self.beta_2, self.epsilon,
                      self.iterations, self.weight_decay)

    def hyperparameters(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay: w *= 1 - lr * weight_decay before each step."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__(learning_rate, beta_1, beta_2, epsilon)
        if not float(weight_decay) >= 0:
            raise invalid_value("weight_decay", "a non-negative float", weight_decay, "AdamW")
        self.weight_decay = float(weight_decay)

    def hyperparameters(self):
        return {**super().hyperparameters(), "weight_decay": self.weight_decay}


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    raise unknown_name("optimizer", identifier, OPTIMIZERS)
