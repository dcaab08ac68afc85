"""Gradient checking as the course defines it.

    theta = all parameters flattened;  J(theta) = loss + regularization penalty
    d_approx[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)     (two-sided)
    difference  = ||d_approx - d||_2 / (||d_approx||_2 + ||d||_2)
about 1e-7: fine; about 1e-5: look again; 1e-3 or more: a bug. Runs in float64 on a
copy of a float32 model, with dropout switched off, and restores every parameter.
"""

from dataclasses import dataclass, field

import numpy as np

from gpudl.backend import get_backend
from gpudl.saving import training_state

FINE_BELOW = 1e-6  # "about 1e-7" and less
BUG_FROM = 1e-3     # between the two: "about 1e-5, look again"


@dataclass
class GradientCheckResult:
    """`difference` over all parameters, the course's `verdict`, and per-parameter rows
    (name, difference, largest absolute error) that point at a wrong gradient."""

    difference: float
    verdict: str
    parameters: list = field(default_factory=list)

    @property
    def worst(self):
        return max(self.parameters, key=lambda row: row[1])

    def __str__(self):
        lines = [f"gradient check: difference {self.difference:.3e} -> {self.verdict}"]
        lines += [f"  {name:<40s} difference {diff:.3e}  max |error| {err:.3e}"
                  for name, diff, err in self.parameters]
        return "\n".join(lines)


def relative_difference(approx, analytic, floor=0.0):
    """||approx - analytic|| / max(||approx|| + ||analytic||, floor); 0 when both are zero."""
    denominator = max(np.linalg.norm(approx) + np.linalg.norm(analytic), floor)
    return float(np.linalg.norm(approx - analytic) / denominator) if denominator else 0.0


def verdict(difference):
    """The course's reading of a difference: "fine", "look again" or "bug"."""
    if difference < FINE_BELOW:
        return "fine"
    return "look again" if difference < BUG_FROM else "bug"


def gradient_check(model, x, y, epsilon=1e-7, custom_objects=None):
    """Compare the model's backward pass with two-sided differences of J on (x, y)."""
    if not model.built:
        raise ValueError(f"gradient_check needs a built model; model '{model.name}' was never built "
                         f"(call model.build(input_shape), fit or predict first).")
    if not model.compiled:
        raise ValueError(f"gradient_check needs a compiled model (it checks the compiled loss); "
                         f"call model.compile on '{model.name}' first.")
    if model.dtype != "float64" and not hasattr(model, "clone"):
        raise ValueError(f"gradient_check runs in float64; model '{model.name}' is {model.dtype} and cannot be cloned "
                         f"(a subclassed or functional model): build it with dtype='float64' and check that one.")
    work = model if model.dtype == "float64" else model.clone("float64", custom_objects)
    x, y = work._check_xy(x, y)
    saved = work.get_weights()
    dropouts = training_state.random_layers(work).values()  # dropout and noise: off while checking
    for layer in dropouts:
        layer.enabled = False
    try:
        theta, grads = work.arena.params, work.arena.grads

        def cost():
            return work._loss_and_gradient(x, y, training=True)[0] + work.regularization_loss()

        _, d_output, _ = work._loss_and_gradient(x, y, training=True)
        work.backward(d_output)
        analytic = get_backend().to_numpy(grads).astype(np.float64)
        approx = np.empty_like(analytic)
        for i in range(theta.size):
            original = theta[i]
            theta[i] = original + epsilon
            plus = cost()
            theta[i] = original - epsilon
            minus = cost()
            theta[i] = original
            approx[i] = (plus - minus) / (2 * epsilon)
    finally:
        for layer in dropouts:
            layer.enabled = True
        work.set_weights(saved)
    rows = []
    for p, start, stop in zip(work.arena.parameters, work.arena.offsets[:-1], work.arena.offsets[1:]):
        a, g = approx[start:stop], analytic[start:stop]
        # floor: a gradient that is truly zero (a bias before batch norm) reads ~0, not 0/0
        rows.append((p.path, relative_difference(a, g, floor=epsilon), float(np.abs(a - g).max())))
    difference = relative_difference(approx, analytic)
    return GradientCheckResult(difference, verdict(difference), rows)
