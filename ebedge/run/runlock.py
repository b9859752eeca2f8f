"""One run per board: an OS lock that the running process itself holds.

The lock is `fcntl.flock` on `<runs root>/.ebedge-run.lock`. The process that runs a run holds it
for the whole run and the kernel drops it the moment that process dies (SIGKILL and power loss
included), so "is a run live?" is "can the lock be taken?", never a heartbeat or a clock. The
file also holds a JSON record of the holder (run id, pid, a random owner id), read only to name
the live run in a refusal.

The agent takes the lock before it starts a detached run and hands the open lock to the child
(`ENV_FD`); the child adopts it (`adopt_inherited`) and keeps it until it exits. The runner's
`guarded` wrapper takes it for runs written straight into a runs root by hand.

Device side: Python 3.6, standard library only.
"""
import errno
import fcntl
import functools
import inspect
import json
import os
import socket
import time
import uuid

from ebedge.errors import EbedgeError

DEFAULT_ROOT = "~/ebedge-runs"
LOCK_NAME = ".ebedge-run.lock"
RUN_DIR_LOCK = ".ebedge-rundir.lock"  # inside a run directory: held by the process running it
ENV_FD = "EBEDGE_RUN_LOCK_FD"  # "<fd>:<lock path>" handed to a detached run
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_held = {}  # real path of a lock file -> RunLock this process holds


class RunBusy(EbedgeError):
    """Another run holds the board; `record` is what it wrote about itself."""

    def __init__(self, message, record):
        EbedgeError.__init__(self, message)
        self.record = record


def lock_path(root):
    return os.path.join(root, LOCK_NAME)


def _key(path):
    return os.path.realpath(path)


def _try_flock(fd, operation, tries):
    """True once `operation` (non-blocking) succeeds; False when still busy after `tries`."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except (IOError, OSError) as exc:
            if exc.errno not in _BUSY:
                raise
        if attempt + 1 < tries:
            time.sleep(0.02)  # a probe (`holder`) holds it for microseconds
    return False


def _read_record(fd):
    try:
        data = os.pread(fd, 65536, 0)
        record = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError, UnicodeDecodeError):
        record = {}
    return record if isinstance(record, dict) else {}


def busy_message(record, root):
    return ("another run is live in %s: %s (pid %s, started %s); wait for it, or stop it "
            "(`ebedge remote stop HOST %s [--kill]`, on the board `ebedge agent stop %s`)"
            % (root, record.get("run_id") or "unknown", record.get("pid") or "?",
               when_text(record.get("started_wall")), record.get("run_id") or "RUN_ID",
               record.get("run_id") or "RUN_ID"))


def when_text(stamp):
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(stamp)))
    except (TypeError, ValueError):
        return "at an unknown time"


class RunLock(object):
    """This process's hold on a runs root's lock."""

    def __init__(self, path, fd, record):
        self.path = path
        self.fd = fd
        self.record = record
        self.remove_on_release = False

    def update(self, **fields):
        """Rewrite the holder record (e.g. with the pid of the child that now holds it)."""
        self.record.update(fields)
        data = json.dumps(self.record, sort_keys=True).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def hand_over(self):
        """Close this process's handle without unlocking: a child holding the same open lock
        (passed with `pass_fds`) keeps it."""
        _held.pop(_key(self.path), None)
        os.close(self.fd)

    def release(self):
        _held.pop(_key(self.path), None)
        try:
            if self.remove_on_release and _is_file_of(self.fd, self.path):
                os.unlink(self.path)  # still locked: whoever opened it retries on the new file
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)

    def child_env(self):
        """Environment entry that tells a child started with pass_fds=(fd,) it holds the lock."""
        return {ENV_FD: "%d:%s" % (self.fd, self.path)}


def _take(path, fields, busy_text):
    """Lock `path` (created if missing) for this process and record `fields` in it; RunBusy
    with `busy_text(holder's record)` when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC,
                     0o644)
        try:
            if not _try_flock(fd, fcntl.LOCK_EX, tries=5):
                record = _read_record(fd)
                raise RunBusy(busy_text(record), record)
        except BaseException:
            os.close(fd)
            raise
        if _is_file_of(fd, path):
            break
        os.close(fd)  # its holder removed the file as it let go: lock the new one
    lock = RunLock(path, fd, {})
    lock.update(owner=uuid.uuid4().hex, host=socket.gethostname(), started_wall=time.time(),
                **fields)
    _held[_key(path)] = lock
    return lock


def _is_file_of(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def acquire(root, run_id, pid=None):
    """Take `root`'s run lock for `run_id`; RunBusy naming the live run when another holds it."""
    os.makedirs(root, exist_ok=True)
    return _take(lock_path(root), {"run_id": run_id, "pid": pid or os.getpid()},
                 lambda record: busy_message(record, root))


def hold_run_dir(out):
    """This process runs the run in `out`: lock `out/RUN_DIR_LOCK` until the run ends, or
    RunBusy when another live process runs it (a resume would relabel its work `lost`).
    Idempotent; a lock whose file was removed since (--overwrite) is taken again."""
    path = os.path.join(out, RUN_DIR_LOCK)
    mine = _held.get(_key(path))
    if mine is not None:
        if _is_file_of(mine.fd, path):
            return mine
        mine.release()
    os.makedirs(out, exist_ok=True)
    lock = _take(path, {"run_id": os.path.basename(os.path.normpath(out)), "pid": os.getpid()},
                 lambda record: "%s is being run right now by pid %s (started %s); wait for it "
                                "to end or stop it before resuming or overwriting it"
                                % (out, record.get("pid") or "?",
                                   when_text(record.get("started_wall"))))
    lock.remove_on_release = True  # a run directory keeps no lock file once nobody runs it
    return lock


def holder(root):
    """The live run's record ({"run_id", "pid", ...}), or None when no run holds `root`."""
    path = lock_path(root)
    mine = _held.get(_key(path))
    if mine is not None:
        return dict(mine.record)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    except (IOError, OSError):
        return None  # never locked here (or not a plain file: nothing we made)
    try:
        if _try_flock(fd, fcntl.LOCK_SH, tries=1):
            return None
        return _read_record(fd)
    finally:
        os.close(fd)


def adopt_inherited(environ=None):
    """In a detached run: keep the lock the agent handed over (and stop passing it on)."""
    environ = os.environ if environ is None else environ
    value = environ.pop(ENV_FD, None)
    if not value:
        return None
    fd_text, _, path = value.partition(":")
    fd = int(fd_text)
    os.set_inheritable(fd, False)  # meters' subprocesses must not keep the board locked
    lock = RunLock(path, fd, _read_record(fd))
    _held[_key(path)] = lock
    return lock


def _lock_applies(root):
    """Runs written into a runs root take its lock: the default root, or one the agent uses."""
    return (_key(root) == _key(os.path.expanduser(DEFAULT_ROOT))
            or os.path.exists(lock_path(root)))


def guarded(execute):
    """Wrap the runner's `execute(settings, out=None, resume=False, ...)`: a run whose `out` lies
    in a runs root holds that root's lock for its whole life, or is refused (RunBusy); a run
    directory that already holds a run is locked (`hold_run_dir`) before `execute` touches it,
    and the lock `execute` takes on a new one is released when it returns."""
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def wrapper(*args, **kwargs):
        out = signature.bind(*args, **kwargs).arguments.get("out")
        before = set(_held)
        try:
            if out is not None and os.path.exists(os.path.join(out, "config.json")):
                hold_run_dir(out)  # before the run reads, settles or replaces anything in it
            return _in_runs_root(execute, out, args, kwargs)
        finally:
            for key in set(_held) - before:  # the run-directory lock this run took
                if os.path.basename(key) == RUN_DIR_LOCK:
                    _held[key].release()
    return wrapper


def _in_runs_root(execute, out, args, kwargs):
    if out is None:
        return execute(*args, **kwargs)
    root = os.path.dirname(os.path.abspath(out))
    if _key(lock_path(root)) in _held or not _lock_applies(root):
        return execute(*args, **kwargs)
    lock = acquire(root, os.path.basename(os.path.normpath(out)))
    try:
        return execute(*args, **kwargs)
    finally:
        lock.release()
