"""Bias and variance from train and dev error: the course's diagnosis and basic recipe.

    avoidable bias = train error - Bayes error
    variance       = dev error - train error

Decision rule: a figure is "high" when it is greater than `threshold`
(an absolute error rate, 0.05 = 5 percentage points by default). With Bayes error
about 0 this gives the course's four verdicts:
    train 1%,   dev 11%   high variance
    train 15%,  dev 16%   high bias
    train 15%,  dev 30%   high bias and high variance
    train 0.5%, dev 1%    low bias and low variance
and with Bayes error 15%, 15% / 16% is low bias and low variance.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from gpudl.errors import invalid_value

# In the course's order: fix bias first, then variance.
HIGH_BIAS_RECIPE = (
    "train a bigger network (more hidden units or more layers)",
    "train longer (or with a better optimizer such as Adam)",
    "try another architecture (architecture search)",
)
HIGH_VARIANCE_RECIPE = (
    "get more training data (or augment it)",
    "add regularization (L2, dropout)",
    "try another architecture (architecture search)",
)
DONE_RECIPE = ("done: train and dev error are both close to their targets; confirm on the test set",)

# History keys, tried in order: (train key, dev key, True if the key holds an accuracy).
HISTORY_KEYS = (
    ("accuracy", "val_accuracy", True),
    ("binary_accuracy", "val_binary_accuracy", True),
    ("categorical_accuracy", "val_categorical_accuracy", True),
    ("sparse_categorical_accuracy", "val_sparse_categorical_accuracy", True),
    ("error", "val_error", False),
)


@dataclass(frozen=True)
class Diagnosis:
    """What `diagnose` found. Errors are fractions in [0, 1]."""

    verdict: str  # "high bias", "high variance", "high bias and high variance", "low bias and low variance"
    train_error: float
    dev_error: float
    bayes_error: float
    avoidable_bias: float  # train_error - bayes_error
    variance: float  # dev_error - train_error
    high_bias: bool
    high_variance: bool
    threshold: float
    recipe: list  # next steps, in the order to try them

    def __str__(self):
        lines = [
            f"Diagnosis: {self.verdict}",
            f"  train error {self.train_error:.1%}, dev error {self.dev_error:.1%}, "
            f"Bayes error {self.bayes_error:.1%}",
            f"  avoidable bias {self.avoidable_bias:.1%} (train - Bayes), "
            f"variance {self.variance:.1%} (dev - train); high means above {self.threshold:.1%}",
            "  next steps:",
        ]
        lines += [f"    - {step}" for step in self.recipe]
        return "\n".join(lines)


def _errors_from_history(history):
    """(train_error, dev_error) from the last epoch of a History (or its .history dict)."""
    logs = history if isinstance(history, Mapping) else getattr(history, "history", None)
    if not isinstance(logs, Mapping):
        raise invalid_value(
            "history_or_errors", "a (train_error, dev_error) tuple or a History with a .history dict", history
        )
    for train_key, dev_key, is_accuracy in HISTORY_KEYS:
        if logs.get(train_key) and logs.get(dev_key):
            train, dev = float(logs[train_key][-1]), float(logs[dev_key][-1])
            return (1.0 - train, 1.0 - dev) if is_accuracy else (train, dev)
    wanted = ", ".join(f"{t!r}/{d!r}" for t, d, _ in HISTORY_KEYS)
    raise ValueError(
        f"Cannot diagnose this history: it needs a train and a validation accuracy or error "
        f"(one of the pairs {wanted}; compile with metrics=['accuracy'] and pass validation "
        f"data to fit). It has the keys: {sorted(logs)}"
    )


def _check_fraction(argument, value):
    is_number = isinstance(value, (int, float)) or hasattr(value, "__float__")
    if isinstance(value, bool) or not is_number or not 0.0 <= float(value) <= 1.0:
        raise invalid_value(argument, "an error rate in [0, 1]", value)
    return float(value)


def diagnose(history_or_errors, bayes_error=0.0, threshold=0.05):
    """Diagnose high bias / high variance and list the next steps (the basic recipe).

    Args:
        history_or_errors: a (train_error, dev_error) pair of fractions in [0, 1]
            (0.11 for 11%), or the History returned by fit (or its .history dict):
            its last epoch's 1 - "accuracy" and 1 - "val_accuracy" (also the
            binary_/categorical_/sparse_categorical_ variants), else "error" and
            "val_error" taken as error rates.
        bayes_error: the best achievable error (human-level error as a proxy), <= train error.
        threshold: a figure above this absolute error rate counts as high.

    Returns:
        A Diagnosis: verdict, avoidable_bias = train - bayes, variance = dev - train,
        recipe (list of next steps), and a readable str().
    """
    if isinstance(history_or_errors, (tuple, list)):
        if len(history_or_errors) != 2:
            raise invalid_value("history_or_errors", "a (train_error, dev_error) pair", history_or_errors)
        train_error, dev_error = history_or_errors
    else:
        train_error, dev_error = _errors_from_history(history_or_errors)
    train_error = _check_fraction("train_error", train_error)
    dev_error = _check_fraction("dev_error", dev_error)
    bayes_error = _check_fraction("bayes_error", bayes_error)
    if bayes_error > train_error:
        raise invalid_value(
            "bayes_error", f"at most the train error ({train_error}); no model beats Bayes error", bayes_error
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise invalid_value("threshold", "an error rate in (0, 1)", threshold)

    avoidable_bias = train_error - bayes_error
    variance = dev_error - train_error
    high_bias = avoidable_bias > threshold
    high_variance = variance > threshold
    if high_bias and high_variance:
        verdict, recipe = "high bias and high variance", HIGH_BIAS_RECIPE + HIGH_VARIANCE_RECIPE[:2]
    elif high_bias:
        verdict, recipe = "high bias", HIGH_BIAS_RECIPE
    elif high_variance:
        verdict, recipe = "high variance", HIGH_VARIANCE_RECIPE
    else:
        verdict, recipe = "low bias and low variance", DONE_RECIPE
    return Diagnosis(
        verdict=verdict,
        train_error=train_error,
        dev_error=dev_error,
        bayes_error=bayes_error,
        avoidable_bias=avoidable_bias,
        variance=variance,
        high_bias=high_bias,
        high_variance=high_variance,
        threshold=float(threshold),
        recipe=list(recipe),
    )
