"""A process group of one under DataParallel trains bit-identically to no distribution at all
(tests/test_distribution.py runs this with torchrun's RANK=0, WORLD_SIZE=1)."""

import numpy as np

import gpudl
from distributed_scenarios import SCENARIOS


def run_all():
    return {f"{name}/{key}": value for name, scenario in SCENARIOS.items() for key, value in scenario().items()}


if __name__ == "__main__":
    alone = run_all()
    gpudl.distribution.initialize()
    gpudl.distribution.set_distribution(gpudl.distribution.DataParallel())
    together = run_all()
    for key, value in alone.items():
        np.testing.assert_array_equal(together[key], value, err_msg=key)
    gpudl.distribution.shutdown()
    print("bit-identical:", len(alone), "arrays")
