"""Optimizers over the flat parameter arena: one update per contiguous run of
trainable parameters (one run, hence one launch, unless layers are frozen).
The formulas are in gpudl.kernels.optimizer_updates."""

import numpy as np

from gpudl.backend import get_backend
from gpudl.errors import check_positive, check_rate, invalid_value, unknown_name
from gpudl.kernels.optimizer_updates import adam_step_table


class Optimizer:
    """Base: holds the learning rate (a float or a schedule `lr(step)` of the 0-based
    step), the slot buffers (arena twins) and the step state that the update kernels
    read in device memory, so a step needs no host-to-device transfer (a captured
    CUDA graph can replay it):
        step_counter  int64 (1,): steps done; advanced on the device after each step
        step_table    float64 (rows, columns): the host-computed scalars of the coming
                      steps (learning rate, Adam's bias corrections), step t in row t % rows,
                      uploaded once per prepare_steps (fit: once per epoch)
    `iterations` reads the counter back (a sync); the steps themselves never do.
    `apply` counts only its own steps against the table: code that advances the counter
    otherwise (a replayed CUDA graph) calls prepare_steps before the next `apply`.
    """

    slot_names = ()
    steps_per_upload = 64  # how far one upload reaches when fit has not prepared an epoch

    def __init__(self, learning_rate):
        self.step_counter = get_backend().xp.zeros(1, dtype=np.int64)
        self.step_table = None
        self._steps_prepared = 0  # coming steps whose rows the table holds
        self.learning_rate = learning_rate
        self.slots = {}

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            value = check_positive("learning_rate", value, type(self).__name__)
        self._learning_rate = value
        self._steps_prepared = 0  # the table holds the old rate

    @property
    def iterations(self):
        """Steps done, read back from the device counter (a sync on a GPU)."""
        return int(get_backend().to_numpy(self.step_counter)[0])

    @iterations.setter
    def iterations(self, value):
        self.step_counter[...] = int(value)
        self._steps_prepared = 0  # the table's rows belong to other steps

    def learning_rate_at(self, step):
        """The rate of the 0-based step `step` (a schedule is evaluated there and checked)."""
        if not callable(self._learning_rate):
            return self._learning_rate
        lr = float(self._learning_rate(step))
        if not lr >= 0:  # 0 is allowed: where CosineDecay(alpha=0) ends
            raise ValueError(f"The learning-rate schedule {self._learning_rate!r} gave {lr} at step "
                             f"{step}; expected a non-negative number.")
        return lr

    def current_learning_rate(self):
        """The rate of the next step."""
        return self.learning_rate_at(self.iterations)

    def build(self, arena):
        self.slots = {name: arena.new_twin() for name in self.slot_names}

    def prepare_steps(self, count):
        """Compute the step-table rows of the next `count` steps on the host (float64, as each
        step always computed its scalars) and upload them in one copy. A schedule rate that is
        negative or NaN ends the table early, and its step raises when it comes; at once if it
        is the next step's. The table is reallocated only to grow, so its address stays put.
        Returns the number of steps covered."""
        first = self.iterations
        rates = [self.learning_rate_at(first)]
        for step in range(first + 1, first + count):
            try:
                rates.append(self.learning_rate_at(step))
            except ValueError:
                break
        rows = self.step_table_rows(first, rates)
        size = max(count, 0 if self.step_table is None else len(self.step_table))
        table = np.full((size, rows.shape[1]), np.nan)  # rows no coming step reads stay NaN
        table[np.arange(first, first + len(rows)) % size] = rows
        if self.step_table is None or self.step_table.shape != table.shape:
            self.step_table = get_backend().asarray(table)
        else:
            self.step_table[...] = get_backend().asarray(table)
        self._steps_prepared = len(rows)
        return len(rows)

    def step_table_rows(self, first_step, rates):
        """Step-table rows of steps first_step, first_step + 1, ...: the learning rate."""
        return np.array(rates, dtype=np.float64).reshape(-1, 1)

    def apply(self, arena, runs):
        """One step over `runs` of the arena: the kernels read the step's row of the table
        through the device counter, which then advances on the device."""
        if self._steps_prepared == 0:
            self.prepare_steps(self.steps_per_upload)
        for start, stop in runs:
            slots = {name: buffer[start:stop] for name, buffer in self.slots.items()}
            self.update(arena.params[start:stop], arena.grads[start:stop], slots)
        self.step_counter += 1
        self._steps_prepared -= 1

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

    def update(self, param, grad, slots):
        if self.momentum:
            self.ops.sgd_momentum(param, grad, slots["velocity"], self.step_table, self.step_counter,
                                  self.momentum, self.nesterov)
        else:
            self.ops.sgd(param, grad, self.step_table, self.step_counter)

    def hyperparameters(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Momentum(Optimizer):
    """The course's gradient descent with momentum: v = beta*v + (1-beta)*g; w -= lr*v."""

    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.01, beta=0.9):
        self.beta = check_rate("beta", beta, "Momentum")
        super().__init__(learning_rate)

    def update(self, param, grad, slots):
        self.ops.ema_momentum(param, grad, slots["velocity"], self.step_table, self.step_counter, self.beta)

    def hyperparameters(self):
        return {"beta": self.beta}


class RMSprop(Optimizer):
    """s = rho*s + (1-rho)*g^2; w -= lr * g / (sqrt(s) + eps)."""

    slot_names = ("mean_square",)

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-8):
        self.rho = check_rate("rho", rho, "RMSprop")
        self.epsilon = check_positive("epsilon", epsilon, "RMSprop")
        super().__init__(learning_rate)

    def update(self, param, grad, slots):
        self.ops.rmsprop(param, grad, slots["mean_square"], self.step_table, self.step_counter, self.rho,
                         self.epsilon)

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

    def step_table_rows(self, first_step, rates):
        """Rows (decay, step_size, sqrt_bias_correction2): see adam_step_table."""
        return adam_step_table(rates, first_step, self.beta_1, self.beta_2, self.weight_decay)

    def update(self, param, grad, slots):
        self.ops.adam(param, grad, slots["m"], slots["v"], self.step_table, self.step_counter, self.beta_1,
                      self.beta_2, self.epsilon)

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
