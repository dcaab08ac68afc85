"""Keras's learning-rate schedules (PolynomialDecay, CosineDecayRestarts, CosineDecay with
warmup) against float64 hand computations and numbers from real Keras, and Keras's
serialize/deserialize dict form."""

import json
import math

import numpy as np
import pytest

import gpudl
from gpudl.optimizers.schedules import (CosineDecay, CosineDecayRestarts, ExponentialDecay, PolynomialDecay,
                                        deserialize, serialize)

STEPS = list(range(0, 40)) + [57, 100, 1000]


def test_polynomial_decay_equals_the_formula_and_stays_at_the_end_rate():
    schedule = PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=0.5)
    for step in STEPS:
        done = min(step, 10) / 10
        assert schedule(step) == pytest.approx((0.1 - 0.01) * (1 - done) ** 0.5 + 0.01, rel=1e-15, abs=1e-18)
    assert schedule(10) == schedule(500) == pytest.approx(0.01, rel=1e-15)


def test_polynomial_decay_cycle_restarts_over_longer_periods():
    schedule = PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0, cycle=True)
    for step in STEPS:
        period_end = 10 if step == 0 else 10 * -(-step // 10)  # the first multiple of 10 >= step
        expected = (0.1 - 0.01) * (1 - step / period_end) ** 2 + 0.01
        assert schedule(step) == pytest.approx(expected, rel=1e-15)
    assert schedule(10) == pytest.approx(0.01) and schedule(11) > schedule(10)  # restarted at 20


def sgdr_by_walking_the_periods(step, initial, first, t_mul, m_mul, alpha):
    """SGDR computed by walking period after period (not Keras's closed form)."""
    start, length, index = 0.0, float(first), 0
    while step >= start + length:
        start, length, index = start + length, length * t_mul, index + 1
    done = (step - start) / length
    return initial * ((1 - alpha) * m_mul**index * 0.5 * (1 + math.cos(math.pi * done)) + alpha)


@pytest.mark.parametrize("t_mul, m_mul, alpha", [(2.0, 0.5, 0.1), (1.0, 0.8, 0.05), (1.5, 1.0, 0.0)])
def test_cosine_decay_restarts_equals_walking_the_periods(t_mul, m_mul, alpha):
    schedule = CosineDecayRestarts(0.1, 7, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    for step in STEPS:
        expected = sgdr_by_walking_the_periods(step, 0.1, 7, t_mul, m_mul, alpha)
        assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cosine_decay_warmup_rises_linearly_then_decays_from_the_target():
    schedule = CosineDecay(0.01, 20, alpha=0.1, warmup_target=0.1, warmup_steps=5)
    for step in STEPS:
        if step < 5:
            expected = 0.01 + (0.1 - 0.01) * step / 5
        else:
            done = min(step - 5, 20) / 20
            expected = 0.1 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * done)) + 0.1)
        assert schedule(step) == pytest.approx(expected, rel=1e-15)
    assert CosineDecay(0.05, 10, warmup_steps=5)(3) == CosineDecay(0.05, 10)(3)  # no target: no warmup
    from_zero = CosineDecay(0, 1000, warmup_target=0.1, warmup_steps=1000)  # Keras's docstring example
    assert from_zero(0) == 0.0 and from_zero(250) == pytest.approx(0.025, rel=1e-15)


# Real Keras: /work/kerasvenv (Keras 3.15.1, JAX backend, jax_enable_x64, floatx float64), the script
#   print([float(s(t)) for t in (0, 1, 3, 6, 10, 13, 25, 31)]) for each schedule below.
# Keras rounds some intermediates to float32 (0.010000000149011612 is float32(0.01)): rel 1e-6.
KERAS_STEPS = (0, 1, 3, 6, 10, 13, 25, 31)
KERAS_VALUES = {
    "PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=0.5)":
        [0.1, 0.09538149682454625, 0.08529940238806681, 0.06692099788303084, 0.01, 0.01, 0.01, 0.01],
    "PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0, cycle=True)":
        [0.1, 0.0829, 0.0541, 0.024400000000000005, 0.01, 0.021025000000000002, 0.012499999999999999, 0.01455625],
    "CosineDecayRestarts(0.1, 7, t_mul=2.0, m_mul=0.5, alpha=0.1)":
        [0.1, 0.09554359555244446, 0.0650134426355362, 0.014456401765346528, 0.050091208815574655,
         0.0375067213177681, 0.03138589888811112, 0.02613119259476662],
    "CosineDecayRestarts(0.1, 5, t_mul=1.0, m_mul=0.8, alpha=0.05)":
        [0.1, 0.0909283047914505, 0.03782168954610825, 0.07374264383316041, 0.06580000000000001,
         0.026005881309509284, 0.036129600000000005, 0.027525589531250005],
    "CosineDecay(0.01, 20, alpha=0.1, warmup_target=0.1, warmup_steps=5)":
        [0.01, 0.028000000000000004, 0.064, 0.09944596886634827, 0.0868198037147522, 0.06890575885772705,
         0.010000000149011612, 0.010000000149011612],
}


@pytest.mark.parametrize("call", sorted(KERAS_VALUES))
def test_schedules_equal_real_keras(call):
    schedule = eval(call, {**vars(gpudl.schedules)})  # the same call Keras ran
    np.testing.assert_allclose([schedule(t) for t in KERAS_STEPS], KERAS_VALUES[call], rtol=1e-6)


def test_serialize_gives_keras_dict_and_deserialize_reads_keras_dicts():
    # Keras 3.15.1: keras.optimizers.schedules.serialize(ExponentialDecay(0.1, 10, 0.9)) and
    # serialize(CosineDecay(0.1, 10, warmup_target=0.5, warmup_steps=3))
    keras_exponential = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                         "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9,
                                    "staircase": False, "name": "ExponentialDecay"}, "registered_name": None}
    keras_cosine = {"module": "keras.optimizers.schedules", "class_name": "CosineDecay",
                    "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
                               "warmup_target": 0.5, "warmup_steps": 3}, "registered_name": None}
    assert serialize(ExponentialDecay(0.1, 10, 0.9)) == keras_exponential
    assert serialize(CosineDecay(0.1, 10, warmup_target=0.5, warmup_steps=3)) == keras_cosine
    cosine = deserialize(keras_cosine)
    assert isinstance(cosine, CosineDecay) and cosine(2) == pytest.approx(0.1 + 0.4 * 2 / 3, rel=1e-15)
    legacy = deserialize({"class_name": "ExponentialDecay", "config": keras_exponential["config"]})
    assert legacy(10) == pytest.approx(0.09, rel=1e-15)


@pytest.mark.parametrize("schedule", [
    PolynomialDecay(0.2, 30, end_learning_rate=0.0, power=3.0, cycle=True, name="poly"),
    CosineDecayRestarts(0.2, 9, t_mul=1.5, m_mul=0.7, alpha=0.2),
    CosineDecay(0.01, 40, alpha=0.05, warmup_target=0.2, warmup_steps=8),
], ids=lambda s: type(s).__name__)
def test_new_schedules_round_trip_through_json(schedule):
    again = deserialize(json.loads(json.dumps(serialize(schedule))))
    assert type(again) is type(schedule) and again.get_config() == schedule.get_config()
    assert [again(t) for t in STEPS] == [schedule(t) for t in STEPS]


def test_deserialize_takes_custom_schedules():
    class Halving(gpudl.schedules.LearningRateSchedule):
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, step):
            return self.rate / 2**step

        def get_config(self):
            return {"rate": self.rate}

    again = deserialize(serialize(Halving(0.4)), custom_objects={"Halving": Halving})
    assert again(2) == 0.1


def test_a_schedule_drives_an_optimizer_step_by_step():
    schedule = CosineDecay(0.01, 4, warmup_target=0.1, warmup_steps=2)
    optimizer = gpudl.optimizers.SGD(schedule)
    w = np.zeros(1)
    for step in range(8):
        assert optimizer.learning_rate == pytest.approx(schedule(step), rel=1e-15)
        before = w.copy()
        optimizer.apply([np.ones(1)], [w])
        np.testing.assert_allclose(before - w, schedule(step), rtol=1e-15)


def test_restarts_past_their_end_give_a_clear_error_when_the_step_comes():
    # t_mul < 1: all periods together last first_decay_steps / (1 - t_mul) = 20 steps
    optimizer = gpudl.optimizers.SGD(CosineDecayRestarts(0.1, 10, t_mul=0.5))
    optimizer.iterations = 20
    with pytest.raises(ValueError, match="gave nan at step 20; expected a non-negative number"):
        optimizer.apply([np.ones(1)], [np.zeros(1)])


@pytest.mark.parametrize("make, argument", [
    (lambda: PolynomialDecay(0.1, 0), "decay_steps"),
    (lambda: PolynomialDecay(0.1, 10, end_learning_rate=-0.1), "end_learning_rate"),
    (lambda: PolynomialDecay(0.1, 10, power=0.0), "power"),
    (lambda: CosineDecayRestarts(0.1, -3), "first_decay_steps"),
    (lambda: CosineDecayRestarts(0.1, 3, t_mul=0.0), "t_mul"),
    (lambda: CosineDecayRestarts(0.1, 3, m_mul=-1.0), "m_mul"),
    (lambda: CosineDecayRestarts(0.1, 3, alpha=2.0), "alpha"),
    (lambda: CosineDecay(0.1, 10, warmup_target=0.0, warmup_steps=3), "warmup_target"),
    (lambda: CosineDecay(0.1, 10, warmup_target=0.5, warmup_steps=-1), "warmup_steps"),
    (lambda: CosineDecay(0.0, 10), "initial_learning_rate"),
    (lambda: CosineDecay(-0.1, 10, warmup_target=0.5, warmup_steps=3), "initial_learning_rate"),
])
def test_bad_arguments_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`.*Received: {argument}="):
        make()
