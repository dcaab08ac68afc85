"""The hard cases of the fused kernels' checks: the one list that `gpudl selftest` and the
kernel tests (tests/test_kernels_triton.py, tests/test_kernel_references.py) share.

Each case is chosen so that a realistic wrong kernel fails it: a batch of mean 1e3 and
more (a one-pass variance E[x^2] - E[x]^2 cancels to noise), logits of scale 30 and 1e4
(a softmax without max-subtraction overflows: exp(90) is past float32's range, exp(1e4)
past float64's), running statistics updated in place, Adam at its first step (bias
corrections of 1 - beta^1) and at later ones, widths of 1, odd widths and widths over one
block. `tier`: 0 runs everywhere (`gpudl selftest --quick` and the tests), 1 in the tests
and the full selftest, 2 only on a device (sizes over many programs).
"""

from typing import NamedTuple

import numpy as np

DTYPES = (np.float32, np.float64)


class BatchnormCase(NamedTuple):
    N: int
    C: int
    mean: float  # of the data: from 1e3 a one-pass variance fails
    spread: float  # its standard deviation
    tier: int = 0


BATCHNORM = (
    BatchnormCase(1, 7, 0.0, 1.0),
    BatchnormCase(70, 5, 0.0, 1.0),
    BatchnormCase(200, 130, 0.0, 1.0),
    BatchnormCase(96, 9, 1e3, 1.0),
    BatchnormCase(33, 1, 0.0, 1e-20, tier=1),
    BatchnormCase(96, 9, 1e4, 1.0, tier=1),
    BatchnormCase(4097, 130, 0.0, 1.0, tier=2),
    BatchnormCase(2000, 257, 1e3, 1.0, tier=2),
)


def batchnorm_inputs(rng, case, dtype):
    """(x, gamma, beta, running_mean, running_var, dy) of a case, fresh from `rng`."""
    x = (case.mean + case.spread * rng.standard_normal((case.N, case.C))).astype(dtype)
    gamma, beta, running_mean = (rng.standard_normal(case.C).astype(dtype) for _ in range(3))
    running_var = rng.random(case.C).astype(dtype) + dtype(0.5)
    dy = rng.standard_normal((case.N, case.C)).astype(dtype)
    return x, gamma, beta, running_mean, running_var, dy


class DropoutCase(NamedTuple):
    shape: tuple
    rate: float
    seed: int  # 64 bits: the high word must reach the key
    tier: int = 0


DROPOUT = (
    DropoutCase((1,), 0.5, 0),
    DropoutCase((3, 5), 0.3, 1),
    DropoutCase((17, 33), 0.5, 2**31 + 7),
    DropoutCase((1100,), 0.9, 2**63 + 12345),
    DropoutCase((64, 65), 0.999, 2**64 - 1),
    # Philox at counter 0, key 0 gives word 3 = 0x9B00DBD8 (Random123): a rate whose threshold is
    # exactly that word keeps it, so a strict comparison (word > threshold) fails
    DropoutCase((4,), 0x9B00DBD8 / 2**32, 0),
    DropoutCase((5, 7), 0.0, 5, tier=1),
    DropoutCase(((1 << 20) + 3,), 0.3, 2**63 + 5, tier=2),
    DropoutCase((513, 1001), 0.5, 2**64 - 1, tier=2),
)
# an element offset (a data-parallel process's elements of a larger array): the first counter's
# lanes 0-2 are not the array's, and the counters cross 2**32 (the high word) after 7 elements
DROPOUT_OFFSET = 4 * (2**32 - 2) + 3


class SoftmaxCase(NamedTuple):
    m: int
    C: int
    scale: float  # logits are scale * N(0, 1): 30 and 1e4 need the max-subtraction
    tier: int = 0


SOFTMAX = (
    SoftmaxCase(1, 2, 1.0),
    SoftmaxCase(3, 7, 30.0),
    SoftmaxCase(4, 4097, 30.0),
    SoftmaxCase(4, 10, 1e4),
    SoftmaxCase(1, 100_003, 1.0, tier=1),
    SoftmaxCase(5, 9, 1e-30, tier=1),
    SoftmaxCase(2, 100_003, 30.0, tier=2),
    SoftmaxCase(64, 1000, 1e4, tier=2),
)


KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the clip of a softmax output's probabilities


def softmax_inputs(rng, case, dtype):
    """(logits, index labels, soft labels) of a case, fresh from `rng`; row 0's index label
    is its smallest logit (confidently wrong when the logits spread wide: clipped at KERAS_EPSILON)."""
    logits = (case.scale * rng.standard_normal((case.m, case.C))).astype(dtype)
    index = rng.integers(0, case.C, case.m)
    index[0] = logits[0].argmin()
    soft = rng.random((case.m, case.C)).astype(dtype)
    soft /= soft.sum(axis=1, keepdims=True)
    return logits, index, soft


# optimizer updates: one learning rate per row of a 4-row step table
RATES = (1e-3, 0.1, 0.01, 0.05)


class OptimizerCase(NamedTuple):
    rule: str  # the function's name in gpudl.kernels.optimizer_updates
    buffers: int  # param, grad and the rule's slots
    constants: tuple  # the arguments after the step state
    first_step: int = 0  # adam: the 0-based step of the step table's first row
    weight_decay: float = 0.0  # adam: AdamW's decoupled decay


OPTIMIZER = (
    OptimizerCase("sgd", 2, ()),
    OptimizerCase("sgd_momentum", 3, (0.9,)),
    OptimizerCase("sgd_momentum", 3, (0.9, True)),
    OptimizerCase("ema_momentum", 3, (0.9,)),
    OptimizerCase("rmsprop", 3, (0.9, 1e-7)),
    OptimizerCase("adam", 4, (0.9, 0.999, 1e-8), first_step=0),  # step 0 of the table: t = 1
    OptimizerCase("adam", 4, (0.9, 0.999, 1e-8), first_step=1000, weight_decay=0.01),  # AdamW, t near 1000
)
OPTIMIZER_STEPS = (0, 6)  # step counters: row 0 (Adam's first step) and row 6 % 4 = 2
OPTIMIZER_SIZES = ((1, 0), (1025, 0), (3001, 0), (1_000_003, 2))  # (n, tier)


def optimizer_step_table(case):
    """The case's step table: the rates as a column, or Adam's bias-corrected rows."""
    if case.rule != "adam":
        return np.array(RATES)[:, None]
    from gpudl.kernels.optimizer_updates import adam_step_table

    return adam_step_table(RATES, case.first_step, *case.constants[:2], case.weight_decay)


def optimizer_inputs(rng, case, n, dtype):
    """The case's buffers (param, grad, slots), fresh from `rng`; every third gradient tiny
    (the first Adam step is still ~lr), second moments non-negative."""
    buffers = [rng.standard_normal(n).astype(dtype) for _ in range(case.buffers)]
    buffers[1][::3] *= dtype(1e-6)
    if case.rule in ("rmsprop", "adam"):
        buffers[-1] = np.abs(buffers[-1])
    return buffers


def upto(cases, tier):
    """The cases of `tier` and below."""
    return tuple(case for case in cases if case.tier <= tier)
