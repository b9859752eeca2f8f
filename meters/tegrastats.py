"""Jetson power from `tegrastats` output: a line parser, a live meter and a replay of old logs.

tegrastats prints one line per interval; its power tokens are `NAME cur/avg` (bare mW on JetPack
<= 4, `curmW/avgmW` from JetPack 5, `cur/avg/third` on JetPack 7). Only the first value is an
instantaneous reading: the second is a running mean since tegrastats started, so it is ignored.
Lines are timestamped on receipt; the optional `MM-DD-YYYY HH:MM:SS` prefix has 1 s resolution
and is used only when replaying a log that has nothing better.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from meters import boards
from meters.base import GAP, TOTAL, Meter, MeterError, Sample, now, register


class TegrastatsLineError(MeterError):
    """A line that is not a usable tegrastats line; `lineno` says which (when known)."""

    def __init__(self, message, lineno=None):
        MeterError.__init__(self, message if lineno is None else "line %d: %s" % (lineno, message))
        self.lineno = lineno


# `RAM used/totalMB` opens every tegrastats line, after the date prefix from JetPack 5 on.
_HEAD_RE = re.compile(r"\s*(?:(\d\d)-(\d\d)-(\d{4}) (\d\d):(\d\d):(\d\d)\s+)?RAM \d+/\d+[kMG]B")
# A power token: whitespace, a name, whitespace, then 2 or 3 slash-separated integers each with
# an optional `mW`, then whitespace or the end. `RAM 1/2MB` and `NVENC 716` cannot match.
_RAIL_RE = re.compile(r"\s([A-Za-z][A-Za-z0-9_]*)\s+([0-9]+)(?:mW)?/[0-9]+(?:mW)?"
                      r"(?:/[0-9]+(?:mW)?)?(?=\s|$)")
_UNCONNECTED = "NC"


def parse_record(line):
    """(wall time from the date prefix or None, {rail: mW}) for one tegrastats line.

    Raises TegrastatsLineError for a line that is not tegrastats output or carries no power rails
    (tegrastats run without root on some images prints none).
    """
    head = _HEAD_RE.match(line)
    if head is None:
        raise TegrastatsLineError("not a tegrastats line: %r" % _clip(line))
    # Rails follow the temperature block (`X@42.5C`), so scanning starts at its last `@`.
    rails = {name: int(mw) for name, mw in _RAIL_RE.findall(line, max(head.end(), line.rfind("@")))
             if name != _UNCONNECTED}
    if not rails:
        raise TegrastatsLineError("tegrastats line without power rails (needs root on this "
                                  "board?): %r" % _clip(line))
    return (_wall_time(head.groups()) if head.group(1) is not None else None), rails


_last_date = [None, None]  # (date fields, epoch seconds): the prefix changes once a second


def _wall_time(fields):
    """Epoch seconds of a local `MM-DD-YYYY HH:MM:SS` prefix (mktime is slow, so cached)."""
    if fields != _last_date[0]:
        mon, day, year, hh, mm, ss = (int(g) for g in fields)
        _last_date[:] = [fields, time.mktime((year, mon, day, hh, mm, ss, 0, 0, -1))]
    return _last_date[1]


def parse_line(line):
    """{rail: milliwatts} for one tegrastats line (instantaneous values; NC rails skipped)."""
    return parse_record(line)[1]


def _clip(line, n=80):
    line = line.rstrip("\n")
    return line if len(line) <= n else line[:n] + "..."


class _RailsToSamples(object):
    """Turns {rail: mW} readings into Samples, with the board's total; caches the total rule."""

    def __init__(self, meter_name, total_override=None, model=None):
        self.meter_name = meter_name
        self.override = total_override
        self.model = model
        self._rule_for = {}  # tuple of rail names -> rails forming the total, or None if unknown
        self.total_rails = []
        self.total_error = None

    def _rule(self, key):
        try:
            rails = boards.total_rule(key, model=self.model, override=self.override).rails
            self.total_rails = list(rails)
        except boards.UnknownBoard as exc:
            rails = None
            self.total_error = str(exc)
        self._rule_for[key] = rails
        return rails

    def samples(self, t_mono, t_wall, rails_mw, flags=()):
        name = self.meter_name
        out = [Sample(t_mono, t_wall, name, rail, mw / 1000.0, None, None, None, flags)
               for rail, mw in rails_mw.items()]
        key = tuple(rails_mw)
        rails = self._rule_for[key] if key in self._rule_for else self._rule(key)
        if rails is not None:
            out.append(Sample(t_mono, t_wall, name, TOTAL, sum(rails_mw[r] for r in rails) / 1000.0,
                              None, None, None, flags))
        return out


def replay_records(lines, interval_s=1.0, use_date_prefix=False, on_error=None, total_rails=None):
    """(line number, [Sample per rail + total]) for each usable line of a recorded log.

    Line k (1-based) is taken at t_mono = (k - 1) * interval_s, so lost lines leave gaps; with
    `use_date_prefix` the date prefix gives the time instead (1 s resolution). A bad line raises
    TegrastatsLineError carrying its line number, or, when `on_error(exc)` is given, is passed to
    it and skipped. Blank lines are skipped.
    """
    convert = _RailsToSamples("tegrastats", total_override=total_rails)
    t_first = None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            wall, rails = parse_record(line)
            if use_date_prefix and wall is None:
                raise TegrastatsLineError("no date prefix to time this line by")
        except TegrastatsLineError as exc:
            err = TegrastatsLineError(str(exc), lineno)
            if on_error is None:
                raise err
            on_error(err)
            continue
        if use_date_prefix:
            if t_first is None:
                t_first = wall
            t_mono = wall - t_first
        else:
            t_mono = (lineno - 1) * interval_s
        yield lineno, convert.samples(t_mono, wall, rails)


def replay(lines, interval_s=1.0, use_date_prefix=False, on_error=None, total_rails=None):
    """Samples from a tegrastats log recorded earlier, as a generator (see replay_records)."""
    for _, samples in replay_records(lines, interval_s, use_date_prefix, on_error, total_rails):
        for s in samples:
            yield s


@register
class TegrastatsMeter(Meter):
    """Runs its own `tegrastats --interval MS` and reads its stdout in the reader thread.

    Options: `executable` (default: `tegrastats` on PATH), `total_rails` ("A+B" override of the
    board table). Only our own child process is ever stopped, never `tegrastats --stop`, which
    would kill every user's instances.
    """

    name = "tegrastats"
    trust = 80
    default_interval_s = 0.1

    def __init__(self, interval_s=None, executable=None, total_rails=None):
        Meter.__init__(self, interval_s)
        self.executable = executable
        self._convert = _RailsToSamples(self.name, total_override=total_rails,
                                        model=boards.board_model())
        self._proc = None
        self._stderr = None
        self.bad_lines = 0
        self.last_bad_line = None

    @classmethod
    def probe(cls):
        path = shutil.which("tegrastats")
        if path is None:
            return False, "tegrastats not on PATH (not a Jetson, or JetPack tools missing)"
        return True, "tegrastats at %s" % path

    def open(self):
        exe = self.executable or shutil.which("tegrastats")
        if exe is None:
            raise MeterError("tegrastats: executable not found on PATH; pass executable=PATH")
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            raise MeterError("tegrastats: %s is not an executable file" % exe)
        self.executable = exe

    def start(self):
        """Start the child first so that a bad executable fails here, not in the thread."""
        ms = max(1, int(round(self.interval_s * 1000)))
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen([self.executable, "--interval", str(ms)],
                                          stdout=subprocess.PIPE, stderr=self._stderr,
                                          stdin=subprocess.DEVNULL, universal_newlines=True,
                                          bufsize=1)
        except OSError as exc:
            raise MeterError("tegrastats: cannot run %s: %s" % (self.executable, exc))
        Meter.start(self)

    def stop(self):
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        Meter.stop(self)
        if proc is not None:
            proc.stdout.close()
        self._proc = None

    def close(self):
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def describe(self):
        info = Meter.describe(self)
        info.update(executable=self.executable, bad_lines=self.bad_lines,
                    total_error=self._convert.total_error)
        return info

    def _read_loop(self):
        proc = self._proc
        gap_s = 3 * self.interval_s
        last_t = None
        for line in iter(proc.stdout.readline, ""):
            t_mono, t_wall = now()
            try:
                rails = parse_line(line)
            except TegrastatsLineError as exc:
                if line.strip():
                    self.bad_lines += 1
                    self.last_bad_line = str(exc)
                continue
            flags = (GAP,) if last_t is not None and t_mono - last_t > gap_s else ()
            last_t = t_mono
            self._emit(self._convert.samples(t_mono, t_wall, rails, flags))
            self.total_rails = self._convert.total_rails
        if not self._stopping.is_set():
            raise MeterError("tegrastats exited with code %s: %s"
                             % (proc.wait(), self._stderr_tail()))

    def _stderr_tail(self):
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-300:] or "(no message)"
