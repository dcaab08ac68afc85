"""The GPU kernels compile for real GPUs, on a machine without one.

Triton: every specialization the launchers can launch (each module's
triton_specializations(), computed with the launchers' own block pickers) is compiled
ahead of time for sm_80 and sm_90a by Triton's own compiler and the ptxas inside the
Triton wheel. CuPy: every kernel source the launchers hand to CuPy (CUPY_KERNELS) is
compiled by NVRTC for sm_80 and sm_90 with CuPy's options. Each compiled kernel's
registers, spills and shared memory come from ptxas -v; any spill, or shared memory
over the sm_80 limit, fails. The Triton table takes about 80 s cold on 2 cores, a few
seconds when Triton's cache (~/.triton/cache) already holds the kernels.
"""

import re

import numpy as np
import pytest

triton = pytest.importorskip("triton")

from gpudl import kernels  # noqa: E402
from gpudl.tools import selftest  # noqa: E402


def jit_kernels(module_name):
    """The @triton.jit kernels a kernel module defines (by their names, *_kernel)."""
    module = selftest.kernel_module(module_name)
    return {f"{module_name}.{name}" for name, value in vars(module).items()
            if name.endswith("_kernel") and hasattr(value, "fn")}


@pytest.fixture(scope="module")
def triton_rows():
    sections = [selftest.Section("triton-compile", family) for family in selftest.FAMILIES]
    return selftest.run_sections(sections, workers=2, quick=False)


def test_every_triton_kernel_compiles_for_sm80_and_sm90a_without_spills(triton_rows):
    failed = [row for row in triton_rows if row.result != "pass"]
    assert not failed, "\n".join(map(str, failed))
    expected = set().union(*(jit_kernels(name) for name in kernels.MODULES))
    compiled = {(row.kernel, row.where) for row in triton_rows}
    assert compiled == {(kernel, target) for kernel in expected for target, _ in selftest.TRITON_TARGETS}


def test_triton_table_covers_both_dtypes_and_every_constexpr_value(triton_rows):
    cases = {}
    for row in triton_rows:
        cases.setdefault(row.kernel, set()).add(row.case)
    for kernel, labels in cases.items():
        assert {label.split()[0] for label in labels} == {"fp32", "fp64"}, kernel
        flags = {}
        for label in labels:
            for name, value in re.findall(r"(RELU|RELU_GATE|DERIVE_KEY|FROM_VARIANCE|NESTEROV|LABELS|CLIP)=(\d)", label):
                flags.setdefault(name, set()).add(value)
        for name, values in flags.items():
            assert values == ({"0", "1", "2"} if name == "LABELS" else {"0", "1"}), (kernel, name)
    assert any("BLOCK_C=8 " in c for c in cases["batchnorm._normalize_kernel"])  # small shapes
    assert any("BLOCK_C=128 " in c for c in cases["batchnorm._normalize_kernel"])  # large shapes
    softmax_cases = cases["softmax_cross_entropy._softmax_cross_entropy_kernel"]
    assert {"labels=i32", "labels=i64"} <= {c.split()[-1] for c in softmax_cases}
    # Keras's clipped loss of a softmax output, for both label kinds
    assert {c.split()[1] for c in softmax_cases if "CLIP=1" in c} == {"LABELS=1", "LABELS=2"}


def test_every_cupy_kernel_compiles_with_nvrtc_for_sm80_and_sm90():
    rows = selftest.nvrtc_rows()
    failed = [row for row in rows if row.result != "pass"]
    assert not failed, "\n".join(map(str, failed))
    expected = {f"{name}.{kernel.name}" for name in kernels.MODULES
                for kernel in selftest.kernel_module(name).CUPY_KERNELS}
    assert {(r.kernel, r.case, r.where) for r in rows} == {
        (kernel, dtype, target) for kernel in expected for dtype in ("float32", "float64")
        for target, _ in selftest.NVRTC_TARGETS}
    softmax = [r for r in rows if r.kernel == "softmax_cross_entropy.softmax_xent"]
    # __shared__ T shared[4][256]: 4 KiB of float, 8 KiB of double
    assert {r.case: r.measure.split(", ")[-1] for r in softmax} == {"float32": "4096 B shared",
                                                                    "float64": "8192 B shared"}


def test_nvrtc_rejects_a_broken_kernel_and_reports_the_error():
    nvrtc = selftest.find_nvrtc()
    assert nvrtc is not None, "NVRTC missing: pip install -e '.[test]' installs nvidia-cuda-nvrtc"
    broken = "template<typename T> __global__ void k(T* x) { x[threadIdx.x] = undefined_name; }"
    ok, log = selftest.nvrtc_compile(nvrtc, broken, "k<float>", ["-arch=sm_80"])
    assert not ok and "undefined_name" in log


def test_a_spill_or_too_much_shared_memory_fails_the_resource_check():
    log = ("ptxas info    : Function properties for k\n"
           "ptxas         .     8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
           "ptxas info    : Used 255 registers, used 1 barriers, 2048 bytes smem, 400 bytes cmem[0]\n")
    assert selftest.parse_ptxas(log) == (255, 12, 2048)
    assert selftest.resource_row("k", "fp32", "sm_80", 255, 12, 2048).result == "FAIL"
    assert selftest.resource_row("k", "fp32", "sm_80", 40, 0, 163 * 1024 + 1).result == "FAIL"
    assert selftest.resource_row("k", "fp32", "sm_80", 40, 0, 163 * 1024).result == "pass"
    assert np.isinf(selftest.error_in_ulps(np.array([np.nan]), np.array([1.0]), np.float32, 1.0))
