"""Test-session setup. Triton chooses its interpreter when a kernel is defined, so this
runs before any test module imports triton: without a CUDA device the Triton kernels
run interpreted on the CPU (the CI case); set TRITON_INTERPRET yourself to override."""

import os

if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Keras itself (the reference in some tests) runs on JAX's CPU backend; it reads this once, at import.
os.environ.setdefault("KERAS_BACKEND", "jax")
