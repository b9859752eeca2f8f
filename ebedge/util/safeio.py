"""Files that survive crashes, full disks and planted links: the writers every recorder shares
(the run directory, DDP node directories, Monitor's log directory, recordings).

`write_atomic` and `write_json_atomic` replace a file whole or not at all; `CsvLog` appends rows
flushed at once (fsynced at most once a second) and, reopened after a crash, first drops a last
row cut short; a full disk becomes `DiskFull` naming the file.

A collected run directory comes from a board, which may be hostile; a temporary file opened by
name there could be a symlink to any file on the laptop. `create_exclusive` opens a new file
with O_CREAT|O_EXCL|O_NOFOLLOW (fails rather than follow or reuse anything), and `atomic_write`
writes through such a file under a random name and renames it over the target (a rename replaces
a link itself, never the file it points to).

Device side: Python 3.6, standard library only.
"""
import contextlib
import csv
import errno
import io
import json
import os
import threading
import time
import uuid

import numpy as np

from ebedge.errors import EbedgeError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
          | getattr(os, "O_CLOEXEC", 0))


def create_exclusive(path, mode="w", perms=0o644, **kwargs):
    """A new file at `path` opened for writing; FileExistsError if anything (even a link) is there."""
    fd = os.open(path, _FLAGS, perms)
    try:
        return os.fdopen(fd, mode, **kwargs)
    except Exception:
        os.close(fd)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="w", **kwargs):
    """Write `path` through a fresh temporary file beside it, renamed into place on success."""
    tmp = "%s.%s.tmp" % (path, uuid.uuid4().hex[:12])
    f = create_exclusive(tmp, mode, **kwargs)
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path, data, default=None):
    """JSON to `path`, atomically and without following links."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, default=default)


class DiskFull(EbedgeError):
    """A write failed for lack of space (or a file-size limit); the message says which file."""


def disk_full(exc, path=None):
    """`exc` as a DiskFull when it is an out-of-space OSError, else None."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return DiskFull("disk full (%s: %s)" % (path or exc.filename or "write",
                                                os.strerror(exc.errno)))
    return None


def write_atomic(path, write):
    """Write through `write(file)` to a fresh temporary file (O_EXCL|O_NOFOLLOW, see safeio), fsync,
    rename over `path`; on any failure the temporary file is removed and `path` keeps its last good
    content, and a full disk becomes DiskFull naming the file."""
    try:
        with atomic_write(path, "wb") as f:
            write(f)
    except BaseException as exc:
        full = disk_full(exc, path)
        if full is not None:
            raise full
        raise


def write_json_atomic(path, data):
    blob = json.dumps(data, indent=2, sort_keys=True, default=json_default).encode("utf-8")
    write_atomic(path, lambda f: f.write(blob))


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("not JSON serialisable: %r" % (value,))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _repair(path, columns):
    """Make an existing CSV appendable: drop a last row cut short by a crash or a full disk
    (no newline at its end), and widen an older header that lacks newer columns."""
    with open(path, "rb") as f:
        data = f.read()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        with open(path, "r+b") as f:
            f.truncate(cut)
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    if header and list(header) != list(columns) and list(columns[:len(header)]) == header:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        write_atomic(path, lambda out: out.write(csv_bytes(columns, rows)))


def csv_bytes(columns, dict_rows):
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows([blank(r.get(c)) for c in columns] for r in dict_rows)
    return text.getvalue().encode("utf-8")


class CsvLog(object):
    """An append-only CSV file with a header, flushed after every write."""

    def __init__(self, path, columns):
        self.path = path
        self.columns = columns
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        if not fresh:
            _repair(path, columns)
        self._file = open(path, "a", newline="")
        self._writer = csv.writer(self._file)
        self._lock = threading.Lock()
        self._last_sync = 0.0
        if fresh:
            self._writer.writerow(columns)
            self._file.flush()

    def write(self, rows):
        with self._lock:
            self._writer.writerows(rows)
            self._file.flush()
            if time.monotonic() - self._last_sync > 1.0:
                os.fsync(self._file.fileno())
                self._last_sync = time.monotonic()

    def close(self):
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                finally:
                    self._file.close()


def blank(value):
    return "" if value is None else value
