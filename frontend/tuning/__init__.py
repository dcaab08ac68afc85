"""Hyperparameter search as the course teaches it: random search on the right scales,
coarse to fine, panda (babysit one model) and caviar (many models in parallel)."""

from gpudl.frontend.tuning.panda import panda_callbacks, resume
from gpudl.frontend.tuning.search import GridSearch, RandomSearch, ResultsTable, compare_grid_vs_random
from gpudl.frontend.tuning.spaces import (Choice, IntUniform, LogUniform, OneMinusLogUniform, SearchSpace,
                                          Uniform)
from gpudl.frontend.tuning.trial import Hyperparameters, MedianPruner, Objective, SuccessiveHalving

__all__ = ["Choice", "GridSearch", "Hyperparameters", "IntUniform", "LogUniform", "MedianPruner", "Objective",
           "OneMinusLogUniform", "RandomSearch", "ResultsTable", "SearchSpace", "SuccessiveHalving", "Uniform",
           "compare_grid_vs_random", "panda_callbacks", "resume"]
