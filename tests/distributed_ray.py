"""Ray Train's TorchTrainer launching a data-parallel gpudl fit on 2 CPU workers (Ray makes the
gloo process group; gpudl.distribution.initialize() finds it). Rank 0 writes its weights to
OUT_DIR/ray.npz.   python tests/distributed_ray.py OUT_DIR
"""

import os
import sys


def train_loop_per_worker(config):
    sys.path.insert(0, config["tests_dir"])
    import numpy as np

    import gpudl
    from distributed_scenarios import SCENARIOS

    gpudl.distribution.initialize()  # the process group Ray Train made
    gpudl.distribution.set_distribution(gpudl.distribution.DataParallel())
    results = SCENARIOS["batch_norm"]()
    if gpudl.collectives.is_rank_zero():
        np.savez(os.path.join(config["out_dir"], "ray.npz"), **results)


if __name__ == "__main__":
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out_dir = os.path.abspath(sys.argv[1])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"GPUDL_BACKEND": "numpy", "OMP_NUM_THREADS": "1"}})
    trainer = TorchTrainer(train_loop_per_worker,
                           train_loop_config={"out_dir": out_dir, "tests_dir": os.path.dirname(os.path.abspath(__file__))},
                           scaling_config=ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1}),
                           run_config=RunConfig(storage_path=os.path.join(out_dir, "ray_results")))
    trainer.fit()
    ray.shutdown()
    print("ray train done")
