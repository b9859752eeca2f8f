"""Files written where someone else may have planted a link: created fresh, never followed.

A collected run directory comes from a board, which may be hostile; a temporary file opened by
name there could be a symlink to any file on the laptop. `create_exclusive` opens a new file
with O_CREAT|O_EXCL|O_NOFOLLOW (fails rather than follow or reuse anything), and `atomic_write`
writes through such a file under a random name and renames it over the target (a rename replaces
a link itself, never the file it points to).

Device side: Python 3.6, standard library only.
"""
import contextlib
import json
import os
import uuid

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
