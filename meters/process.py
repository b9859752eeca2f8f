"""Meters read in a process of their own, so nothing in the measured process can starve them.

A training process that holds the interpreter lock (pure-Python work, a long C call) stops every
thread in it, a meter's reader too; its samples would then be missing for exactly the work being
measured. Here the meters are opened and read by a child Python process (`python -m
meters.process`); its readings carry the child's `time.monotonic()`, which on Linux is the same
clock (CLOCK_MONOTONIC) in every process, so the samples and their timestamps are those a reader
thread would have taken. The child buffers while the parent is busy and sends batches over a pipe.

Protocol: length-prefixed pickles. Parent -> child: a spec {"meters": [(name, options)],
"path": sys.path, "preload": [modules]}, then "start", then "stop" (or EOF: the parent died).
Child -> parent: ("opened", [describe]) or ("error", line); ("samples", [rows], {name: error});
("end", [describe], {name: error}, [fault lines]).
"""
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback

from meters import base

DRAIN_S = 0.1  # how often the child sends what its meters read
_HEADER = struct.Struct("!I")
_PROTOCOL = 2  # Python 3.6 on the board reads what any newer host writes


def send(stream, obj):
    data = pickle.dumps(obj, _PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream):
    """The next message, or None at end of stream."""
    head = _read_exactly(stream, _HEADER.size)
    if head is None:
        return None
    data = _read_exactly(stream, _HEADER.unpack(head)[0])
    return None if data is None else pickle.loads(data)


def _read_exactly(stream, n):
    parts = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _row(s):
    return (s.t_mono, s.t_wall, s.meter, s.rail, s.power_w, s.voltage_v, s.current_a,
            s.meter_energy_j, s.flags)


def sample_of(row):
    t_mono, t_wall, meter, rail, power_w, voltage_v, current_a, meter_energy_j, flags = row
    return base.Sample(t_mono, t_wall, meter, rail, power_w, voltage_v, current_a,
                       meter_energy_j, flags)


def _errors(opened):
    return {m.name: (str(m.error) if m.error is not None else None) for m in opened}


def _serve(inp, out):
    """The child: open, then read until told to stop (or the parent goes away)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    spec = receive(inp)
    sys.path[:0] = [p for p in spec.get("path", []) if p not in sys.path]
    opened = []
    name = "?"
    try:
        for module in spec.get("preload", []):
            __import__(module)
        for name, options in spec["meters"]:
            meter = base.create(name, **options)
            meter.open()
            opened.append(meter)
    except Exception as exc:  # a MeterError, or an option the driver does not take
        for meter in opened:
            _quietly(meter.close)
        send(out, ("error", _one_line(exc, name)))
        return
    send(out, ("opened", [m.describe() for m in opened]))
    if receive(inp) != "start":
        for meter in opened:
            _quietly(meter.close)
        return
    stop = threading.Event()

    def watch():
        receive(inp)  # "stop", or None when the parent died
        stop.set()
    watcher = threading.Thread(target=watch, name="sampler-stop")
    watcher.daemon = True
    watcher.start()
    for meter in opened:
        meter.start()
    while not stop.wait(DRAIN_S):
        _send_samples(out, opened)
    for meter in opened:
        meter.stop()
    _send_samples(out, opened)
    for meter in opened:
        _quietly(meter.close)
    faults = [m.fault_summary() for m in opened if m.fault_summary()]
    send(out, ("end", [m.describe() for m in opened], _errors(opened), faults))


def _send_samples(out, opened):
    rows = []
    for meter in opened:
        rows.extend(_row(s) for s in meter.samples())
    send(out, ("samples", rows, _errors(opened)))


def _one_line(exc, name):
    if isinstance(exc, base.MeterError):
        return str(exc)
    return "meter %s: %s" % (name, exc)


def _quietly(fn):
    try:
        fn()
    except Exception:  # closing must not hide the error that brought us here
        pass


class MeterView(object):
    """What the parent knows of a meter read by the child: its name, interval, facts, error."""

    def __init__(self, info):
        self.info = info
        self.name = info["name"]
        self.interval_s = info["interval_s"]
        self.error = None

    def describe(self):
        return dict(self.info)


class MeterProcess(object):
    """Opens meters in a child process; `on_samples(list of Sample)` gets every batch (called
    from a reader thread). `views` lists the opened meters. Raises MeterError when one cannot be
    opened."""

    def __init__(self, specs, on_samples):
        self.on_samples = on_samples
        self.faults = []
        self.latest = {}  # meter name -> t_mono of its newest sample received
        self._ended = threading.Event()
        self._reader = None
        preload = sorted(set(base.get(name).__module__ for name, _ in specs) -
                         set(base._BUILTIN_MODULES) - {"__main__"})
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(base.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]]
                                                      if env.get("PYTHONPATH") else []))
        self._proc = subprocess.Popen([sys.executable, "-m", "meters.process"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            send(self._proc.stdin, {"meters": list(specs), "path": list(sys.path),
                                    "preload": preload})
            reply = receive(self._proc.stdout)
        except (IOError, OSError) as exc:
            reply = ("error", "the sampler process failed to start: %s" % exc)
        if not reply or reply[0] != "opened":
            self._finish(timeout=5)
            raise base.MeterError(reply[1] if reply else "the sampler process exited at once")
        self.views = [MeterView(info) for info in reply[1]]

    def start(self):
        send(self._proc.stdin, "start")
        self._reader = threading.Thread(target=self._read, name="sampler-pipe")
        self._reader.daemon = True
        self._reader.start()

    def _read(self):
        try:
            while True:
                msg = receive(self._proc.stdout)
                if msg is None:
                    break
                if msg[0] == "samples":
                    self._deliver(msg[1], msg[2])
                elif msg[0] == "end":
                    _, describes, errors, self.faults = msg
                    for view, info in zip(self.views, describes):
                        view.info = info
                    self._set_errors(errors)
                    break
        finally:
            self._ended.set()

    def _deliver(self, rows, errors):
        self._set_errors(errors)
        if rows:
            samples = [sample_of(r) for r in rows]
            self.on_samples(samples)
            for s in samples:
                self.latest[s.meter] = max(self.latest.get(s.meter, s.t_mono), s.t_mono)

    def _set_errors(self, errors):
        for view in self.views:
            if errors.get(view.name):
                view.error = errors[view.name]

    def stop(self, timeout=15.0):
        """Tell the child to stop and wait for its last samples; a child that does not end in
        `timeout` seconds (a meter whose close hangs) is killed, and that is said."""
        try:
            send(self._proc.stdin, "stop")
        except (IOError, OSError):  # it is gone already; its pipe tells the rest
            pass
        if self._reader is not None and not self._ended.wait(timeout):
            self.faults = list(self.faults) + ["sampler process: did not stop within %gs; killed"
                                               % timeout]
        self._finish(timeout=2)

    def _finish(self, timeout):
        try:
            self._proc.stdin.close()
        except (IOError, OSError):
            pass
        deadline = time.monotonic() + timeout
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def main():
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # a driver that prints must not corrupt the pipe
    code = 0
    try:
        _serve(stdin, stdout)
    except (IOError, OSError):  # the parent went away mid-message: nobody left to tell
        code = 1
    except Exception:
        traceback.print_exc()
        code = 1
    # a library's non-daemon thread left behind (a jtop client whose service is stopped) must
    # not keep the sampler alive: leave without waiting for it
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
