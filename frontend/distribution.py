"""gpudl.distribution: Keras 3's keras.distribution names for data parallelism on torch.distributed.

    import gpudl
    gpudl.distribution.initialize()                      # torchrun / Ray Train / KERAS_DISTRIBUTION_*
    gpudl.distribution.set_distribution(gpudl.distribution.DataParallel())
    model.fit(x, y, batch_size=256)                      # 256 rows per step over all processes

One process per device: gloo on the CPU, NCCL when the backend runs on a GPU (the process's
GPU is LOCAL_RANK). Semantics are Keras-on-JAX's: `batch_size` is the global batch, each
process computes its rows of it, and with the same seed R processes give the weights of one
process on the same data (to round-off): gradients are weighted by rows / global rows and
SUM-all-reduced once per step (the flat gradient arena), batch normalization uses the global
batch's statistics, dropout draws the global batch's mask. Collectives are gpudl.collectives.
"""

import contextlib
import datetime
import os

import numpy as np

from gpudl import collectives, threads
from gpudl.backend import get_backend
from gpudl.errors import NotInGpudl, invalid_value

DEFAULT_BATCH_DIM_NAME = "batch"
_state = {"distribution": None, "initialized_here": False}


def _env_int(name):
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.strip().lstrip("-").isdigit():
        raise invalid_value(name, "an integer (environment variable)", value, "gpudl.distribution.initialize")
    return int(value)


def _on_gpu():
    return get_backend().xp is not np


def _local_rank():
    """LOCAL_RANK (torchrun, Ray Train), else 0."""
    return _env_int("LOCAL_RANK") or 0


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Join (or start) the process group: Keras's initialize.

    Where each value comes from, first found wins: the arguments; KERAS_DISTRIBUTION_JOB_ADDRESSES,
    KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID; torchrun's and Ray Train's
    MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK. A process group that exists already (Ray Train's
    TorchTrainer makes one) is used as it is. The backend is NCCL when gpudl's backend runs on a
    GPU (this process's GPU: LOCAL_RANK), else gloo. Under torchrun's restarts (`--max-restarts`)
    the rendezvous keys are prefixed with the restart count, so a restarted group never reads the
    keys of the one before.

    Args:
        job_addresses: "host:port[,host:port...]"; the first is the coordinator (rank 0).
        num_processes: the number of processes.
        process_id: this process's rank in [0, num_processes).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # Ray Train's TorchTrainer, or a script's own group
        threads.limit_blas_to_local_cores()
        return
    job_addresses = job_addresses or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    num_processes = num_processes if num_processes is not None else (
        _env_int("KERAS_DISTRIBUTION_NUM_PROCESSES") or _env_int("WORLD_SIZE"))
    process_id = process_id if process_id is not None else (
        _env_int("KERAS_DISTRIBUTION_PROCESS_ID") if "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ
        else _env_int("RANK"))
    where = "gpudl.distribution.initialize"
    if num_processes is None or process_id is None:
        raise ValueError(f"{where}: the number of processes and this process's id are unknown. Launch with "
                         f"`torchrun --nproc_per_node=N script.py` (or Ray Train's TorchTrainer), set "
                         f"KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID, or pass "
                         f"num_processes= and process_id=. Received: num_processes={num_processes}, "
                         f"process_id={process_id}")
    if not 0 <= process_id < num_processes:
        raise invalid_value("process_id", f"an integer in [0, num_processes={num_processes})", process_id, where)
    if job_addresses:
        host, _, port = job_addresses.split(",")[0].strip().rpartition(":")
    else:
        host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not host or not port or not str(port).isdigit():
        raise ValueError(f"{where}: the coordinator's address is unknown. Pass job_addresses='host:port' (or "
                         f"set KERAS_DISTRIBUTION_JOB_ADDRESSES, or MASTER_ADDR and MASTER_PORT). Received: "
                         f"job_addresses={job_addresses!r}, MASTER_ADDR={host!r}, MASTER_PORT={port!r}")
    backend = "gloo"
    if _on_gpu():
        import torch

        torch.cuda.set_device(_local_rank())
        get_backend().xp.cuda.Device(_local_rank()).use()
        backend = "nccl"
    timeout = datetime.timedelta(seconds=float(os.environ.get("GPUDL_COLLECTIVE_TIMEOUT", 1800)))
    dist.init_process_group(backend, store=_store(host, int(port), num_processes, process_id, timeout),
                            rank=process_id, world_size=num_processes, timeout=timeout)
    _state["initialized_here"] = True
    threads.limit_blas_to_local_cores()


def _store(host, port, num_processes, process_id, timeout):
    """The rendezvous store: a TCPStore at the coordinator (torchrun's agent hosts it when
    TORCHELASTIC_USE_AGENT_STORE is set), its keys prefixed with torchrun's restart count."""
    import torch.distributed as dist

    agent_hosts_it = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(host, port, num_processes, is_master=process_id == 0 and not agent_hosts_it,
                          timeout=timeout, wait_for_workers=False)
    return dist.PrefixStore(f"gpudl/restart_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def shutdown():
    """Leave the process group (only if initialize() made it) and drop the distribution."""
    import torch.distributed as dist

    set_distribution(None)
    if _state["initialized_here"] and dist.is_initialized():
        dist.destroy_process_group()
    _state["initialized_here"] = False


def _process_count():
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def list_devices(device_type=None):
    """The devices of the whole run, one per process ("cpu:0", "cpu:1", ... or "gpu:0", ...);
    before initialize(), this process's: "cpu:0", or one "gpu:i" per visible GPU."""
    if device_type not in (None, "cpu", "gpu"):
        raise invalid_value("device_type", "None, 'cpu' or 'gpu'", device_type, "gpudl.distribution.list_devices")
    kind = device_type or ("gpu" if _on_gpu() else "cpu")
    count = _process_count()
    if count == 1 and kind == "gpu":
        from gpudl.backend import cuda_device_count

        count = cuda_device_count()
    return [f"{kind}:{i}" for i in range(count)]


class DeviceMesh:
    """Keras's DeviceMesh: devices laid out in a named grid. gpudl's data parallelism uses a 1-D
    mesh, one device per process.

    Args:
        shape: e.g. (4,). axis_names: e.g. ["batch"]. devices: default list_devices().
    """

    def __init__(self, shape, axis_names, devices=None):
        if not shape or not axis_names:
            raise ValueError(f"Shape and axis_names cannot be empty. Received: shape={shape}, axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ValueError(f"Shape and axis_names should have same size. Received: shape={shape}, "
                             f"axis_names={axis_names}")
        devices = np.array(list_devices() if devices is None else devices)
        if int(np.prod(shape)) != devices.size:
            raise ValueError(f"Shape does not match the number of devices. Received: shape={shape}; "
                             f"devices.shape={devices.shape}")
        self._shape, self._axis_names = tuple(shape), list(axis_names)
        self._devices = devices.reshape(shape)

    @property
    def shape(self):
        return self._shape

    @property
    def axis_names(self):
        return self._axis_names

    @property
    def devices(self):
        return self._devices

    def __repr__(self):
        return f"<DeviceMesh shape={self.shape}, axis_names={self.axis_names}>"


class DataParallel:
    """Keras's DataParallel: every process holds the whole model and computes its rows of each
    global batch; one all-reduce of the gradient arena per step keeps the weights equal.

    Args:
        device_mesh: a 1-D DeviceMesh (give it or `devices`, not both; default: list_devices()).
        devices: a list of devices, one per process.
        auto_shard_dataset: True (the default): every process is given the same data and takes its
            rows of each global batch. False is not supported (each process would bring its own part).
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        where = "DataParallel"
        if device_mesh is not None and devices is not None:
            raise ValueError(f"{where}: pass `device_mesh` or `devices`, not both.")
        if device_mesh is not None and not isinstance(device_mesh, DeviceMesh):
            raise ValueError(f"Expect `mesh` to be an instance of `DeviceMesh`. Received: mesh={device_mesh} "
                             f"(of type {type(device_mesh)})")
        if device_mesh is None:
            found = np.array(list_devices() if devices is None else devices)
            device_mesh = DeviceMesh(found.shape, [DEFAULT_BATCH_DIM_NAME], found)
        if device_mesh.devices.ndim != 1:
            raise invalid_value("device_mesh", "a 1-D mesh (gpudl has data parallelism only)",
                                device_mesh, where)
        if device_mesh.devices.size != _process_count():
            raise ValueError(f"{where}: gpudl runs one process per device; the mesh has {device_mesh.devices.size} "
                             f"devices and the run {_process_count()} processes. Call "
                             f"gpudl.distribution.initialize() first, and give one device per process.")
        if auto_shard_dataset is not True:
            raise invalid_value("auto_shard_dataset", "True (every process is given the same data and takes its "
                                "rows of each global batch)", auto_shard_dataset, where)
        self._device_mesh = device_mesh
        self._batch_dim_name = device_mesh.axis_names[0]
        self._auto_shard_dataset = auto_shard_dataset

    @property
    def device_mesh(self):
        return self._device_mesh

    @property
    def batch_dim_name(self):
        return self._batch_dim_name

    @property
    def auto_shard_dataset(self):
        return self._auto_shard_dataset

    @contextlib.contextmanager
    def scope(self):
        """Make this distribution current inside the block (Keras's Distribution.scope)."""
        original = distribution()
        set_distribution(self)
        try:
            yield
        finally:
            set_distribution(original)

    def __repr__(self):
        return f"<DataParallel device_mesh={self.device_mesh}>"


def _model_parallel_refused(name):
    return NotInGpudl(f"gpudl.distribution.{name} (model parallelism) is not in gpudl: every process holds "
                      f"the whole model. Use gpudl.distribution.DataParallel(), which shards each batch over "
                      f"the processes.")


class ModelParallel:
    """Keras's ModelParallel: not in gpudl (raises, naming DataParallel)."""

    def __init__(self, *args, **kwargs):
        raise _model_parallel_refused("ModelParallel")


class LayoutMap:
    """Keras's LayoutMap: not in gpudl (raises, naming DataParallel)."""

    def __init__(self, *args, **kwargs):
        raise _model_parallel_refused("LayoutMap")


class TensorLayout:
    """Keras's TensorLayout: not in gpudl (raises, naming DataParallel)."""

    def __init__(self, *args, **kwargs):
        raise _model_parallel_refused("TensorLayout")


def set_distribution(value):
    """Make `value` (a DataParallel, or None) the current distribution."""
    if value is not None and not isinstance(value, DataParallel):
        raise invalid_value("value", "a gpudl.distribution.DataParallel or None", value,
                            "gpudl.distribution.set_distribution")
    _state["distribution"] = value
    collectives.set_active(value is not None and _process_count() > 1)


def distribution():
    """The current distribution (None when there is none)."""
    return _state["distribution"]


__all__ = ["DataParallel", "DeviceMesh", "LayoutMap", "ModelParallel", "TensorLayout", "distribution", "initialize",
           "list_devices", "set_distribution", "shutdown"]
