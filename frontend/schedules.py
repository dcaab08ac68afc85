"""Learning-rate schedules: callables `schedule(step) -> learning rate`.

`step` is the 0-based optimizer step: the number of mini-batches already trained on,
as in Keras. An optimizer given a schedule instead of a float calls it once per step.

Steps and epochs. With m examples in mini-batches of size b there are
steps_per_epoch = ceil(m / b) steps per epoch, and
    epoch = floor(step / steps_per_epoch)        (0 during the first epoch)
is the number of epochs already completed, as in Keras and in the course's
programming assignment (`update_lr(learning_rate0, epoch_num, decay_rate)` with
epoch_num = 0, 1, 2, ...). The lecture's table numbers epochs from 1: its
"epoch 1" rate is the rate once one epoch is complete, `schedule(1 * steps_per_epoch)`.
For a per-step schedule (the course's t = mini-batch number), use steps_per_epoch=1.

The course's schedules, through these classes (alpha0 = initial_learning_rate):
    1 / (1 + decay_rate * epoch) * alpha0
        InverseTimeDecay(alpha0, decay_steps=steps_per_epoch, decay_rate=decay_rate, staircase=True)
    0.95 ** epoch * alpha0
        ExponentialDecay(alpha0, decay_steps=steps_per_epoch, decay_rate=0.95, staircase=True)
    k / sqrt(epoch) * alpha0      KSqrtEpochDecay(alpha0, k, steps_per_epoch)
    k / sqrt(t) * alpha0          KSqrtEpochDecay(alpha0, k, steps_per_epoch=1)
    halve every N epochs          StaircaseDecay(alpha0, epochs_per_drop=N, steps_per_epoch, factor=0.5)
(staircase=False lets the rate fall smoothly inside an epoch instead.)

Keras's schedules, with Keras's arguments, defaults and formulas: ExponentialDecay,
InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay, CosineDecay (with warmup),
CosineDecayRestarts; gpudl.optimizers.schedules is this module. They compute in float64
(Keras in the rate's dtype, float32 by default).

Every schedule describes itself with `get_config()` (a JSON-able dict) and is rebuilt
with `Class.from_config(config)`; `serialize` / `deserialize` use Keras's dict form.
"""

import math

import numpy as np

from gpudl import registry
from gpudl.errors import check_count, check_positive, invalid_value


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _step_count(argument, value):
    """A positive number of steps, kept as given (an int stays an int in get_config, as in Keras)."""
    check_positive(argument, value)
    return value.item() if isinstance(value, np.generic) else value


class LearningRateSchedule:
    """Base class: subclasses define `__call__(step)` and `get_config()`."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_learning_rate * decay_rate ** (step / decay_steps)  (Keras).

    With staircase=True the exponent is floor(step / decay_steps), so the rate drops
    in steps. The course's 0.95**epoch * alpha0 is
    ExponentialDecay(alpha0, decay_steps=steps_per_epoch, decay_rate=0.95, staircase=True).

    Args:
        initial_learning_rate: rate at step 0, > 0.
        decay_steps: steps over which the rate is multiplied by decay_rate once, > 0.
        decay_rate: factor per decay_steps, > 0 (below 1 to decay).
        staircase: floor the exponent (a piecewise-constant rate).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _step_count("decay_steps", decay_steps)
        self.decay_rate = check_positive("decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate**exponent

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """lr = initial_learning_rate / (1 + decay_rate * step / decay_steps)  (Keras).

    With staircase=True, step / decay_steps is floored. The course's
    1 / (1 + decay_rate * epoch) * alpha0 is
    InverseTimeDecay(alpha0, decay_steps=steps_per_epoch, decay_rate, staircase=True).

    Args:
        initial_learning_rate: rate at step 0, > 0.
        decay_steps: steps that count as one unit of time (e.g. steps_per_epoch), > 0.
        decay_rate: > 0.
        staircase: floor step / decay_steps (a piecewise-constant rate).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _step_count("decay_steps", decay_steps)
        self.decay_rate = check_positive("decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        time = step / self.decay_steps
        if self.staircase:
            time = math.floor(time)
        return self.initial_learning_rate / (1.0 + self.decay_rate * time)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """lr = values[i] for boundaries[i-1] < step <= boundaries[i]  (Keras).

    values[0] up to and including step boundaries[0], values[-1] after boundaries[-1].
    The course's "manual changes" of the rate, decided in advance.

    Args:
        boundaries: strictly increasing steps, at least one.
        values: len(boundaries) + 1 rates, each > 0.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries = list(boundaries)
        values = list(values)
        increasing = all(map(_is_number, boundaries)) and all(a < b for a, b in zip(boundaries, boundaries[1:]))
        if not boundaries or not increasing:
            raise invalid_value("boundaries", "a non-empty, strictly increasing list of steps", boundaries)
        if len(values) != len(boundaries) + 1:
            raise invalid_value("values", f"len(boundaries) + 1 = {len(boundaries) + 1} learning rates", values)
        for value in values:
            if not (_is_number(value) and math.isfinite(value) and value > 0):
                raise invalid_value("values", "learning rates that are all positive numbers", values)
        self.boundaries = [b.item() if isinstance(b, np.generic) else b for b in boundaries]
        self.values = [float(v) for v in values]
        self.name = name

    def __call__(self, step):
        return self.values[int(np.searchsorted(self.boundaries, step, side="left"))]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras; Loshchilov & Hutter, SGDR).

    Without warmup (warmup_target=None), with s = min(step, decay_steps):
        lr = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)
    With warmup, s = min(step, warmup_steps + decay_steps): the rate rises linearly from
    initial_learning_rate to warmup_target over warmup_steps,
        lr = initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps,
    then decays as above from warmup_target over decay_steps, with s - warmup_steps for s.
    The rate ends at alpha times the decayed-from rate and stays there; with alpha=0 (Keras's
    default) it is 0 from then on: use alpha > 0, or decay_steps beyond the last training step.

    Args:
        initial_learning_rate: > 0; >= 0 with a warmup (which may start from 0).
        decay_steps: steps to decay over, > 0.
        alpha: the final rate as a fraction of the decayed-from rate, in [0, 1].
        name: Keras's name argument.
        warmup_target: None (no warmup), or the rate reached after the warmup, > 0.
        warmup_steps: steps of linear warmup, >= 0 (used only with warmup_target).
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.warmup_target = None if warmup_target is None else check_positive("warmup_target", warmup_target)
        if self.warmup_target is None:
            self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        elif not (_is_number(initial_learning_rate) and math.isfinite(initial_learning_rate)
                  and initial_learning_rate >= 0):  # a warmup may start at 0 (Keras's docstring does)
            raise invalid_value("initial_learning_rate", "a non-negative number", initial_learning_rate)
        else:
            self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _step_count("decay_steps", decay_steps)
        if not (_is_number(alpha) and 0.0 <= alpha <= 1.0):
            raise invalid_value("alpha", "a float in [0, 1]", alpha)
        self.alpha = float(alpha)
        self.name = name
        if not (_is_number(warmup_steps) and math.isfinite(warmup_steps) and warmup_steps >= 0):
            raise invalid_value("warmup_steps", "a non-negative number of steps", warmup_steps)
        self.warmup_steps = warmup_steps

    def _decay(self, step, decay_from):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class PolynomialDecay(LearningRateSchedule):
    """lr = (initial_learning_rate - end_learning_rate) * (1 - s / d) ** power + end_learning_rate
    (Keras), with s = min(step, decay_steps) and d = decay_steps; the rate then stays at
    end_learning_rate. With cycle=True, s = step and d = decay_steps * ceil(step / decay_steps)
    (decay_steps at step 0): the decay restarts, over ever longer periods.

    Args:
        initial_learning_rate: > 0.
        decay_steps: > 0.
        end_learning_rate: the final rate, >= 0.
        power: the polynomial's power, > 0 (1: linear decay).
        cycle: restart the decay after decay_steps.
        name: Keras's name argument.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _step_count("decay_steps", decay_steps)
        if not (_is_number(end_learning_rate) and math.isfinite(end_learning_rate) and end_learning_rate >= 0):
            raise invalid_value("end_learning_rate", "a non-negative number", end_learning_rate)
        self.end_learning_rate = float(end_learning_rate)
        self.power = check_positive("power", power)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        if self.cycle:
            decay_steps = self.decay_steps * (1.0 if step == 0 else math.ceil(step / self.decay_steps))
        else:
            decay_steps, step = self.decay_steps, min(step, self.decay_steps)
        fraction_left = 1.0 - step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * fraction_left**self.power \
            + self.end_learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter; Keras's formula).

    Period i (i = 0, 1, ...) lasts first_decay_steps * t_mul**i steps and starts at the rate
    initial_learning_rate * m_mul**i. With f = step / first_decay_steps:
        t_mul == 1:  i = floor(f),  x = f - i
        else:        i = floor(log(1 - f * (1 - t_mul)) / log(t_mul)),
                     x = (f - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i
        lr = initial_learning_rate * ((1 - alpha) * m_mul**i * 0.5 * (1 + cos(pi * x)) + alpha)
    (x is the fraction of period i done).

    Args:
        initial_learning_rate: > 0.
        first_decay_steps: steps of the first period, > 0.
        t_mul: each period is t_mul times longer than the one before, > 0.
        m_mul: each period starts m_mul times lower, >= 0.
        alpha: the floor, a fraction of initial_learning_rate in [0, 1].
        name: Keras's name argument.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _step_count("first_decay_steps", first_decay_steps)
        self.t_mul = check_positive("t_mul", t_mul)
        if not (_is_number(m_mul) and math.isfinite(m_mul) and m_mul >= 0):
            raise invalid_value("m_mul", "a non-negative number", m_mul)
        self.m_mul = float(m_mul)
        if not (_is_number(alpha) and 0.0 <= alpha <= 1.0):
            raise invalid_value("alpha", "a float in [0, 1]", alpha)
        self.alpha = float(alpha)
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            argument = 1.0 - fraction * (1.0 - self.t_mul)
            if argument <= 0:  # t_mul < 1: every period together last first_decay_steps / (1 - t_mul)
                return math.nan
            restart = math.floor(math.log(argument) / math.log(self.t_mul))
            fraction = (fraction - (1.0 - self.t_mul**restart) / (1.0 - self.t_mul)) / self.t_mul**restart
        cosine = 0.5 * self.m_mul**restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


class KSqrtEpochDecay(LearningRateSchedule):
    """lr = k / sqrt(epoch) * initial_learning_rate, epoch = floor(step / steps_per_epoch).

    The course's k / sqrt(epoch) * alpha0; with steps_per_epoch=1 it is
    k / sqrt(t) * alpha0 with t = step, the mini-batch number.
    The formula is undefined at epoch 0 (t = 0): the first epoch (first step) uses
    the rate of epoch 1 (t = 1), k * alpha0. So schedule(e * steps_per_epoch) is the
    course's value at epoch e for every e >= 1, as for the other schedules.

    Args:
        initial_learning_rate: alpha0, > 0.
        k: > 0; the rate of the first epoch is k * alpha0.
        steps_per_epoch: optimizer steps per epoch (1 for a per-step schedule).
    """

    def __init__(self, initial_learning_rate, k=1.0, steps_per_epoch=1):
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.k = check_positive("k", k)
        self.steps_per_epoch = check_count("steps_per_epoch", steps_per_epoch, minimum=1)

    def __call__(self, step):
        epoch = max(math.floor(step / self.steps_per_epoch), 1)
        return self.k / math.sqrt(epoch) * self.initial_learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "k": self.k,
            "steps_per_epoch": self.steps_per_epoch,
        }


class StaircaseDecay(LearningRateSchedule):
    """lr = initial_learning_rate * factor ** floor(epoch / epochs_per_drop),
    epoch = floor(step / steps_per_epoch).

    The course's discrete staircase: with factor=0.5 the rate halves every
    epochs_per_drop epochs.

    Args:
        initial_learning_rate: > 0.
        epochs_per_drop: epochs between two drops, a positive integer.
        steps_per_epoch: optimizer steps per epoch (1 to drop every epochs_per_drop steps).
        factor: multiplier at each drop, > 0 (0.5 halves).
    """

    def __init__(self, initial_learning_rate, epochs_per_drop, steps_per_epoch=1, factor=0.5):
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.epochs_per_drop = check_count("epochs_per_drop", epochs_per_drop, minimum=1)
        self.steps_per_epoch = check_count("steps_per_epoch", steps_per_epoch, minimum=1)
        self.factor = check_positive("factor", factor)

    def __call__(self, step):
        epoch = math.floor(step / self.steps_per_epoch)
        return self.initial_learning_rate * self.factor ** (epoch // self.epochs_per_drop)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "epochs_per_drop": self.epochs_per_drop,
            "steps_per_epoch": self.steps_per_epoch,
            "factor": self.factor,
        }


SCHEDULES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        InverseTimeDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        CosineDecay,
        CosineDecayRestarts,
        KSqrtEpochDecay,
        StaircaseDecay,
    )
}
registry.register("schedule", SCHEDULES.values())


def serialize(learning_rate_schedule):
    """Keras's dict form, JSON-able:
    {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": {...},
     "registered_name": None}."""
    return {"module": "keras.optimizers.schedules", "class_name": type(learning_rate_schedule).__name__,
            "config": learning_rate_schedule.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """The schedule that `serialize` (or Keras's) described; `custom_objects` maps the names of
    user schedule classes to the classes."""
    classes = {**registry.classes("schedule"), **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in classes:
        raise invalid_value("config", f"a dict with 'class_name' one of {sorted(classes)} and 'config'", config)
    return classes[name].from_config(config.get("config", {}))
