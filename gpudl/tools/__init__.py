"""The tools apart from the library: the `gpudl` command (cli), `gpudl bench`, `gpudl
selftest` and the CUDA-on-CPU harness the selftest and the tests run the CuPy kernels in.

They import the library; the library never imports them."""
