"""Where trials run: "sequential" (here, one after another: panda's machine, or a
debugger), "processes" (caviar on one machine: a fresh process per trial, at most
`workers` at a time, each pinned to one GPU when GPUs are visible, else sharing the
CPU cores) and "ray" (caviar on a Ray cluster, one GPU per trial when it has GPUs).

Each executor takes the shared setup and an iterator of TrialSpec that is advanced
only when a worker is free (so a trial sees the curves finished before it starts),
and yields (record, model_bytes) as trials finish. Without a pruner every executor gives
the same records; with one and several workers, which trials are pruned depends on which
finished first (as in Optuna and ASHA). A fresh process per trial returns
all of a trial's memory to the system and keeps a crash from touching the search.
"""

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os

from gpudl.backend import cuda_device_count, get_backend
from gpudl.frontend.tuning.trial import new_record, run_trial


def run_sequential(setup, specs, workers=1, address=None):
    """In this process, one trial after another; memory is freed between trials."""
    for spec in specs:
        yield run_trial(setup, spec)
        gc.collect()
        get_backend().free_cached_memory()


def run_in_processes(setup, specs, workers=2, address=None):
    """A spawned process per trial, `workers` at a time, results streamed as they finish."""
    context = multiprocessing.get_context("spawn")  # fork would copy a CUDA context and BLAS threads
    environments = worker_environments(workers)
    free_slots, running = list(range(workers)), {}
    specs = iter(specs)
    try:
        while True:
            while free_slots:
                spec = next(specs, None)
                if spec is None:
                    break
                slot = free_slots.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_trial_process, args=(setup, spec, sender), daemon=True,
                                          name=f"gpudl-trial-{spec.stage}-{spec.index}")
                with _environment(environments[slot]):
                    process.start()
                sender.close()  # the child holds the only sending end: its exit means end of file
                running[receiver] = (process, spec, slot)
            if not running:
                return
            for receiver in multiprocessing.connection.wait(list(running)):
                process, spec, slot = running.pop(receiver)
                try:
                    result = receiver.recv()
                except EOFError:
                    process.join()
                    result = failed(spec, f"the trial's process exited with code {process.exitcode} "
                                          f"before reporting (killed, or out of memory?)")
                receiver.close()
                process.join()
                free_slots.append(slot)
                yield result
    finally:
        for process, _, _ in running.values():
            process.terminate()
            process.join()


def _trial_process(setup, spec, sender):
    sender.send(run_trial(setup, spec))
    sender.close()


def worker_environments(workers):
    """Environment variables for each worker slot: one visible GPU each (round robin) when
    there are GPUs; else the CPU cores split evenly among the workers' BLAS thread pools."""
    if cuda_device_count() > 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(cuda_device_count())]
        return [{"CUDA_VISIBLE_DEVICES": devices[slot % len(devices)]} for slot in range(workers)]
    threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
    return [{name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            for _ in range(workers)]


@contextlib.contextmanager
def _environment(variables):
    """os.environ with `variables` set inside the block (a spawned child inherits them)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_on_ray(setup, specs, workers=2, address=None):
    """Trials as Ray tasks on the cluster at `address` (the running one when Ray is already
    initialized; a local one when None), `workers` in flight, one GPU each when the cluster
    has GPUs; each task's worker process exits after it (max_calls=1) to return its memory."""
    try:
        import ray
    except ImportError as error:
        raise ImportError("executor='ray' needs Ray: pip install 'gpudl[ray]'") from error
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_calls=1, max_retries=0)(run_trial)
        setup_ref = ray.put(setup)  # the data go to the object store once, not once per trial
        in_flight, specs = {}, iter(specs)
        while True:
            while len(in_flight) < workers:
                spec = next(specs, None)
                if spec is None:
                    break
                in_flight[task.remote(setup_ref, spec)] = spec
            if not in_flight:
                return
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            spec = in_flight.pop(done)
            try:
                yield ray.get(done)
            except ray.exceptions.RayError as error:  # the worker died: record it and go on
                yield failed(spec, f"Ray task failed: {error}")
    finally:
        if started_here:
            ray.shutdown()


def failed(spec, error):
    """The result of a trial that could not report by itself."""
    return new_record(spec, status="failed", error=error), None


EXECUTORS = {"sequential": run_sequential, "processes": run_in_processes, "ray": run_on_ray}
