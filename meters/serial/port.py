"""The port resource and the reader machinery that every serial meter shares.

A driver says how to talk to its meter (a framer, `identify`, `begin`, `acquire`, `to_sample`);
this module owns the port: an exclusive open that refuses with a clear message when the port is
missing, busy or answers as another device, one reader thread per meter, `gap` flags when
readings stop coming, and reopening the port after the cable is pulled (first sample after it:
`resync`). Every sample read before and after a loss is kept.
"""
import errno
import os
import time

import serial

try:
    import termios
    _TTY_ERRORS = (termios.error,)  # tcflush on a vanished tty; not an OSError
except ImportError:  # not a POSIX host
    _TTY_ERRORS = ()

from meters.base import GAP, RESYNC, TOTAL, Freshness, Meter, MeterError, now


class SerialPort(object):
    """How to reach a serial device: its path and baud rate. Reads return what has arrived."""

    read_timeout_s = 0.05  # how long one read waits for a first byte; bounds reader latency

    def __init__(self, path, baudrate):
        self.path = path
        self.baudrate = baudrate
        self._serial = None

    @property
    def is_open(self):
        return self._serial is not None

    def open(self):
        if not os.path.exists(self.path):
            raise MeterError("serial port %s does not exist (meter unplugged or wrong path?)"
                             % self.path)
        options = dict(port=self.path, baudrate=self.baudrate, timeout=self.read_timeout_s,
                       write_timeout=2.0)
        try:
            try:
                self._serial = serial.Serial(exclusive=True, **options)
            except TypeError:  # pyserial < 3.3 cannot lock the port
                self._serial = serial.Serial(**options)
        except (serial.SerialException, OSError) as exc:
            raise MeterError(_open_failure(self.path, exc))

    def close(self):
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass  # the device is already gone; nothing left to release
            self._serial = None

    def write(self, data):
        self._require_open().write(data)

    def read_some(self):
        """Bytes that have arrived, waiting at most `read_timeout_s` for the first one."""
        port = self._require_open()
        return port.read(max(1, port.in_waiting))

    def discard_input(self):
        try:
            self._require_open().reset_input_buffer()
        except _TTY_ERRORS as exc:
            raise serial.SerialException("cannot flush %s: %s" % (self.path, exc))

    def _require_open(self):
        if self._serial is None:
            raise serial.SerialException("port %s is not open" % self.path)
        return self._serial


def _open_failure(path, exc):
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY) or "lock" in text.lower():
        return "serial port %s is busy (another program or meter has it open)" % path
    if code == errno.ENOENT:
        return "serial port %s does not exist (meter unplugged or wrong path?)" % path
    if code == errno.EACCES:
        return "no permission to open %s (add yourself to the dialout group)" % path
    return "cannot open serial port %s: %s" % (path, text)


def _measured(sample):
    """What a reading measured: a meter that keeps answering with all of it unchanged (its own
    energy counter too, where it has one) has stopped measuring."""
    return (sample.power_w, sample.voltage_v, sample.current_a, sample.meter_energy_j)


class SerialMeter(Meter):
    """Base of the serial drivers: a driver over a `SerialPort`.

    A driver sets `baudrate`, and `polled = True` if the host asks for every reading (the
    reader then calls `acquire` once per interval), and implements:
      make_framer()      a fresh incremental framer: `.feed(bytes) -> [record, ...]`
      identify()         raise MeterError unless the port answers as this meter; return a label
      begin() / end()    start / stop the meter's streaming or integrator (after identify)
      acquire()          [(record, t_mono, t_wall), ...] read now
      to_sample(record, t_mono, t_wall)   a Sample, or None for a record that is not a reading

    A meter that keeps answering with everything it measured unchanged (power, volts, amps and
    its own energy counter, which a live meter advances even at a steady load) for longer than
    base.STALE_PERIODS intervals, and at least base.STALE_MIN_S, has stopped measuring: those
    readings are flagged `stale`, a gap.
    """

    baudrate = 9600
    polled = False
    gap_factor = 3.0  # a reading further back than this many intervals means a gap
    reopen_wait_s = 0.3

    def __init__(self, port=None, interval_s=None, baudrate=None, identify_timeout_s=2.0):
        Meter.__init__(self, interval_s)
        if not port:
            raise MeterError("%s: give the serial port, e.g. port='/dev/ttyUSB0'" % self.name)
        self.port = SerialPort(port, int(baudrate or self.baudrate))
        self.identify_timeout_s = float(identify_timeout_s)
        self.identity = None
        self.reconnects = 0
        self.last_error = None
        self.total_rails = [TOTAL]
        self._framer = None

    @classmethod
    def probe(cls):
        return False, "external meter: pass port=DEVICE"

    def describe(self):
        facts = Meter.describe(self)
        facts.update(port=self.port.path, identity=self.identity, reconnects=self.reconnects)
        return facts

    # -- life cycle ---------------------------------------------------------------------------
    def open(self):
        self._connect()

    def close(self):
        if self.port.is_open:
            try:
                self.end()
            except (OSError, MeterError):
                pass  # stopping the stream is a courtesy; the port may already be gone
        self.port.close()

    def _connect(self):
        self.port.open()
        self._fresh = Freshness(self.interval_s)  # a new connection starts fresh
        try:
            self._framer = self.make_framer()
            self.identity = self.identify()
            self.begin()
        except OSError as exc:
            self.port.close()
            raise MeterError("%s: lost %s while setting up: %s" % (self.name, self.port.path, exc))
        except Exception:
            self.port.close()
            raise

    # -- driver hooks -------------------------------------------------------------------------
    def make_framer(self):
        raise NotImplementedError

    def identify(self):
        raise NotImplementedError

    def begin(self):
        """Start the meter's streaming or integrator; nothing by default."""

    def end(self):
        """Stop what `begin` started; nothing by default."""

    def acquire(self):
        """Default for streaming meters: whatever records arrive within a short wait."""
        return self.read_records(0.1)

    def to_sample(self, record, t_mono, t_wall):
        raise NotImplementedError

    # -- helpers for drivers --------------------------------------------------------------------
    def read_records(self, timeout_s, count=1):
        """Read until `count` records are framed or `timeout_s` passes.

        Each record is stamped with the host clocks when its last byte arrived.
        """
        deadline = time.monotonic() + timeout_s
        out = []
        while len(out) < count:
            data = self.port.read_some()
            if data:
                t_mono, t_wall = now()
                out.extend((rec, t_mono, t_wall) for rec in self._framer.feed(data))
            if time.monotonic() >= deadline:
                break
        return out

    def exchange(self, request, timeout_s, count=1, accept=None):
        """Send `request` and collect up to `count` replies that `accept` takes (others are noise).

        Stale input is discarded first, so a reply always belongs to this request.
        """
        self.port.discard_input()
        self._framer = self.make_framer()
        self.port.write(request)
        deadline = time.monotonic() + timeout_s
        out = []
        while len(out) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for item in self.read_records(remaining, count - len(out)):
                if accept is None or accept(item[0]):
                    out.append(item)
        return out[:count]

    # -- the reader thread ------------------------------------------------------------------------
    @property
    def silence_limit_s(self):
        """No record for this long with the port still present: reopen and re-identify."""
        return max(10 * self.interval_s, 5.0)

    def _read_loop(self):
        last_sample_t = None
        last_record_t = time.monotonic()
        resync = False
        next_poll = time.monotonic()
        while not self._stopping.is_set():
            if not self.port.is_open:
                if not self._reopen():
                    continue
                resync = True
                last_record_t = next_poll = time.monotonic()
            if self.polled:
                delay = next_poll - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    break
                next_poll = max(next_poll + self.interval_s, time.monotonic())
            try:
                got = self.acquire()
            except OSError as exc:  # SerialException is an OSError: the port went away
                self._lose("%s: port lost: %s" % (self.port.path, exc))
                continue
            if got:
                last_record_t = got[-1][1]
            elif time.monotonic() - last_record_t > self.silence_limit_s:
                self._lose("%s: no reading for %.0f s" % (self.port.path, self.silence_limit_s))
                continue
            out = []
            for record, t_mono, t_wall in got:
                sample = self.to_sample(record, t_mono, t_wall)
                if sample is None:
                    continue
                extra = []
                if last_sample_t is not None and \
                        t_mono - last_sample_t > self.gap_factor * self.interval_s:
                    extra.append(GAP)
                if resync:
                    extra.append(RESYNC)
                    resync = False
                sample.flags = sample.flags + tuple(f for f in extra if f not in sample.flags)
                last_sample_t = t_mono
                if self._fresh.stale(_measured(sample), t_mono):
                    self._stale([sample])
                out.append(sample)
            if out:
                self._emit(out)

    def _lose(self, reason):
        self.last_error = reason
        self.port.close()

    def _reopen(self):
        """One attempt to get the meter back; False (after a short wait) if it is not back yet."""
        try:
            self._connect()
        except MeterError as exc:
            self.last_error = str(exc)
            self._stopping.wait(self.reopen_wait_s)
            return False
        self.reconnects += 1
        return True
