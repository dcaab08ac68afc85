"""Learning-rate schedules against the course's tables and Keras's documented formulas."""

import json
import math

import pytest

from gpudl.frontend.schedules import (
    CosineDecay,
    ExponentialDecay,
    InverseTimeDecay,
    KSqrtEpochDecay,
    PiecewiseConstantDecay,
    StaircaseDecay,
    deserialize,
    serialize,
)

# The course's tables: epochs 1, 2, 3, 4 (the lecture counts epochs from 1), alpha0 = 0.2.
COURSE_INVERSE_TIME = [0.1, 0.0667, 0.05, 0.04]  # 1 / (1 + 1 * epoch) * alpha0
COURSE_EXPONENTIAL = [0.19, 0.1805, 0.1715, 0.1629]  # 0.95 ** epoch * alpha0


@pytest.mark.parametrize("steps_per_epoch", [1, 7])
def test_inverse_time_decay_reproduces_course_table(steps_per_epoch):
    schedule = InverseTimeDecay(0.2, decay_steps=steps_per_epoch, decay_rate=1.0, staircase=True)
    # the lecture's "epoch e" is the rate once e epochs are complete: step e * steps_per_epoch
    rates = [schedule(epoch * steps_per_epoch) for epoch in (1, 2, 3, 4)]
    assert [round(rate, 4) for rate in rates] == COURSE_INVERSE_TIME
    assert rates == pytest.approx([0.2 / 2, 0.2 / 3, 0.2 / 4, 0.2 / 5], rel=1e-15)


@pytest.mark.parametrize("steps_per_epoch", [1, 7])
def test_exponential_decay_reproduces_course_table(steps_per_epoch):
    schedule = ExponentialDecay(0.2, decay_steps=steps_per_epoch, decay_rate=0.95, staircase=True)
    rates = [schedule(epoch * steps_per_epoch) for epoch in (1, 2, 3, 4)]
    assert [round(rate, 4) for rate in rates] == COURSE_EXPONENTIAL
    assert rates == pytest.approx([0.2 * 0.95, 0.2 * 0.9025, 0.2 * 0.857375, 0.2 * 0.81450625], rel=1e-14)


def test_epoch_schedules_are_constant_within_an_epoch_with_staircase():
    schedule = InverseTimeDecay(0.2, decay_steps=5, decay_rate=1.0, staircase=True)
    assert [schedule(step) for step in range(5)] == [0.2] * 5  # first epoch: alpha0
    assert [schedule(step) for step in range(5, 10)] == [0.1] * 5


def test_exponential_decay_keras_formula_smooth_and_staircase():
    smooth = ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96)
    stairs = ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96, staircase=True)
    assert smooth(0) == 0.1
    assert smooth(1500) == pytest.approx(0.1 * 0.96**1.5, rel=1e-15)
    assert stairs(1500) == pytest.approx(0.1 * 0.96, rel=1e-15)
    assert stairs(999) == 0.1


def test_inverse_time_decay_keras_formula_smooth():
    schedule = InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)
    assert schedule(3) == pytest.approx(0.1 / 2.5, rel=1e-15)
    assert InverseTimeDecay(0.1, 10, 0.5)(15) == pytest.approx(0.1 / 1.75, rel=1e-15)


def test_piecewise_constant_decay_keras_boundaries_are_inclusive():
    # Keras docs: 1.0 for the first 100001 steps, 0.5 for the next 10000, 0.1 after
    schedule = PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1])
    assert schedule(0) == 1.0
    assert schedule(100000) == 1.0
    assert schedule(100001) == 0.5
    assert schedule(110000) == 0.5
    assert schedule(110001) == 0.1
    assert schedule(10**9) == 0.1


def test_cosine_decay_keras_formula():
    schedule = CosineDecay(0.1, decay_steps=100, alpha=0.2)
    assert schedule(0) == pytest.approx(0.1, rel=1e-15)
    assert schedule(50) == pytest.approx(0.1 * (0.8 * 0.5 + 0.2), rel=1e-15)  # cos(pi/2) = 0
    assert schedule(25) == pytest.approx(0.1 * (0.8 * 0.5 * (1 + math.sqrt(0.5)) + 0.2), rel=1e-14)
    assert schedule(100) == pytest.approx(0.02, rel=1e-14)
    assert schedule(1000) == pytest.approx(0.02, rel=1e-14)  # stays at alpha * lr0
    assert CosineDecay(0.1, 100)(100) == pytest.approx(0.0, abs=1e-17)


def test_k_sqrt_epoch_decay_matches_course_formula():
    schedule = KSqrtEpochDecay(0.2, k=0.5, steps_per_epoch=10)
    for epoch in (1, 2, 3, 4, 9):
        assert schedule(epoch * 10) == pytest.approx(0.5 / math.sqrt(epoch) * 0.2, rel=1e-15)
    assert schedule(49) == pytest.approx(0.5 / 2.0 * 0.2, rel=1e-15)  # 4 epochs complete


def test_k_sqrt_decay_per_minibatch_guards_t_zero():
    schedule = KSqrtEpochDecay(0.2, k=1.0, steps_per_epoch=1)
    assert schedule(0) == pytest.approx(0.2, rel=1e-15)  # t = 0 uses t = 1: k * alpha0
    assert schedule(1) == pytest.approx(0.2, rel=1e-15)
    assert schedule(4) == pytest.approx(0.1, rel=1e-15)  # 1 / sqrt(4) * 0.2
    assert math.isfinite(schedule(0))


def test_staircase_decay_halves_every_n_epochs():
    schedule = StaircaseDecay(0.2, epochs_per_drop=3, steps_per_epoch=4)
    expected = {0: 0.2, 11: 0.2, 12: 0.1, 23: 0.1, 24: 0.05, 36: 0.025}
    assert {step: schedule(step) for step in expected} == pytest.approx(expected, rel=1e-15)
    assert StaircaseDecay(1.0, epochs_per_drop=1, factor=0.1)(2) == pytest.approx(0.01, rel=1e-15)


ALL_SCHEDULES = [
    ExponentialDecay(0.2, 3, 0.95, staircase=True),
    InverseTimeDecay(0.2, 3.5, 1.0),
    PiecewiseConstantDecay([10, 20], [0.3, 0.2, 0.1]),
    CosineDecay(0.1, 50, alpha=0.1),
    KSqrtEpochDecay(0.2, k=0.7, steps_per_epoch=3),
    StaircaseDecay(0.2, epochs_per_drop=2, steps_per_epoch=3, factor=0.3),
]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_config_round_trips_through_json(schedule):
    config = json.loads(json.dumps(schedule.get_config()))
    rebuilt = type(schedule).from_config(config)
    again = deserialize(json.loads(json.dumps(serialize(schedule))))
    assert type(again) is type(schedule)
    for step in (0, 1, 5, 17, 40, 100):
        assert rebuilt(step) == schedule(step)
        assert again(step) == schedule(step)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: ExponentialDecay(0.0, 10, 0.9), "initial_learning_rate"),
        (lambda: ExponentialDecay(-0.1, 10, 0.9), "initial_learning_rate"),
        (lambda: ExponentialDecay(0.1, 0, 0.9), "decay_steps"),
        (lambda: ExponentialDecay(0.1, 10, 0.0), "decay_rate"),
        (lambda: InverseTimeDecay(0.1, -5, 0.5), "decay_steps"),
        (lambda: InverseTimeDecay(0.1, 5, -0.5), "decay_rate"),
        (lambda: PiecewiseConstantDecay([10, 20], [0.1, 0.0, 0.01]), "values"),
        (lambda: PiecewiseConstantDecay([10, 20], [0.1, -0.05, 0.01]), "values"),
        (lambda: PiecewiseConstantDecay([20, 10], [0.1, 0.05, 0.01]), "boundaries"),
        (lambda: PiecewiseConstantDecay([10, 10], [0.1, 0.05, 0.01]), "boundaries"),
        (lambda: PiecewiseConstantDecay([10, 20], [0.1, 0.05]), "values"),
        (lambda: CosineDecay(0.1, 0), "decay_steps"),
        (lambda: CosineDecay(0.1, 10, alpha=1.5), "alpha"),
        (lambda: KSqrtEpochDecay(0.1, k=0.0), "k"),
        (lambda: KSqrtEpochDecay(0.1, steps_per_epoch=0), "steps_per_epoch"),
        (lambda: StaircaseDecay(0.1, epochs_per_drop=0), "epochs_per_drop"),
        (lambda: StaircaseDecay(0.1, epochs_per_drop=2, factor=0.0), "factor"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`.*Received: {argument}="):
        make()


def test_deserialize_unknown_class_raises():
    with pytest.raises(ValueError, match="class_name"):
        deserialize({"class_name": "NoSuchDecay", "config": {}})
