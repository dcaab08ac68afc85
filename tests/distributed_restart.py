"""torchrun's launch of distributed_scenarios.backed_up_fit: with --kill, rank 1 kills itself mid-run
on torchrun's first attempt, torchrun (--max-restarts) starts every process again and the run
resumes from its BackupAndRestore backup. Rank 0 writes the final weights to OUT_DIR/final.npz.

    torchrun --nproc_per_node=2 [--max-restarts=1] tests/distributed_restart.py OUT_DIR [--kill]
"""

import os
import sys

import gpudl
from distributed_scenarios import backed_up_fit

if __name__ == "__main__":
    gpudl.distribution.initialize()
    gpudl.distribution.set_distribution(gpudl.distribution.DataParallel())
    backed_up_fit(sys.argv[1], kill="--kill" in sys.argv[2:])
    print(f"rank {gpudl.collectives.rank()} attempt {os.environ.get('TORCHELASTIC_RESTART_COUNT')} done", flush=True)
    gpudl.distribution.shutdown()
