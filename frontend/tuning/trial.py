"""One trial of a search, the same in every executor: seed, build, fit, score.

A trial is a pure function of (shared setup, its parameters and seed, the curves of
the trials finished before it, which only pruning reads), so running it here, in
another process or on a Ray worker gives the same numbers.
"""

import math
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from gpudl import random as gpudl_random
from gpudl.backend import floatx, get_backend, set_backend, set_floatx
from gpudl.errors import invalid_value
from gpudl.frontend.callbacks import Callback, auto_mode
from gpudl.frontend.models import Sequential


class Objective:
    """What a search maximizes or minimizes: a key of the fit history (`val_accuracy`), scored
    by its best epoch; direction "max" or "min" ("auto": max for accuracy-like names)."""

    def __init__(self, name, direction="auto"):
        if not isinstance(name, str) or not name:
            raise invalid_value("objective", "a history key such as 'val_accuracy'", name, "Objective")
        if direction not in ("auto", "min", "max"):
            raise invalid_value("direction", "'auto', 'min' or 'max'", direction, "Objective")
        self.name = name
        self.direction = auto_mode(name) if direction == "auto" else direction

    def best_index(self, values):
        """Index of the best of `values` (the first of equals)."""
        pick = max if self.direction == "max" else min
        return values.index(pick(values))

    def is_better(self, a, b):
        return a > b if self.direction == "max" else a < b

    def sort_key(self, value):
        """Ascending key that puts the best value first."""
        return -value if self.direction == "max" else value

    def get_config(self):
        return {"name": self.name, "direction": self.direction}

    def __repr__(self):
        return f"Objective(name={self.name!r}, direction={self.direction!r})"


class MedianPruner:
    """Optuna's median rule: after `warmup_epochs`, stop a trial whose best objective so far is
    worse than the median of the best-so-far, at the same epoch, of the finished trials
    (at least `min_trials` of them must have reached that epoch)."""

    def __init__(self, warmup_epochs=2, min_trials=5):
        self.warmup_epochs, self.min_trials = int(warmup_epochs), int(min_trials)

    def should_stop(self, curve, finished_curves, objective):
        epoch = len(curve)
        if epoch <= self.warmup_epochs:
            return False
        others = [_best_so_far(c[:epoch], objective) for c in finished_curves if len(c) >= epoch]
        if len(others) < self.min_trials:
            return False
        others.sort(key=objective.sort_key)
        middle = len(others) // 2
        median = others[middle] if len(others) % 2 else (others[middle - 1] + others[middle]) / 2
        return objective.is_better(median, _best_so_far(curve, objective))


class SuccessiveHalving:
    """Asynchronous successive halving: at the rungs min_epochs * reduction_factor**k epochs, a
    trial goes on only if its best objective so far is in the top 1/reduction_factor of the
    finished trials that reached the rung, itself included (it needs reduction_factor - 1 of them)."""

    def __init__(self, min_epochs=1, reduction_factor=3):
        self.min_epochs, self.reduction_factor = int(min_epochs), int(reduction_factor)
        if self.min_epochs < 1 or self.reduction_factor < 2:
            raise invalid_value("min_epochs, reduction_factor", "min_epochs >= 1 and reduction_factor >= 2",
                                (min_epochs, reduction_factor), "SuccessiveHalving")

    def should_stop(self, curve, finished_curves, objective):
        epoch, rung = len(curve), self.min_epochs
        while rung < epoch:
            rung *= self.reduction_factor
        if rung != epoch:
            return False
        scores = [_best_so_far(c[:epoch], objective) for c in finished_curves if len(c) >= epoch]
        if len(scores) < self.reduction_factor - 1:
            return False
        mine = _best_so_far(curve, objective)
        scores = sorted(scores + [mine], key=objective.sort_key)
        keep = max(1, len(scores) // self.reduction_factor)
        return objective.is_better(scores[keep - 1], mine)


PRUNERS = {"median": MedianPruner, "successive_halving": SuccessiveHalving}


def _best_so_far(curve, objective):
    return curve[objective.best_index(list(curve))]


@dataclass
class TrialSetup:
    """What every trial of one `run` shares (sent once to each worker)."""

    build_model: object
    x: object
    y: object
    validation_data: object
    fit_kwargs: dict
    objective: Objective
    pruner: object = None
    backend: str = field(default_factory=lambda: get_backend().name)
    floatx: str = field(default_factory=floatx)


@dataclass
class TrialSpec:
    """One trial: its place (stage, index), seed and parameters, plus the objective curves of
    the trials finished when it started (for pruning)."""

    stage: int
    index: int
    seed: int
    params: dict
    finished_curves: list = field(default_factory=list)


class Hyperparameters(dict):
    """The parameters of one trial, as passed to `build_model(hp)`: a dict whose missing keys
    say that the parameter is inactive (a conditional one) rather than just KeyError."""

    def __missing__(self, name):
        raise KeyError(f"Hyperparameter `{name}` is not set in this trial (it is conditional and "
                       f"inactive, or not in the space); use hp.get({name!r}, default). "
                       f"Set: {sorted(self)}.")


class BuildModelError(ValueError):
    """build_model returned something a trial cannot train."""


def build_checked(build_model, params, seed):
    """build_model(hp) under the trial's seed, checked to be a compiled model."""
    with gpudl_random.seeded(seed):
        model = build_model(Hyperparameters(params))
    if not isinstance(model, Sequential):
        raise BuildModelError(f"build_model must return a gpudl model; it returned {type(model).__name__}.")
    if not model.compiled:
        raise BuildModelError(f"build_model returned the uncompiled model '{model.name}': call "
                         f"model.compile(optimizer=..., loss=..., metrics=[...]) inside build_model.")
    return model


def fit_arguments(setup, params):
    """fit's keyword arguments: the shared ones, overridden by parameters named like them
    (batch_size in the space is passed to fit)."""
    from_space = {name: params[name] for name in FIT_PARAMETERS if name in params}
    return {**setup.fit_kwargs, **from_space}


FIT_PARAMETERS = ("batch_size", "epochs", "shuffle")


class TrialMonitor(Callback):
    """Follows the objective each epoch: keeps the best epoch's weights, stops on a non-finite
    loss (diverged) and asks the pruner whether to stop early."""

    def __init__(self, objective, pruner, finished_curves):
        self.objective, self.pruner, self.finished_curves = objective, pruner, finished_curves
        self.curve, self.best_weights, self.status, self.error = [], None, "ok", None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.objective.name not in logs:
            raise ValueError(f"The objective {self.objective.name!r} is not reported by fit; its logs have "
                             f"{sorted(logs)}. (val_* needs validation_data.)")
        loss, value = float(logs.get("loss", 0.0)), float(logs[self.objective.name])
        if not (math.isfinite(loss) and math.isfinite(value)):
            self.status, self.error = "failed", f"diverged: loss={loss}, {self.objective.name}={value} at epoch {epoch + 1}"
            self.model.stop_training = True
            return
        self.curve.append(value)
        if self.objective.best_index(self.curve) == len(self.curve) - 1:
            self.best_weights = self.model.get_weights()
        if self.pruner is not None and self.pruner.should_stop(self.curve, self.finished_curves, self.objective):
            self.status = "pruned"
            self.model.stop_training = True


def run_trial(setup, spec):
    """Run one trial: returns (record, model_bytes). The record is JSON-ready; model_bytes is the
    saved model with the best epoch's weights (None when the trial failed). Never raises for a
    failing trial: the error is recorded and the search goes on."""
    if get_backend().name != setup.backend:
        set_backend(setup.backend)
    set_floatx(setup.floatx)
    record = new_record(spec)
    start = time.perf_counter()
    model_bytes = None
    try:
        model = build_checked(setup.build_model, spec.params, spec.seed)
        monitor = TrialMonitor(setup.objective, setup.pruner, spec.finished_curves)
        kwargs = fit_arguments(setup, spec.params)
        kwargs["callbacks"] = [monitor] + list(kwargs.get("callbacks") or [])
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging trial is recorded, not warned about
            history = model.fit(setup.x, setup.y, validation_data=setup.validation_data, verbose=0, **kwargs)
        record["history"] = {key: [float(v) for v in values] for key, values in history.history.items()}
        record["epochs"] = len(history.epoch)
        record["curve"] = monitor.curve
        record["status"], record["error"] = monitor.status, monitor.error
        if monitor.curve and monitor.status != "failed":
            best = setup.objective.best_index(monitor.curve)
            record["objective"], record["best_epoch"] = monitor.curve[best], best + 1
            model.set_weights(monitor.best_weights)
            model_bytes = _model_bytes(model)
        elif monitor.status == "ok":
            record["status"], record["error"] = "failed", "fit ran no epoch"
    except Exception as error:  # the trial failed; the search records it and goes on
        record["status"] = "failed"
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=-3)
    record["seconds"] = time.perf_counter() - start
    return record, model_bytes


def new_record(spec, status="ok", error=None):
    """The JSON-ready result of a trial, before it runs (or when it could not report)."""
    return {"stage": spec.stage, "trial": spec.index, "seed": spec.seed, "params": dict(spec.params),
            "status": status, "objective": None, "best_epoch": None, "epochs": 0, "seconds": 0.0,
            "curve": [], "history": {}, "error": error}


def _model_bytes(model):
    """The model in gpudl's file format, as bytes (so any executor can send it back)."""
    with tempfile.TemporaryDirectory(prefix="gpudl-trial-") as directory:
        path = os.path.join(directory, "model.npz")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()
