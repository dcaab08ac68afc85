"""`gpudl selftest` on the CPU: the table, the verdict line and the exit status."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gpudl.tools.cuda_cpu import cupy_on_cpu
from gpudl.tools import cases, selftest
from gpudl import kernels
from gpudl.kernels import _triton_util, batchnorm, dropout, optimizer_updates, softmax_cross_entropy


def test_gpudl_selftest_quick_on_the_cpu_passes_every_section(tmp_path):
    command = [sys.executable, "-m", "gpudl.tools.cli", "selftest", "--quick", "--json", str(tmp_path / "rows.json")]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert lines[0].split() == list(selftest.Row._fields)
    assert lines[-1].startswith("selftest PASS: ") and " 0 failed" in lines[-1] and " 0 skipped" in lines[-1]
    assert (f"executed in {selftest.CPU_WHERE['cupy']} and {selftest.CPU_WHERE['triton']}; "
            "not run on a GPU") in lines[-1]
    rows = [selftest.Row(**row) for row in json.loads((tmp_path / "rows.json").read_text())]
    assert len(rows) == len(lines) - 2
    assert {row.where for row in rows} == {"sm_90a", "sm_90", *selftest.CPU_WHERE.values(),
                                           "Triton interpreter (streams recorded)"}
    assert {row.check for row in rows} == {"compile", "kernel", "overflow", "stream"}
    kernels = {row.kernel for row in rows}
    for kernel in ("batchnorm._normalize_kernel", "dropout.dropout_kernel", "triton dropout rate=0.3",
                   "cupy softmax_cross_entropy", "cupy adam", "optimizer_updates.gpudl_adam"):
        assert kernel in kernels


def test_a_kernel_that_disagrees_fails_its_row_and_the_verdict(monkeypatch):
    # each element takes its counter's word 3 - lane (in bounds at any offset)
    planted = dropout._CUPY_SOURCE.replace("bool keep = words[lane] >= threshold", "bool keep = words[3 - lane] >= threshold")
    assert planted != dropout._CUPY_SOURCE
    monkeypatch.setattr(dropout, "_CUPY_DROPOUT", _triton_util.CupyRaw(planted, "dropout_kernel"))
    with cupy_on_cpu():
        checks = selftest.KernelChecks("cupy", "CUDA on CPU", np.asarray, np.asarray)
        checks.dropout(case_named(cases.DROPOUT, shape=(17, 33)), np.float32)
    assert checks.rows and all(row.result == "FAIL" for row in checks.rows)
    line = selftest.verdict(checks.rows, 1.0)
    assert line.startswith("selftest FAIL") and f"{len(checks.rows)} failed" in line


def test_exit_status_is_nonzero_when_any_row_failed(monkeypatch, capsys):
    rows = [selftest.Row("kernel", "k", "c", "w", "m", "pass"), selftest.Row("compile", "k", "c", "w", "m", "FAIL")]
    monkeypatch.setattr(selftest, "selftest", lambda quick, workers, families: rows)
    assert selftest.main(["--quick", "--workers", "1"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("selftest FAIL: 1 passed, 1 failed")
    monkeypatch.setattr(selftest, "selftest", lambda quick, workers, families: [])
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


# --- planted bugs: each must fail its row, naming the kernel --------------------------
# The fakes stand in for a launcher of gpudl.kernels.OPS (kernels.implementation reads the
# module attribute), so each check runs exactly as in `gpudl selftest`.

def triton_checks():
    return selftest.KernelChecks("triton", "Triton interpreter", np.array, np.asarray)


def case_named(case_list, **fields):
    return next(c for c in case_list if all(getattr(c, k) == v for k, v in fields.items()))


@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_an_update_that_writes_garbage_into_the_parameters_fails_its_row(monkeypatch, rule):
    """Before the selftest copied the buffers, launcher and reference updated the same array:
    12345.0 in every parameter passed with 0 ulp."""
    real = getattr(optimizer_updates, rule + "_triton")

    def planted(param, *rest):
        real(param, *rest)
        param[...] = 12345.0

    monkeypatch.setattr(optimizer_updates, rule + "_triton", planted)
    checks = triton_checks()
    checks.optimizer(case_named(cases.OPTIMIZER, rule=rule), 1025, 6, np.float32)
    (row,) = checks.rows
    assert row.kernel == f"triton {rule}" and row.result == "FAIL", row


def test_an_update_that_never_happens_fails_its_row(monkeypatch):
    monkeypatch.setattr(optimizer_updates, "adam_triton", lambda *args: None)
    checks = triton_checks()
    checks.optimizer(case_named(cases.OPTIMIZER, rule="adam", first_step=0), 1025, 0, np.float32)
    assert checks.rows[0].kernel == "triton adam" and checks.rows[0].result == "FAIL"


@pytest.mark.parametrize("which", [3, 4])  # running_mean, running_var
def test_batchnorm_running_statistics_left_stale_fail_the_forward_row(monkeypatch, which):
    real = batchnorm.forward_train_triton

    def planted(*args):
        stale = args[which].copy()
        out = real(*args)
        args[which][...] = stale  # the launcher forgot the in-place update
        return out

    monkeypatch.setattr(batchnorm, "forward_train_triton", planted)
    checks = triton_checks()
    checks.batchnorm(cases.BATCHNORM[1], np.float32, False)
    row = checks.rows[0]
    assert row.kernel == "triton batchnorm forward_train" and row.result == "FAIL", row
    assert all(r.result == "pass" for r in checks.rows[1:])


def one_pass_forward_train(x, gamma, beta, running_mean, running_var, momentum, epsilon, relu=False):
    """Batch-norm forward with the one-pass variance E[x^2] - E[x]^2 (cancels for large means)."""
    mean = x.mean(axis=0)
    var = np.maximum((x * x).mean(axis=0) - mean * mean, 0)
    rstd = (1 / np.sqrt(var + x.dtype.type(epsilon))).astype(x.dtype)
    running_mean *= momentum
    running_mean += (1 - momentum) * mean
    running_var *= momentum
    running_var += (1 - momentum) * var
    y = gamma * (x - mean) * rstd + beta
    return (np.maximum(y, 0) if relu else y), mean, rstd


@pytest.mark.parametrize("dtype", cases.DTYPES)
def test_a_one_pass_batchnorm_variance_fails_the_large_mean_case(monkeypatch, dtype):
    monkeypatch.setattr(batchnorm, "forward_train_triton", one_pass_forward_train)
    large_mean = [c for c in cases.upto(cases.BATCHNORM, 0) if c.mean >= 1e3]
    assert large_mean, "the quick cases need a batch of large mean"
    checks = triton_checks()
    checks.batchnorm(large_mean[0], dtype, False)
    row = checks.rows[0]
    assert row.kernel == "triton batchnorm forward_train" and row.result == "FAIL", row


def softmax_without_max_subtraction(logits):
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_without_max_subtraction(logits, labels, dlogits=None, epsilon=0.0):  # the exact form only
    m, C = logits.shape
    a = softmax_without_max_subtraction(logits)
    y = np.eye(C, dtype=logits.dtype)[labels] if labels.ndim == 1 else labels
    loss = np.asarray(-(y * np.log(a)).sum() / m)
    dz = (a - y) / m
    if dlogits is not None:
        dlogits[...] = dz
        dz = dlogits
    return loss, dz


@pytest.mark.parametrize("dtype", cases.DTYPES)
def test_a_softmax_without_max_subtraction_fails_the_large_logit_cases(monkeypatch, dtype):
    monkeypatch.setattr(softmax_cross_entropy, "softmax_triton", softmax_without_max_subtraction)
    monkeypatch.setattr(softmax_cross_entropy, "softmax_cross_entropy_triton", cross_entropy_without_max_subtraction)
    checks = triton_checks()
    with np.errstate(all="ignore"):
        for case in cases.upto(cases.SOFTMAX, 0):
            checks.softmax_cross_entropy(case, dtype)
    failed = {(row.kernel, row.case.split(" labels")[0].split(" index")[0].split(" soft")[0])
              for row in checks.rows if row.result == "FAIL"}
    scale = 30 if dtype == np.float32 else 1e4  # exp(90) overflows float32, exp(1e4) float64
    for kernel in ("triton softmax", "triton softmax_cross_entropy"):
        assert any(k == kernel and f"logits x{scale:g}" in case for k, case in failed), (kernel, failed)


def test_float64_updates_computed_in_float32_fail_the_quick_selftest(monkeypatch):
    real = optimizer_updates.adam_triton

    def planted(param, grad, m, v, *rest):
        buffers = [a.astype(np.float32) for a in (param, grad, m, v)]
        real(*buffers, *rest)
        for a, b in zip((param, grad, m, v), buffers):
            a[...] = b

    monkeypatch.setattr(optimizer_updates, "adam_triton", planted)
    rows = [r for r in selftest.cpu_kernel_rows("triton", "optimizer_updates", quick=True) if r.kernel == "triton adam"]
    assert {r.result for r in rows if r.case.startswith("float32")} == {"pass"}
    float64 = [r for r in rows if r.case.startswith("float64")]
    assert float64 and {r.result for r in float64} == {"FAIL"}


def test_a_launcher_that_raises_fails_its_rows_and_the_family_goes_on(monkeypatch):
    def planted(*args):
        raise RuntimeError("illegal memory access")

    monkeypatch.setattr(optimizer_updates, "sgd_triton", planted)
    checks = triton_checks()
    checks.run_family("optimizer_updates", 0, (np.float32,))
    failed = [r for r in checks.rows if r.result == "FAIL"]
    assert failed and {r.kernel for r in failed} == {"triton sgd"}
    assert "RuntimeError: illegal memory access" in failed[0].measure
    assert any(r.kernel == "triton adam" and r.result == "pass" for r in checks.rows)


# --- the robust, honest verdict -------------------------------------------------------

def test_a_crashed_family_worker_fails_its_rows_by_name_and_the_others_still_report(monkeypatch):
    real = selftest.section_command
    crashed = selftest.Section("nvrtc", "dropout")
    row = json.dumps(list(selftest.Row("compile", "dropout.dropout_kernel", "float32", "sm_90", "m", "pass")))

    def command(section, quick):
        if section == crashed:  # one row, then the worker dies as a segfaulting kernel would
            return [sys.executable, "-c", f"import os; print('ROW ' + {row!r}, flush=True); os.abort()"]
        return real(section, quick)

    monkeypatch.setattr(selftest, "section_command", command)
    rows = selftest.run_sections([selftest.Section("nvrtc", "batchnorm"), crashed,
                                  selftest.Section("nvrtc", "softmax_cross_entropy")], 2, True)
    failed = [r for r in rows if r.result == "FAIL"]
    assert len(failed) == 1 and failed[0].kernel == "dropout (all kernels)", failed
    assert "worker crashed (killed by signal 6)" in failed[0].measure and failed[0].case == "after 1 rows"
    assert any(r.kernel == "dropout.dropout_kernel" and r.result == "pass" for r in rows)
    for family in ("batchnorm", "softmax_cross_entropy"):
        assert any(r.kernel.startswith(family + ".") and r.result == "pass" for r in rows), family


@pytest.mark.parametrize("missing", ["nvrtc_available", "harness_available"])
def test_a_missing_compiler_gives_incomplete_and_a_nonzero_exit(monkeypatch, capsys, missing):
    monkeypatch.setattr(selftest, "on_gpu", lambda: False)
    monkeypatch.setattr(selftest, missing, lambda: False)
    ran = []

    def run_sections(sections, workers, quick):
        ran.extend(sections)
        return [selftest.Row("kernel", "triton sgd", "c", "Triton interpreter", "0 ulp", "pass")]

    monkeypatch.setattr(selftest, "run_sections", run_sections)
    assert selftest.main(["--quick"]) != 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("selftest INCOMPLETE: 1 passed, 0 failed, 1 skipped"), line
    assert "not run on a GPU" in line
    if missing == "nvrtc_available":
        assert not any(s.name == "nvrtc" for s in ran)
    else:
        assert not any(s.implementation == "cupy" for s in ran)


def test_a_cross_entropy_that_drops_the_clip_fails_the_clipped_rows(monkeypatch):
    """Keras's clip of a softmax output is checked: the exact form where the clipped one is
    asked for fails the confidently wrong rows (row 0 of every case), naming the kernel."""
    exact_triton = softmax_cross_entropy.softmax_cross_entropy_triton
    monkeypatch.setattr(softmax_cross_entropy, "softmax_cross_entropy_triton",
                        lambda logits, labels, dlogits=None, epsilon=0.0: exact_triton(logits, labels, dlogits))
    checks = triton_checks()
    for case in cases.upto(cases.SOFTMAX, 0):
        checks.softmax_cross_entropy(case, np.float32)
    failed = {row.case for row in checks.rows if row.result == "FAIL" and row.kernel == "triton softmax_cross_entropy"}
    assert failed and all("clipped at 1e-07" in case for case in failed), failed
    assert any("x30" in case and "index labels" in case for case in failed), failed


def test_family_option_runs_only_that_kernel_modules_sections(monkeypatch, capsys):
    monkeypatch.setattr(selftest, "on_gpu", lambda: False)
    ran = []

    def run_sections(sections, workers, quick):
        ran.extend(sections)
        return [selftest.Row("kernel", "triton dropout", "c", "Triton interpreter", "0 ulp", "pass")]

    monkeypatch.setattr(selftest, "run_sections", run_sections)
    selftest.main(["--quick", "--family", "dropout"])
    assert ran and {section.family for section in ran} == {"dropout"}
    assert {section.name for section in ran} >= {"triton-compile", "cpu-kernels"}
