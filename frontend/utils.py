"""gpudl.utils: set_random_seed."""

from gpudl.random import set_random_seed

__all__ = ["set_random_seed"]
