"""Launches, host syncs and device bytes of one training step of the benchmark MLP
(gpudl.tools.bench.REFERENCE_MLP), counted on the CPU by running the triton and cupy backend
code against a recording stand-in for the device (gpudl.tools.count), beside the minimum
bytes a step must move and an H200 step-time estimate from those counts (issue 23).

    python perf/step_count.py [--json perf/step_count.json]      (same as: gpudl bench --count)
"""

import sys

from gpudl.tools import count

if __name__ == "__main__":
    count.main(sys.argv[1:])
