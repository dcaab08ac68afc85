"""Bias/variance diagnosis against the course's four examples and its basic recipe."""

from types import SimpleNamespace

import pytest

from gpudl.frontend.diagnosis import diagnose


@pytest.mark.parametrize(
    "train_error, dev_error, verdict",
    [
        (0.01, 0.11, "high variance"),
        (0.15, 0.16, "high bias"),
        (0.15, 0.30, "high bias and high variance"),
        (0.005, 0.01, "low bias and low variance"),
    ],
)
def test_course_examples_with_bayes_error_zero(train_error, dev_error, verdict):
    result = diagnose((train_error, dev_error))
    assert result.verdict == verdict
    assert result.avoidable_bias == pytest.approx(train_error - 0.0, abs=1e-15)
    assert result.variance == pytest.approx(dev_error - train_error, abs=1e-15)


def test_high_variance_recipe_is_more_data_and_regularization():
    recipe = " ".join(diagnose((0.01, 0.11)).recipe)
    assert "more training data" in recipe and "regularization" in recipe
    assert "bigger network" not in recipe


def test_high_bias_recipe_is_bigger_network_and_train_longer():
    recipe = " ".join(diagnose((0.15, 0.16)).recipe)
    assert "bigger network" in recipe and "train longer" in recipe and "architecture" in recipe
    assert "more training data" not in recipe


def test_both_recipe_fixes_bias_first():
    recipe = diagnose((0.15, 0.30)).recipe
    bias_step = next(i for i, step in enumerate(recipe) if "bigger network" in step)
    variance_step = next(i for i, step in enumerate(recipe) if "more training data" in step)
    assert bias_step < variance_step


def test_bayes_error_fifteen_percent_makes_fifteen_sixteen_low_bias():
    result = diagnose((0.15, 0.16), bayes_error=0.15)
    assert not result.high_bias and not result.high_variance
    assert result.verdict == "low bias and low variance"
    assert result.avoidable_bias == pytest.approx(0.0, abs=1e-15)
    assert result.variance == pytest.approx(0.01, abs=1e-15)


def test_history_uses_last_epoch_accuracy():
    logs = {"loss": [0.9, 0.5], "accuracy": [0.7, 0.99], "val_accuracy": [0.6, 0.89]}
    history = SimpleNamespace(history=logs)
    result = diagnose(history)
    assert result.train_error == pytest.approx(0.01, abs=1e-12)
    assert result.dev_error == pytest.approx(0.11, abs=1e-12)
    assert result.verdict == "high variance"


def test_history_error_keys_are_used_without_accuracy():
    result = diagnose({"error": [0.3, 0.15], "val_error": [0.4, 0.30]})
    assert result.verdict == "high bias and high variance"


def test_history_without_validation_metrics_raises_clearly():
    history = SimpleNamespace(history={"loss": [0.5], "accuracy": [0.9]})
    with pytest.raises(ValueError, match="val_accuracy"):
        diagnose(history)


def test_str_reads_as_a_report():
    text = str(diagnose((0.01, 0.11)))
    assert "high variance" in text
    assert "11.0%" in text and "10.0%" in text
    assert "regularization" in text


@pytest.mark.parametrize(
    "args, kwargs, argument",
    [
        ((( -0.1, 0.2),), {}, "train_error"),
        (((0.1, 1.2),), {}, "dev_error"),
        (((0.1, 0.2),), {"bayes_error": 0.15}, "bayes_error"),
        (((0.1, 0.2),), {"bayes_error": -0.01}, "bayes_error"),
        (((0.1, 0.2, 0.3),), {}, "history_or_errors"),
        (((0.1, 0.2),), {"threshold": 0.0}, "threshold"),
    ],
)
def test_bad_input_raises_naming_the_argument(args, kwargs, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        diagnose(*args, **kwargs)
