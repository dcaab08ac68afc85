"""Writes that a crash cannot tear: the whole file or the previous one, never half.

A write goes to a temporary file beside its target, named `.gpudl-save-<pid>@<host>.<random>.tmp`,
and is renamed over the target once complete. A process killed mid-write leaves its temporary
behind; the next write into that directory removes the temporaries whose process is gone (on this
host: another host's live writer on a shared directory is never touched).
"""

import os
import socket
import tempfile

from gpudl import collectives

PREFIX, SUFFIX = ".gpudl-save-", ".tmp"


def write_atomically(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it over `path`: a crash
    mid-write leaves the previous file whole. Temporaries of killed writes are removed first.
    In a data-parallel run only rank 0 writes (the other processes hold the same model)."""
    if not collectives.is_rank_zero():
        return
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f"{PREFIX}{os.getpid()}@{_host()}.", suffix=SUFFIX)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    sync_directory(directory)


def sync_directory(directory):
    """Make a rename in `directory` durable (best effort: not every platform can fsync a directory)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def remove_stale_temporaries(directory):
    """Remove the temporaries in `directory` left by writers of this host that no longer run."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        pid, host = _writer(name)
        if pid is None or host != _host() or _running(pid):
            continue
        try:
            os.remove(os.path.join(directory, name))
        except OSError:  # another process removed it first, or it is not ours to remove
            pass


def _writer(name):
    """(pid, host) of the writer that named a temporary `name`, or (None, None)."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)) or "@" not in name:
        return None, None
    pid, _, rest = name[len(PREFIX):-len(SUFFIX)].partition("@")
    host = rest.rpartition(".")[0]
    return (int(pid), host) if pid.isdigit() and host else (None, None)


def _host():
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname()) or "host"


def _running(pid):
    if pid == os.getpid() or os.name == "nt":  # another thread may be writing; Windows' os.kill terminates
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
