"""`gpudl selftest` on the CPU: the table, the verdict line and the exit status."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gpudl.tools.cuda_cpu import cupy_on_cpu
from gpudl.tools import selftest
from gpudl import kernels
from gpudl.kernels import _triton_util, dropout


def test_gpudl_selftest_quick_on_the_cpu_passes_every_section(tmp_path):
    command = [sys.executable, "-m", "gpudl.tools.cli", "selftest", "--quick", "--json", str(tmp_path / "rows.json")]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert lines[0].split() == list(selftest.Row._fields)
    assert lines[-1].startswith("selftest PASS: ") and " 0 failed" in lines[-1]
    rows = [selftest.Row(**row) for row in json.loads((tmp_path / "rows.json").read_text())]
    assert len(rows) == len(lines) - 2
    assert {row.where for row in rows} == {"sm_90a", "sm_90", "Triton interpreter", "CUDA on CPU (g++)"}
    kernels = {row.kernel for row in rows}
    for kernel in ("batchnorm._normalize_kernel", "dropout.dropout_kernel", "triton dropout rate=0.3",
                   "cupy softmax_cross_entropy", "cupy adam", "optimizer_updates.gpudl_adam"):
        assert kernel in kernels


def test_a_kernel_that_disagrees_fails_its_row_and_the_verdict(monkeypatch):
    planted = dropout._CUPY_SOURCE.replace("long long i = first + lane;", "long long i = first + 3 - lane;")
    assert planted != dropout._CUPY_SOURCE
    monkeypatch.setattr(dropout, "_CUPY_DROPOUT", _triton_util.CupyRaw(planted, "dropout_kernel"))
    with cupy_on_cpu():
        checks = selftest.KernelChecks("cupy", "CUDA on CPU", np.asarray, np.asarray)
        checks.dropout((17, 33), np.float32)
    assert checks.rows and all(row.result == "FAIL" for row in checks.rows)
    line = selftest.verdict(checks.rows, 1.0)
    assert line.startswith("selftest FAIL") and f"{len(checks.rows)} failed" in line


def test_exit_status_is_nonzero_when_any_row_failed(monkeypatch, capsys):
    rows = [selftest.Row("kernel", "k", "c", "w", "m", "pass"), selftest.Row("compile", "k", "c", "w", "m", "FAIL")]
    monkeypatch.setattr(selftest, "selftest", lambda quick, workers: rows)
    assert selftest.main(["--quick", "--workers", "1"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("selftest FAIL: 1 passed, 1 failed")
    monkeypatch.setattr(selftest, "selftest", lambda quick, workers: [])
    assert selftest.main([]) == 1  # nothing ran: not a pass


def test_selftest_rejects_a_non_positive_worker_count():
    with pytest.raises(SystemExit, match="--workers"):
        selftest.main(["--workers", "0"])


def test_fit_check_compares_a_gpu_backend_with_numpy():
    """The GPU fit check's code, on the Triton interpreter (the device run does 200 steps)."""
    (row,) = selftest.fit_rows(["triton"], steps=6)
    assert row.result == "pass", row


def test_an_op_of_the_list_that_no_check_runs_fails_the_coverage_row(monkeypatch):
    extra = kernels.Op("dropout_twice", "dropout", "dropout")
    monkeypatch.setattr(kernels, "OPS", kernels.OPS + (extra,))
    checks = selftest.KernelChecks("triton", "Triton interpreter", np.asarray, np.asarray)
    checks.launched = {op.name for op in kernels.OPS[:-1]}
    checks.record_coverage()
    (row,) = checks.rows
    assert row.kernel == "triton op list" and row.result == "FAIL" and row.measure == "not checked: dropout_twice"
