"""Jetson power from `tegrastats` output: a line parser, a live meter and a replay of old logs.

tegrastats prints one line per interval; its power tokens are `NAME cur/avg` (bare mW on JetPack
<= 4, `curmW/avgmW` from JetPack 5, `cur/avg/third` on JetPack 7). Only the first value is an
instantaneous reading: the second is a running mean since tegrastats started, so it is ignored.
Lines are timestamped on receipt. A replayed log is timed by its own `MM-DD-YYYY HH:MM:SS`
prefix where it has one (1 s resolution, so the interval between lines is detected from how
often the second changes), else by the interval the user gives; never by guessing.
"""
import contextlib
import gc
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from meters import boards
from meters.base import (GAP, TOTAL, Freshness, Meter, MeterError, ReadError, Sample, now,
                         register)


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


class ReplayTimingError(MeterError):
    """A log whose timing cannot be known: no usable date stamps and no interval given."""


class Replay(object):
    """A replayed log: `records` [(line number, [Samples])], how it was timed, what was skipped."""

    def __init__(self, records, interval_s, timed_by, bad_lines, undecodable_lines):
        self.records = records
        self.interval_s = interval_s
        self.timed_by = timed_by  # "date stamps" or "interval"
        self.bad_lines = bad_lines
        self.undecodable_lines = undecodable_lines

    def samples(self):
        return [s for _, line_samples in self.records for s in line_samples]


# The detected and the given interval may differ this much (lost lines, clock drift) before the
# log is refused as contradicting the user.
_INTERVAL_TOLERANCE = 0.25


def _decode(line, lineno):
    if isinstance(line, bytes):
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            err = TegrastatsLineError("not UTF-8 text (byte 0x%02x at column %d)"
                                      % (line[exc.start], exc.start + 1), lineno)
            err.undecodable = True
            raise err
    return line


def _parse_log(lines, on_error):
    """[(line number, wall stamp or None, {rail: mW})] and the counts of skipped lines."""
    parsed = []
    bad = undecodable = 0
    for lineno, line in enumerate(lines, 1):
        try:
            text = _decode(line, lineno)
            if not text.strip():
                continue
            wall, rails = parse_record(text)
        except TegrastatsLineError as exc:
            err = exc if exc.lineno is not None else TegrastatsLineError(str(exc), lineno)
            err.undecodable = getattr(exc, "undecodable", False)
            if on_error is None:
                raise err
            if err.undecodable:
                undecodable += 1
            else:
                bad += 1
            on_error(err)
            continue
        parsed.append((lineno, wall, rails))
    return parsed, bad, undecodable


def _stamp_interval(parsed):
    """Seconds per line from the 1 s date stamps, or None when they change second fewer than
    twice. Between two changes of second, L lines took S seconds; segments whose S/L is far from
    the median (a clock step, a burst of lost lines) are left out, the rest give sum S / sum L."""
    changes = [(lineno, wall) for (lineno, wall, _), (_, prev, _) in zip(parsed[1:], parsed)
               if wall != prev]
    segments = [(b_wall - a_wall, b_line - a_line)
                for (a_line, a_wall), (b_line, b_wall) in zip(changes, changes[1:])
                if b_wall > a_wall]
    if not segments:
        return None
    typical = sorted(sec / float(n) for sec, n in segments)[len(segments) // 2]
    kept = [(sec, n) for sec, n in segments if 0.5 * typical <= sec / float(n) <= 2 * typical]
    return sum(sec for sec, _ in kept) / float(sum(n for _, n in kept))


def _stamped_times(parsed, interval_s):
    """Each line's time: one interval after the previous line (per line number), but never
    outside the second its own date stamp names; the first group of lines ends at its second's
    end, so a 10-lines-a-second log is spread over its seconds, not stacked on them. A stamp
    that goes back (the clock was stepped) moves the stamps, not time: lines keep their pace."""
    first = parsed[0][1]
    n_first = sum(1 for _, wall, _ in parsed if wall == first)
    t = first + max(0.0, 1.0 - n_first * interval_s)
    times = [t]
    offset = 0.0
    for (lineno, wall, _), (prev_lineno, _, _) in zip(parsed[1:], parsed):
        due = t + (lineno - prev_lineno) * interval_s
        if wall + offset < t - 1.0:
            offset = due - wall
        stamp = wall + offset
        t = max(t, min(max(due, stamp), stamp + 1.0 - 1e-6))
        times.append(t)
    return times


def replay_log(lines, interval_s=None, on_error=None, total_rails=None, require_timing=True):
    """A Replay of a tegrastats log recorded earlier (lines as str or bytes).

    Timing: the log's own date stamps (JetPack 5 on) whenever every line has one; the interval
    between lines is detected from them (a given `interval_s` must agree within 25%, and then
    spaces the lines). Without stamps `interval_s` times line k at (k - 1) x interval, so lost
    lines leave gaps. Neither: ReplayTimingError, unless `require_timing` is False (only the
    rails are wanted), when the samples' t_mono and t_wall are None. A line that is not tegrastats output or not
    UTF-8 raises TegrastatsLineError carrying its line number, or, with `on_error(exc)`, is
    passed to it, counted (`exc.undecodable` tells the two apart) and skipped.
    """
    with _no_gc():  # many live records would make the collector rescan them again and again
        parsed, bad, undecodable = _parse_log(lines, on_error)
    if not parsed:
        return Replay([], interval_s, None, bad, undecodable)
    if interval_s is not None and not interval_s > 0:
        raise ReplayTimingError("the interval must be a positive number of seconds, got %r"
                                % interval_s)
    stamped = all(wall is not None for _, wall, _ in parsed)
    detected = _stamp_interval(parsed) if stamped else None
    if detected is not None and interval_s is not None and \
            abs(detected - interval_s) > _INTERVAL_TOLERANCE * interval_s:
        raise ReplayTimingError(
            "the log's date stamps say %.3g s between lines but the interval given is %.3g s; "
            "drop --interval to use the stamps" % (detected, interval_s))
    step = interval_s if interval_s is not None else detected
    if step is None and not require_timing:
        convert = _RailsToSamples("tegrastats", total_override=total_rails)
        return Replay([(lineno, convert.samples(None, None, rails)) for lineno, _, rails in parsed],
                      None, None, bad, undecodable)
    if step is None:
        raise ReplayTimingError(
            "cannot time this log: %s; pass --interval SECONDS (tegrastats' --interval / 1000)"
            % ("its date stamps change second fewer than twice" if stamped
               else "its lines carry no date stamps"))
    if stamped:
        walls = _stamped_times(parsed, step)
        times = [w - walls[0] for w in walls]
        timed_by = "date stamps"
    else:
        walls = [None] * len(parsed)
        times = [(lineno - parsed[0][0]) * step for lineno, _, _ in parsed]
        timed_by = "interval"
    convert = _RailsToSamples("tegrastats", total_override=total_rails)
    with _no_gc():
        records = [(lineno, convert.samples(t, wall, rails))
                   for (lineno, _, rails), t, wall in zip(parsed, times, walls)]
    return Replay(records, step, timed_by, bad, undecodable)


@contextlib.contextmanager
def _no_gc():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def replay(lines, interval_s=None, on_error=None, total_rails=None):
    """Samples from a tegrastats log recorded earlier, oldest first (see replay_log)."""
    return replay_log(lines, interval_s, on_error, total_rails).samples()


@register
class TegrastatsMeter(Meter):
    """Runs its own `tegrastats --interval MS` and reads its stdout in the reader thread.

    Options: `executable` (default: `tegrastats` on PATH), `total_rails` ("A+B" override of the
    board table). Only our own child process is ever stopped, never `tegrastats --stop`, which
    would kill every user's instances. A child that dies mid-run (killed, crashed) is started
    again with backoff; the readings it cost are a flagged gap, counted in `restarts`.
    tegrastats reads its sensors once per line (`sensor_interval_s` = the interval); lines whose
    readings stay the same for longer than base.STALE_PERIODS of them are flagged `stale`.
    """

    name = "tegrastats"
    holds_readings = True
    trust = 80
    default_interval_s = 0.1
    max_power_w = 1000.0  # the same INA3221 sensors as the ina3221 meter

    def __init__(self, interval_s=None, executable=None, total_rails=None):
        Meter.__init__(self, interval_s)
        self.sensor_interval_s = self.interval_s
        self._fresh = Freshness(self.interval_s)
        self.executable = executable
        self._convert = _RailsToSamples(self.name, total_override=total_rails,
                                        model=boards.board_model())
        self._proc = None
        self._proc_lock = threading.Lock()
        self._stderr = None
        self.bad_lines = 0
        self.last_bad_line = None
        self.restarts = 0  # times the child died under us and was started again

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
        self._stderr = tempfile.TemporaryFile()
        self._proc = self._spawn()
        Meter.start(self)

    def _spawn(self):
        ms = max(1, int(round(self.interval_s * 1000)))
        try:
            return subprocess.Popen([self.executable, "--interval", str(ms)],
                                    stdout=subprocess.PIPE, stderr=self._stderr,
                                    stdin=subprocess.DEVNULL, universal_newlines=True,
                                    bufsize=1, errors="replace")
        except OSError as exc:
            raise MeterError("tegrastats: cannot run %s: %s" % (self.executable, exc))

    def stop(self):
        self._stopping.set()
        with self._proc_lock:
            proc = self._proc
            _end(proc)
        Meter.stop(self)
        with self._proc_lock:
            _end(self._proc)  # a child the reader started while we were stopping
            if self._proc is not None:
                self._proc.stdout.close()
            self._proc = None

    def close(self):
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def describe(self):
        info = Meter.describe(self)
        info.update(executable=self.executable, bad_lines=self.bad_lines,
                    restarts=self.restarts, total_error=self._convert.total_error)
        return info

    def _read_loop(self):
        """Read lines until stopped; a child that exits or breaks its pipe after it has worked
        is restarted with backoff, and the first line after it is flagged `gap`. One that never
        gave a reading (bad options, wrong board) ends the meter with its message."""
        gap_s = 3 * self.interval_s
        last_t = None
        failures = 0
        while not self._stopping.is_set():
            proc = self._proc
            try:
                for line in iter(proc.stdout.readline, ""):
                    t_mono, t_wall = now()
                    try:
                        rails = parse_line(line)
                    except TegrastatsLineError as exc:
                        if line.strip():
                            self.bad_lines += 1
                            self.last_bad_line = str(exc)
                        continue
                    failures = 0
                    flags = (GAP,) if last_t is not None and t_mono - last_t > gap_s else ()
                    last_t = t_mono
                    samples = self._convert.samples(t_mono, t_wall, rails, flags)
                    self._emit(self._stale(samples) if self._fresh.stale(rails, t_mono)
                               else samples)
                    self.total_rails = self._convert.total_rails
            except (IOError, OSError, ValueError) as exc:  # the pipe broke under us
                reason = exc
            else:
                reason = None
            if self._stopping.is_set():
                break
            failures += 1
            code = _end(proc)
            why = "tegrastats %s: %s" % (
                "exited with code %s" % code if reason is None else "pipe failed: %s" % reason,
                self._stderr_tail())
            if last_t is None:
                raise MeterError(why)
            self._note_read_error(ReadError(why))
            if self._stopping.wait(self._backoff(failures)):
                break
            with self._proc_lock:
                if self._stopping.is_set():
                    break
                proc.stdout.close()
                try:
                    self._proc = self._spawn()
                except MeterError as exc:  # the executable is gone: try again later
                    self._note_read_error(exc)
                    continue
                self.restarts += 1

    def _stderr_tail(self):
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-300:] or "(no message)"


def _end(proc):
    """Terminate our child (SIGKILL if it lingers) and return its exit code; None is a no-op."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
