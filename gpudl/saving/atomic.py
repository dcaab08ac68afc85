"""Writes that a crash cannot tear: the whole file or the previous one, never half."""

import os
import tempfile


def write_atomically(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it over `path`: a crash
    mid-write leaves the previous file whole."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".gpudl-save-", suffix=".tmp")
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
