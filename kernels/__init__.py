"""Fused ops: one module per op, each holding its NumPy reference (the spec)
and, where written, its Triton and CuPy kernels with the same contract."""
