"""BackupAndRestore survives SIGKILL at any moment: a small float64 fit is killed before and after
every file operation of its backups and of its clean-up (and at random moments, and twice in a
row), rerun to completion, and must end bit-identical to an uninterrupted run, leaving no
temporary file and no backup behind.

One worker process imports gpudl once; every run is a fork of it (so each run starts from the same
state, in milliseconds), and a run to be killed at its k-th file operation SIGKILLs itself there."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(r'''
    import builtins, json, os, random, shutil, signal, sys, tempfile, time
    import numpy as np
    import gpudl
    from gpudl import layers
    from gpudl.callbacks import BackupAndRestore

    root, double_checkpoint = sys.argv[1], sys.argv[2] == "1"
    random_kills, double_kills = int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(24, 4)), rng.integers(0, 3, size=24)
    EPOCHS, DEADLINE = 2, 20.0

    def fit(backup_dir):
        gpudl.utils.set_random_seed(7)
        model = gpudl.Sequential([gpudl.Input((4,)), layers.Dense(5, activation="relu"), layers.Dropout(0.3),
                                  layers.BatchNormalization(), layers.Dense(3, activation="softmax")], dtype="float64")
        model.compile(optimizer=gpudl.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
        model.fit(X, Y, batch_size=8, epochs=EPOCHS, verbose=0,
                  callbacks=[BackupAndRestore(backup_dir, double_checkpoint=double_checkpoint)])
        return model

    OPS = []  # names of the file operations seen in this run

    def inject(kill_at, when):
        """Count every file-mutating call; SIGKILL this process before or after the kill_at-th."""
        def wrap(owner, name):
            real = getattr(owner, name)
            def counted(*args, **kwargs):
                OPS.append(name)
                index = len(OPS)  # nested operations (rmtree's unlinks) count after this one
                if index == kill_at and when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                try:
                    return real(*args, **kwargs)
                finally:  # also after a call that raises (makedirs' mkdir of an existing directory)
                    if index == kill_at and when == "after":
                        os.kill(os.getpid(), signal.SIGKILL)
            setattr(owner, name, counted)
            return counted
        for name in ("replace", "rename", "remove", "unlink", "rmdir", "mkdir", "makedirs", "fsync", "close"):
            wrap(os, name)
        wrap(tempfile, "mkstemp")
        write_op = wrap(sys.modules[__name__], "write")
        real_fdopen = os.fdopen
        class Writer:  # a file whose 1st, 2nd, 32nd, 64th... writes are file operations too
            def __init__(self, f):
                self._f, self._writes = f, 0
            def __getattr__(self, name):
                return getattr(self._f, name)
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return self._f.__exit__(*exc)
            def write(self, data):
                self._writes += 1
                if self._writes in (1, 2) or self._writes % 32 == 0:
                    write_op()
                return self._f.write(data)
        os.fdopen = lambda *args, **kwargs: Writer(real_fdopen(*args, **kwargs))

    def write():
        """Stands for one write into a file being saved (counted by inject)."""

    def run(backup_dir, kill_at=0, when="before", kill_after_s=None):
        """Fork a run; returns ("killed", ops) or ("done", weights bytes, ops)."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 0
            try:
                if kill_at:
                    inject(kill_at, when)
                model = fit(backup_dir)
                payload = {"weights": [w.tobytes().hex() for w in model.get_weights()],
                           "dtypes": [str(w.dtype) for w in model.get_weights()],
                           "iterations": int(model.optimizer.iterations), "ops": OPS}
            except BaseException as error:
                payload, code = {"error": repr(error), "ops": OPS}, 3
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write, data[:65536]):]
            os._exit(code)
        os.close(write)
        started, chunks = time.monotonic(), []
        if kill_after_s is not None:
            time.sleep(kill_after_s)
            os.kill(pid, signal.SIGKILL)
        os.set_blocking(read, False)
        while True:
            try:
                chunk = os.read(read, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                chunks.append(chunk)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - started > DEADLINE:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise SystemExit(f"a run in {backup_dir} hung for {DEADLINE} s (kill_at={kill_at}, {when})")
            time.sleep(0.001)
        while True:
            try:
                chunk = os.read(read, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            return "killed", None
        payload = json.loads(b"".join(chunks) or b"{}")
        if os.WEXITSTATUS(status) != 0 or "error" in payload:
            raise SystemExit(f"a run in {backup_dir} failed: {payload.get('error')} (kill_at={kill_at}, {when})")
        return "done", payload

    warm = tempfile.mkdtemp()
    fit(os.path.join(warm, "backup"))  # imports and first-call set-up happen once, before any fork
    shutil.rmtree(warm)
    reference_dir = os.path.join(root, "reference")
    started = time.monotonic()
    _, reference = run(reference_dir)
    reference_s = time.monotonic() - started
    _, counted = run(os.path.join(root, "count"), kill_at=10 ** 9)
    total = len(counted["ops"])

    summary = {"ops": total, "op_names": sorted(set(counted["ops"])), "kills": 0, "identical": 0,
               "not_identical": [], "leftovers": [], "reference_s": reference_s}

    def check(label, backup_dir, result):
        same = (result["weights"] == reference["weights"] and result["dtypes"] == reference["dtypes"]
                and result["iterations"] == reference["iterations"])
        if same:
            summary["identical"] += 1
        else:
            summary["not_identical"].append(label)
        left = os.listdir(root)
        stray = [name for name in left if name.startswith(".") or name == os.path.basename(backup_dir)]
        if stray:
            summary["leftovers"].append([label, stray])

    trial = 0
    for kill_at in range(1, total + 1):
        for when in ("before", "after"):
            trial += 1
            backup_dir = os.path.join(root, f"t{trial}")
            outcome, _ = run(backup_dir, kill_at=kill_at, when=when)
            if outcome != "killed":
                raise SystemExit(f"run {trial} was not killed at op {kill_at} ({when})")
            summary["kills"] += 1
            outcome, result = run(backup_dir)
            check(f"op {kill_at} {counted['ops'][kill_at - 1]} {when}", backup_dir, result)

    chooser = random.Random(1)
    for index in range(random_kills):
        trial += 1
        backup_dir = os.path.join(root, f"t{trial}")
        delay = chooser.uniform(0, 1.2 * reference_s)
        outcome, result = run(backup_dir, kill_after_s=delay)
        summary["kills"] += outcome == "killed"
        if outcome == "killed":
            outcome, result = run(backup_dir)
        check(f"random kill after {delay:.4f} s ({outcome})", backup_dir, result)

    for index in range(double_kills):  # killed, killed again while resuming or later, then completed
        trial += 1
        backup_dir = os.path.join(root, f"t{trial}")
        first, second = chooser.randint(1, total), chooser.randint(1, total)
        for kill_at in (first, second):
            outcome, result = run(backup_dir, kill_at=kill_at, when=chooser.choice(("before", "after")))
            summary["kills"] += outcome == "killed"
        if outcome == "killed":
            outcome, result = run(backup_dir)
        check(f"killed at op {first} then at op {second}", backup_dir, result)

    print(json.dumps(summary))
''')


@pytest.mark.parametrize("double_checkpoint", [False, True])
def test_sigkill_around_every_file_operation_resumes_bit_identical(tmp_path, double_checkpoint):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    root = tmp_path / "runs"
    root.mkdir()
    env = {**os.environ, "GPUDL_BACKEND": "numpy", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(worker), str(root), str(int(double_checkpoint)), "8", "6"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ops"] >= 20, summary  # every save: mkstemp, writes, fsync, close, replace; the clean-up
    assert {"mkstemp", "write", "fsync", "replace", "unlink", "rmdir"} <= set(summary["op_names"]), summary
    assert summary["kills"] >= 2 * summary["ops"], summary
    assert summary["not_identical"] == [], summary
    assert summary["leftovers"] == [], summary
    print(f"{summary['kills']} kills over {summary['ops']} file operations, "
          f"{summary['identical']} reruns bit-identical")


def test_temporaries_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    from gpudl.saving.atomic import write_atomically

    def killed_mid_write(f):
        f.write(b"half a model")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies inside the write
        try:
            write_atomically(tmp_path / "latest.npz", killed_mid_write)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".gpudl-save-{pid}@") and left[0].endswith(".tmp")
    live = tmp_path / f".gpudl-save-{os.getppid()}@{left[0].split('@')[1]}"  # a live writer's: kept
    live.write_bytes(b"in progress")
    write_atomically(tmp_path / "training_metadata.json", lambda f: f.write(b"{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "training_metadata.json"])
