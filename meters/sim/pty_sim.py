"""A simulated meter on the far end of a real pseudo-terminal, with faults on demand.

The driver opens `.path`, a symlink to the pty's slave side. `unplug()` removes the link and
closes the pty (the driver's reads then fail as on a pulled USB cable); `replug()` points the
same link at a fresh pty. Power comes from a `PowerProfile` at sim time t = time.monotonic() - t0,
so `energy_between()` is the exact truth for any stretch of host time.

Faults: `dribble` (each write split into small pieces with pauses), `garbage` (bytes sent before
the first reply or record after every plug), `drop_frac` (records or replies silently lost),
`freeze()` (the device keeps answering, but with what it measured at that moment, until
`thaw()`: a hung sensor behind a live link; simulators that measure through `measured_at`).
"""
import fcntl
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty

from meters.sim.profile import PowerProfile


class PtySimulator(object):
    """Base: owns the pty, the symlink and the thread. Subclasses speak a protocol:

      on_input(data)   bytes the driver wrote
      next_tick()      sim time of the next timed event (a streamed record, an update), or None
      on_tick(t)       that event is due at sim time t
      on_plug()        the (new) cable is in: reset per-connection state
    """

    kind = "meter"

    def __init__(self, profile=None, dribble=False, garbage=b"", drop_frac=0.0, seed=1):
        self.profile = profile if profile is not None else PowerProfile.default()
        self.dribble = dribble
        self.garbage = garbage
        self.drop_frac = float(drop_frac)
        self.rng = random.Random(seed)
        self.frozen_at = None
        self.t0 = None
        self.dropped = 0
        self._dir = tempfile.mkdtemp(prefix="ebedge-sim-")
        self.path = os.path.join(self._dir, "tty" + self.kind.upper())
        self._master = self._slave = None
        self._garbage_due = False
        self._requests = []
        self._done = threading.Condition()
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread = None

    # -- control (any thread) -------------------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        self._plug()
        self._thread = threading.Thread(target=self._run, name="sim-%s" % self.kind)
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self):
        self._stopping = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5.0)
        self._unplug()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)

    def unplug(self):
        self._request("unplug")

    def replug(self):
        self._request("replug")

    def now(self):
        """Sim time: seconds since start()."""
        return time.monotonic() - self.t0

    def freeze(self):
        self.frozen_at = self.now()

    def thaw(self):
        self.frozen_at = None

    def measured_at(self, t):
        """The sim time whose values the device reports at `t` (its last one while frozen)."""
        return t if self.frozen_at is None else min(t, self.frozen_at)

    def energy_between(self, t0_mono, t1_mono):
        """Exact joules the simulated device used between two host monotonic times."""
        return self.profile.energy(t0_mono - self.t0, t1_mono - self.t0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- for subclasses ----------------------------------------------------------------------------
    def send(self, data):
        """Write to the driver as the device would; lost silently when nobody is listening."""
        if self._master is None:
            return
        if self._garbage_due:
            self._garbage_due = False
            data = self.garbage + data
        pieces = [data]
        if self.dribble:
            pieces = []
            while data:
                n = self.rng.randint(1, 12)
                pieces.append(data[:n])
                data = data[n:]
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.0005)
            try:
                os.write(self._master, piece)
            except OSError:  # buffer full (nobody reading) or the slave is gone: bytes are lost
                return

    def drop(self):
        """True for the records the fault settings say to lose."""
        if self.drop_frac and self.rng.random() < self.drop_frac:
            self.dropped += 1
            return True
        return False

    def on_input(self, data):
        pass

    def next_tick(self):
        return None

    def on_tick(self, t):
        pass

    def on_plug(self):
        pass

    # -- internals ---------------------------------------------------------------------------------
    def _request(self, what):
        with self._done:
            self._requests.append(what)
            os.write(self._wake_w, b"x")
            while what in self._requests:
                self._done.wait(1.0)

    def _plug(self):
        master, slave = os.openpty()
        tty.setraw(slave)
        fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._master, self._slave = master, slave
        tmp = self.path + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.rename(tmp, self.path)  # atomic: the path never points at a dead pty
        self._garbage_due = bool(self.garbage)
        self.on_plug()

    def _unplug(self):
        if self._master is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = None

    def _serve_requests(self):
        with self._done:
            for what in self._requests:
                if what == "unplug":
                    self._unplug()
                elif self._master is None:
                    self._plug()
            self._requests = []
            self._done.notify_all()

    def _run(self):
        while not self._stopping:
            self._serve_requests()
            due = self.next_tick()
            timeout = 0.2 if due is None else min(0.2, max(0.0, due - self.now()))
            fds = [self._wake_r] + ([self._master] if self._master is not None else [])
            readable = select.select(fds, [], [], timeout)[0]
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
            if self._master is not None and self._master in readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if data:
                    self.on_input(data)
            due = self.next_tick()
            if due is not None and self.now() >= due:
                self.on_tick(self.now())
