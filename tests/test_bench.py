"""`gpudl bench`, `gpudl info`, perf/fit_gpu.py and perf/kernels.py on the CPU: they run,
they write what they promise, and their floors match hand counts of bytes. Nothing is timed."""

import contextlib
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import gpudl
from gpudl.tools import bench, cli
from gpudl.backend import cuda_device_count

REPO = pathlib.Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
NO_CUDA = pytest.mark.skipif(cuda_device_count() > 0, reason="a CUDA device would run the full GPU benchmark")
NEEDS_CUDA = pytest.mark.skipif(cuda_device_count() == 0, reason="needs a CUDA device with CuPy")


def load_script(name):
    """perf/<name>.py as a module (its main() is not run)."""
    spec = importlib.util.spec_from_file_location(f"perf_{name}", REPO / "perf" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_captured(function, *args):
    """(return value, stdout text) of function(*args)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        value = function(*args)
    return value, out.getvalue()


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    """`gpudl bench --quick --repeats 2 --json PATH` through gpudl.tools.cli.main: (JSON, table)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    _, table = run_captured(cli.main, ["bench", "--quick", "--repeats", "2", "--json", str(path)])
    return json.loads(path.read_text()), table


def test_bench_json_has_every_kernel_with_positive_times_floors_and_fractions(quick_bench):
    result, _ = quick_bench
    assert {row["op"] for row in result["kernels"]} == set(bench.OPS)
    for row in result["kernels"]:
        assert row["ms"] > 0 and row["floor_ms"] > 0, row
        assert 0 < row["bandwidth_fraction"] <= 1.5, row
        assert row["bandwidth_fraction"] == pytest.approx(row["floor_ms"] / row["ms"])
        assert row["peak_bytes"] is None or row["peak_bytes"] >= 0
        if HAS_TORCH:
            assert row["torch_ms"] > 0
            assert row["speedup_vs_torch"] == pytest.approx(row["torch_ms"] / row["ms"])


def test_bench_floor_of_batchnorm_forward_is_read_x_write_y_over_copy_bandwidth(quick_bench):
    result, _ = quick_bench
    row = next(r for r in result["kernels"] if r["op"] == "batchnorm_forward")
    N, C = row["shape"]
    bytes_by_hand = N * C * 4 + N * C * 4  # read x once, write y once, float32
    assert row["floor_ms"] == pytest.approx(bytes_by_hand / result["copy_bandwidth_bytes_per_s"] * 1e3)


def test_floor_bytes_against_hand_counts():
    assert bench.floor_bytes("softmax_cross_entropy", (3, 5)) == 3 * 5 * 4 * 2  # read Z, write dZ
    assert bench.floor_bytes("adam", (10,), itemsize=8) == 10 * 8 * (4 + 3)  # read w g m v, write w m v
    assert bench.floor_bytes("batchnorm_backward", (2, 7)) == 2 * 7 * 4 * 3  # read x dy, write dx
    with pytest.raises(ValueError, match="Expected one of"):
        bench.floor_bytes("layernorm", (2, 2))


def test_copy_bandwidth_counts_each_byte_read_and_written():
    class TwoMillisecondClock:
        def start(self):
            return None

        def stop_ms(self, started):
            return 2.0

    device = SimpleNamespace(backend=SimpleNamespace(xp=np), clock=lambda library: TwoMillisecondClock())
    nbytes = 4 * 1000
    assert bench.copy_bandwidth(device, nbytes, repeats=3) == pytest.approx(2 * nbytes / 2e-3)


def test_median_ms_rejects_zero_repeats():
    with pytest.raises(ValueError, match="Received: repeats=0"):
        bench.median_ms(None, "ours", lambda: None, repeats=0)


def test_bench_fit_step_row_has_times_and_memory(quick_bench):
    result, _ = quick_bench
    fit = result["fit_step"]
    assert fit["model"] == "784-256-256-10" and fit["batch"] == 128
    assert fit["ms"] > 0 and fit["peak_bytes"] > 0
    if HAS_TORCH:
        assert fit["torch_ms"] > 0


def test_bench_table_names_the_device_and_ends_with_the_headline(quick_bench):
    result, table = quick_bench
    lines = table.strip().splitlines()
    assert result["device"] in lines[0] and result["backend"] in lines[0]
    assert lines[-1].startswith("headline:")
    assert all(op in table for op in bench.OPS)


def test_bench_without_torch_prints_ours_and_says_torch_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    result = bench.run_bench(quick=True, repeats=1)
    assert result["torch_missing"] == "torch not installed"
    assert all(row["ms"] > 0 and row["torch_ms"] is None for row in result["kernels"])
    assert result["fit_step"]["ms"] > 0 and result["fit_step"]["torch_ms"] is None
    _, table = run_captured(bench.print_bench, result)
    assert "torch not installed" in table
    assert table.strip().splitlines()[-1].startswith("headline: no PyTorch peer (torch not installed)")


def test_bench_rejects_zero_repeats():
    with pytest.raises(SystemExit, match="--repeats=0"):
        cli.main(["bench", "--repeats", "0"])


def test_info_names_the_backend_and_why_and_the_versions(capsys):
    cli.main(["info"])
    out = capsys.readouterr().out
    backend = gpudl.get_backend()
    assert f"backend: {backend.name} ({backend.reason})" in out
    assert f"numpy {np.__version__}" in out
    for name in ("cupy:", "triton:", "torch:", "CUDA runtime:", "CPU:"):
        assert name in out


def test_info_without_cupy_and_torch_says_so(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    cli.main(["info"])
    out = capsys.readouterr().out
    assert "cupy: not installed" in out and "torch: not installed" in out
    assert "GPU: none (CuPy is not installed; PyTorch is not installed)" in out


def test_info_reports_an_unusable_backend_instead_of_raising(monkeypatch, capsys):
    monkeypatch.setitem(gpudl.backend._state, "backend", None)  # choose again from the environment
    monkeypatch.setenv("GPUDL_BACKEND", "tpu")
    cli.main(["info"])
    assert "backend: unavailable (ValueError: " in capsys.readouterr().out


def test_fit_gpu_cpu_mode_runs_every_row_and_writes_json(tmp_path):
    path = tmp_path / "fit.json"
    done = subprocess.run([sys.executable, "perf/fit_gpu.py", "--cpu", "--torch-modes", "eager", "--repeats", "1",
                           "--json", str(path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("headline (small):")
    result = json.loads(path.read_text())
    assert result["cpu_mode"] and set(result["models"]) == {"large", "small"}
    for model in result["models"].values():
        rows = {row["name"]: row for row in model["rows"]}
        expected = {"GEMMs alone", "gpudl graph on", "gpudl graph off"} | ({"PyTorch eager"} if HAS_TORCH else set())
        assert set(rows) >= expected
        for name in expected - {"gpudl graph on"}:
            assert rows[name]["ms"] > 0, rows[name]
        graph_on = rows["gpudl graph on"]
        assert graph_on.get("ms", 0) > 0 or graph_on["error"].startswith("not available"), graph_on
        assert model["goals"]["gpudl_row"] in ("gpudl graph on", "gpudl graph off")
    assert "gpudl_over_gemms" in result["models"]["large"]["goals"]


def test_fit_gpu_gemms_are_forward_and_backward_of_each_dense_layer_by_hand():
    fit_gpu = load_script("fit_gpu")
    # Dense 5->7 (first: no dX) and 7->3 at batch 2: Y = X W, dW = X^T dY, dX = dY W^T
    assert fit_gpu.gemm_shapes((5, 7, 3), 2) == [(2, 5, 7), (5, 2, 7), (2, 7, 3), (7, 2, 3), (2, 3, 7)]


def test_fit_gpu_rejects_an_unknown_model():
    fit_gpu = load_script("fit_gpu")
    with pytest.raises(SystemExit):
        fit_gpu.parse_args(["--models", "medium"])


@NO_CUDA
def test_fit_gpu_without_cuda_prints_one_line_and_exits_zero():
    env = {key: value for key, value in os.environ.items() if key != "GPUDL_BACKEND"}
    done = subprocess.run([sys.executable, "perf/fit_gpu.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert len(done.stdout.strip().splitlines()) == 1 and "no CUDA device" in done.stdout


@NO_CUDA
def test_perf_kernels_without_cuda_says_so_and_measures_nothing():
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        load_script("kernels").main([])



@pytest.mark.gpu
@NEEDS_CUDA
def test_bench_quick_on_a_cuda_device_times_with_events_and_meters_device_memory(tmp_path):
    path = tmp_path / "bench.json"
    run_captured(cli.main, ["bench", "--quick", "--json", str(path)])
    result = json.loads(path.read_text())
    assert result["device_kind"] == "cuda" and result["device"].startswith("GPU")
    for row in result["kernels"]:
        assert row["ms"] > 0 and 0 < row["bandwidth_fraction"] <= 1.5, row
        assert row["peak_bytes"] >= 0
        if result["torch_missing"] is None:
            assert row["torch_ms"] > 0 and row["torch_peak_bytes"] >= 0
    assert result["fit_step"]["ms"] > 0 and result["fit_step"]["peak_bytes"] > 0


@pytest.mark.gpu
@NEEDS_CUDA
def test_fit_gpu_small_model_on_a_cuda_device_writes_every_row(tmp_path):
    path = tmp_path / "fit.json"
    done = subprocess.run([sys.executable, "perf/fit_gpu.py", "--models", "small", "--torch-modes", "eager",
                           "--repeats", "2", "--json", str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(path.read_text())["models"]["small"]["rows"]}
    assert rows["GEMMs alone"]["ms"] > 0
    assert rows["gpudl graph off"]["ms"] > 0 and rows["gpudl graph off"]["peak_bytes"] > 0
