"""Data parallelism (gpudl.distribution.DataParallel) on 2 gloo processes against one process.

The training runs are tests/distributed_scenarios.py: the two processes run them all in one
launch (each with a hard timeout, so a collective that hangs fails the test), then this process
runs each on its own and the weights, histories and predictions must agree.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import gpudl
from gpudl.kernels import dropout as dropout_kernel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import distributed_scenarios as scenarios  # noqa: E402

LAUNCH_TIMEOUT = 240  # seconds for a whole launch of 2 processes; a hang fails the test instead


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script, args, processes=2, timeout=LAUNCH_TIMEOUT, env=None):
    """Run `script args` in `processes` processes joined by KERAS_DISTRIBUTION_*; return their outputs."""
    port = free_port()
    procs = []
    for rank in range(processes):
        environment = {**os.environ, "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
                       "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
                       "KERAS_DISTRIBUTION_PROCESS_ID": str(rank), "GPUDL_BACKEND": "numpy",
                       "OMP_NUM_THREADS": "1", **(env or {})}
        procs.append(subprocess.Popen([sys.executable, script, *args], env=environment, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for rank, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{output[-4000:]}"
    return outputs


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    outputs = launch(os.path.join(HERE, "distributed_scenarios.py"), [str(out)])
    return [dict(np.load(out / f"rank{rank}.npz")) for rank in range(2)], outputs, out


@pytest.fixture(scope="module")
def two_process_results(launched):
    return launched[0]


def test_the_progress_bar_prints_on_rank_zero_only(launched):
    rank_zero, rank_one = launched[1]
    assert "5/5" in rank_zero and "loss:" in rank_zero
    assert "5/5" not in rank_one and "loss:" not in rank_one


TOLERANCE = {"sgd_momentum": 1e-12, "rmsprop": 1e-12, "adam": 1e-12, "adam_global_clipnorm": 1e-12,
             "batch_norm": 1e-9, "dropout_and_noise": 1e-9, "empty_shards": 1e-9,
             "early_stopping_evaluate_predict": 1e-12, "train_on_batch_and_custom_loop": 1e-12,
             "py_dataset_and_generator": 1e-9, "sample_and_class_weights": 1e-12}


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_two_gloo_processes_give_the_one_process_run_on_the_global_batch(two_process_results, name):
    reference = scenarios.SCENARIOS[name]()
    for rank, results in enumerate(two_process_results):
        for key, expected in reference.items():
            got = results[f"{name}/{key}"]
            assert got.shape == expected.shape, (rank, key)
            np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[name], err_msg=f"{name} rank {rank} {key}")
    first, second = two_process_results
    for key in reference:  # every process logs and decides the same: the same values exactly
        np.testing.assert_array_equal(first[f"{name}/{key}"], second[f"{name}/{key}"], err_msg=key)


def test_early_stopping_stops_at_the_same_epoch_on_every_process(two_process_results):
    stopped = [int(r["early_stopping_evaluate_predict/stopped_epoch"]) for r in two_process_results]
    assert stopped[0] == stopped[1] == int(scenarios.early_stopping_evaluate_predict()["stopped_epoch"])
    assert 0 < stopped[0] < 39  # it did stop early
    assert [list(r["devices"]) for r in two_process_results] == [["cpu:0", "cpu:1"]] * 2


def test_each_process_takes_its_rows_of_a_py_dataset_batch(two_process_results):
    """5 shuffled batches of 8, 8, 8, 8 and 5 rows (the 5-row one lands anywhere): 4 + 4, and 2 + 3."""
    first, second = (r["py_dataset_and_generator/local_rows"].reshape(2, 5) for r in two_process_results)
    for epoch in range(2):
        assert sorted(first[epoch]) == [2, 4, 4, 4, 4] and sorted(second[epoch]) == [3, 4, 4, 4, 4]
        assert list(first[epoch]).index(2) == list(second[epoch]).index(3)  # the same batch at the same step


def test_dropout_mask_with_an_offset_is_those_rows_of_the_whole_mask():
    whole = dropout_kernel.keep_mask((9, 7), 0.4, 1234, np.array([3, 5]))
    for first, rows in ((0, 4), (4, 5), (3, 1), (9, 0)):
        part = dropout_kernel.keep_mask((rows, 7), 0.4, 1234, np.array([3, 5]), offset=first * 7)
        np.testing.assert_array_equal(part, whole[first:first + rows])


def test_world_size_one_is_bit_identical_to_no_distribution():
    script = os.path.join(HERE, "distributed_world_one.py")
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=LAUNCH_TIMEOUT,
                         env={**os.environ, "GPUDL_BACKEND": "numpy", "MASTER_ADDR": "127.0.0.1",
                              "MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bit-identical" in out.stdout


def test_model_parallel_and_layout_map_are_refused_naming_data_parallel():
    for name in ("ModelParallel", "LayoutMap"):
        with pytest.raises(NotImplementedError, match=r"DataParallel"):
            getattr(gpudl.distribution, name)()


def test_initialize_without_a_launcher_says_how_to_launch(monkeypatch):
    for variable in ("RANK", "WORLD_SIZE", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match=r"torchrun --nproc_per_node=N"):
        gpudl.distribution.initialize()
    with pytest.raises(ValueError, match=r"process_id.*Received: process_id=3"):
        gpudl.distribution.initialize(job_addresses="127.0.0.1:1", num_processes=2, process_id=3)


def test_data_parallel_checks_its_mesh_and_set_distribution_its_value():
    assert gpudl.distribution.distribution() is None
    with pytest.raises(ValueError, match=r"one process per device; the mesh has 2 devices and the run 1"):
        gpudl.distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    with pytest.raises(ValueError, match=r"auto_shard_dataset"):
        gpudl.distribution.DataParallel(auto_shard_dataset=False)
    with pytest.raises(ValueError, match=r"Expected a gpudl.distribution.DataParallel or None"):
        gpudl.distribution.set_distribution("data")
    mesh = gpudl.distribution.DeviceMesh((1,), ["batch"], ["cpu:0"])
    data_parallel = gpudl.distribution.DataParallel(device_mesh=mesh)
    with data_parallel.scope():
        assert gpudl.distribution.distribution() is data_parallel
    assert gpudl.distribution.distribution() is None


def torchrun(out, *args, restarts=0):
    """`python -m torch.distributed.run --standalone --nproc_per_node=2 distributed_restart.py OUT args`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               f"--max-restarts={restarts}", os.path.join(HERE, "distributed_restart.py"), str(out), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, cwd=HERE,
                            env={**os.environ, "GPUDL_BACKEND": "numpy", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def test_torchrun_and_a_killed_worker_restarted_by_torchrun_end_bit_identical(launched, tmp_path):
    whole, killed = launched[2] / "whole", tmp_path / "killed"  # uninterrupted: in the launch of the scenarios
    log = torchrun(killed, "--kill", restarts=1)
    assert "exitcode: -9" in log and "attempt 1 done" in log  # rank 1 was killed; the restart finished
    final, resumed = np.load(whole / "final.npz"), np.load(killed / "final.npz")
    for key in final:
        np.testing.assert_array_equal(resumed[key], final[key], err_msg=key)
    # rank 0 alone wrote the log (append=True: a second writer would double the rows), and the
    # restarted run's log is the uninterrupted one's
    rows = (whole / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 and rows[0].startswith("epoch,")
    assert (killed / "log.csv").read_text() == (whole / "log.csv").read_text()
    # and the data-parallel run is the one-process run on the global batch
    model = scenarios.backed_up_fit(str(tmp_path / "alone"))
    for index, weight in enumerate(model.get_weights()):
        np.testing.assert_allclose(final[f"arr_{index}"], weight, rtol=0, atol=1e-9)


def ray_train_missing():
    """Why the Ray Train test cannot run here (None when it can)."""
    try:
        import ray.train.torch  # noqa: F401
    except ImportError as error:
        return f"Ray Train is not installed (pip install 'gpudl[ray-train]'): {error}"
    if os.environ.get("GPUDL_TEST_RAY_TRAIN") != "1":
        return "Ray Train's start-up takes about 75 s on 2 cores; set GPUDL_TEST_RAY_TRAIN=1 to run it"
    return None


@pytest.mark.skipif(ray_train_missing() is not None, reason=str(ray_train_missing()))
def test_ray_train_torch_trainer_runs_the_data_parallel_fit(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(HERE, "distributed_ray.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "GPUDL_BACKEND": "numpy"})
    assert result.returncode == 0 and "ray train done" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    got, expected = np.load(tmp_path / "ray.npz"), scenarios.SCENARIOS["batch_norm"]()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-9, err_msg=key)


def sharded_model_rows(monkeypatch, middle, x, dy, shards):
    """model = Input -> Dense(5, weights of small integers) -> middle on the active backend: its training
    forward and backward (dx) on the whole batch x, then on each shard (first, rows) of it as a
    data-parallel process sees it (collectives' current Shard set, the Dropout's call count the same),
    as host arrays: [(y, dx) whole] + [(y, dx) of each shard]."""
    from gpudl import collectives

    backend = gpudl.get_backend()
    model = gpudl.Sequential([gpudl.Input((x.shape[1],)), gpudl.layers.Dense(5), *middle()], seed=5)
    model.build((None, x.shape[1]))
    weights = np.random.default_rng(1).integers(-3, 4, (x.shape[1], 5)).astype(x.dtype)
    model.set_weights([weights, np.arange(-2, 3, dtype=x.dtype)] + model.get_weights()[2:])  # exact products
    model.layers[0].input_gradient_needed = True  # dx too: dz's rows through exact products
    dropout_layer = model.layers[-1]
    results = []
    for shard in [None, *(collectives.Shard(first, rows, len(x)) for first, rows in shards)]:
        monkeypatch.setattr(collectives, "shard", lambda: shard)
        rows = slice(None) if shard is None else slice(shard.first_row, shard.first_row + shard.rows)
        dropout_layer.calls = 0
        y = model.forward(backend.asarray(np.ascontiguousarray(x[rows])), training=True)
        dx = model.backward(backend.asarray(np.ascontiguousarray(dy[rows])))
        results.append((backend.to_numpy(y), backend.to_numpy(dx)))
    return results, model


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="the GPU backends on the CPU")
@pytest.mark.parametrize("gpu", ["numpy", "triton", "cupy"])
@pytest.mark.parametrize("fused", [True, False], ids=["Dense-relu-Dropout fused", "Dropout alone"])
def test_each_process_dropout_draws_its_rows_of_the_global_mask_on_every_backend(monkeypatch, gpu, fused):
    """One process plays each process in turn: the rows [first, first + rows) of a 10-row global
    batch (offsets first * 5, not multiples of 4) through Dense -> [ReLU] -> Dropout give exactly
    those rows of the whole batch's output and dx, and the NumPy reference's mask, on the Triton
    interpreter and the CUDA-on-CPU harness too; in the fused block (Dense relu -> Dropout, one
    pass) as well as alone."""
    from gpudl.tools import count

    rng = np.random.default_rng(3)
    x, dy = rng.integers(-4, 5, (10, 6)).astype(np.float32), rng.integers(-4, 5, (10, 5)).astype(np.float32)
    middle = (lambda: [gpudl.layers.ReLU(), gpudl.layers.Dropout(0.5, seed=77)]) if fused else (
        lambda: [gpudl.layers.Dropout(0.5, seed=77)])
    shards = [(0, 3), (3, 4), (7, 3), (1, 9)]
    previous = gpudl.get_backend().name
    try:
        if gpu == "numpy" or gpu == "triton":
            gpudl.set_backend(gpu)
            context = _nothing()
        else:
            context = count.recording("cupy")
        with context:
            results, model = sharded_model_rows(monkeypatch, middle, x, dy, shards)
            assert bool(model.fused_blocks and model.fused_blocks[0].active) == (fused and gpu != "numpy")
    finally:
        gpudl.set_backend(previous)
    (y, dx), parts = results[0], results[1:]
    z = x @ model.get_weights()[0] + model.get_weights()[1]  # exact: small integers
    seed_counter = np.array([model.layers[-1].index, 0], dtype=np.int64)
    gate = dropout_kernel.keep_mask(z.shape, 0.5, 77, seed_counter) & ((z > 0) if fused else True)
    np.testing.assert_array_equal(y, np.where(gate, (np.maximum(z, 0) if fused else z) * 2.0, 0.0))
    for (first, rows), (y_part, dx_part) in zip(shards, parts):
        np.testing.assert_array_equal(y_part, y[first:first + rows])
        np.testing.assert_array_equal(dx_part, dx[first:first + rows])


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="the GPU backends on the CPU")
def test_a_batch_norm_headed_block_is_not_fused_under_a_shard_so_its_dropout_takes_the_offset(monkeypatch):
    """The fused batch-norm op draws no offset mask (its statistics are the global batch's, reduced
    apart): under a Shard the block runs unfused and the Dropout layer draws with its rows' offset."""
    from gpudl import collectives

    previous = gpudl.get_backend().name
    gpudl.set_backend("triton")
    try:
        model = gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.Dense(5), gpudl.layers.BatchNormalization(),
                                  gpudl.layers.ReLU(), gpudl.layers.Dropout(0.5)], seed=5)
        model.build((None, 6))
        (block,) = model.fused_blocks
        x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
        model.forward(x, training=True)
        assert block.active  # fused without a shard
        monkeypatch.setattr(collectives, "shard", lambda: collectives.Shard(4, 4, 8))
        y = model.forward(x, training=True)
        dropout_layer, batch_norm_output = model.layers[-1], model.layers[-3]._y
        assert not block.active and dropout_layer._offset == 4 * 5  # rows 4.. of width 5
        keep = dropout_kernel.keep_mask((4, 5), 0.5, dropout_layer.base_seed, [dropout_layer.index, 1], offset=20)
        np.testing.assert_array_equal(y != 0, keep & (batch_norm_output > 0))
    finally:
        gpudl.set_backend(previous)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_loss_summed_over_the_batch_is_refused_under_data_parallel(monkeypatch):
    """Each process's gradient is weighted by its rows: right for a mean over rows only."""
    from gpudl import collectives
    from gpudl.frontend.models import data_parallel

    monkeypatch.setattr(collectives, "active", lambda: True)
    model = scenarios.model_of(scenarios.dense_stack(), "sgd")
    model.compile(optimizer="sgd", loss=gpudl.losses.SparseCategoricalCrossentropy(reduction="sum"))
    with pytest.raises(ValueError, match=r"mean over the batch's rows.*reduction='sum'"):
        data_parallel.start_in_step(model)


def test_local_processes_share_the_cores(monkeypatch):
    from gpudl import threads

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert threads.local_cores() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert threads.local_cores() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert threads.local_cores() == 16
