"""RDTech UM24C / UM25C / UM34C USB meters over Bluetooth SPP (`/dev/rfcommN`).

Every reading is asked for: the byte 0xF0 gets a 130-byte big-endian frame that starts with the
model id and ends with 0xFFF1. Voltage and current scaling depend on the model (UM25C: mV and
0.1 mA; UM24C/UM34C: 10 mV and mA); power is mW on all. The selected data group's mWh counter
becomes `meter_energy_j` (1 mWh = 3.6 J). The meters eat commands sent less than 0.5 s apart,
so 2 Hz is the fastest rate. See docs/reference/serial-power-meters.md section 4.
"""
import struct

from meters.base import TOTAL, MeterError, Sample, register
from meters.serial.port import SerialMeter

FRAME_LEN = 130
END = b"\xff\xf1"
REQUEST = b"\xf0"
# model id -> (name, volts divisor, amps divisor)
MODELS = {0x0963: ("UM24C", 100.0, 1000.0), 0x09C9: ("UM25C", 1000.0, 10000.0),
          0x0D4C: ("UM34C", 100.0, 1000.0)}
_MARKERS = [struct.pack(">H", model_id) for model_id in MODELS]


class UMFramer(object):
    """Fixed 130-byte frames: resynchronise on a known model id whose frame ends in 0xFFF1."""

    def __init__(self):
        self._buf = b""

    def feed(self, data):
        self._buf += data
        out = []
        while True:
            starts = [i for i in (self._buf.find(m) for m in _MARKERS) if i >= 0]
            if not starts:
                self._buf = self._buf[-1:]  # may be the first byte of a marker
                break
            self._buf = self._buf[min(starts):]
            if len(self._buf) < FRAME_LEN:
                break
            if self._buf[FRAME_LEN - 2:FRAME_LEN] == END:
                out.append(self._buf[:FRAME_LEN])
                self._buf = self._buf[FRAME_LEN:]
            else:  # a marker-looking pair inside noise: skip it and look again
                self._buf = self._buf[1:]
        return out


def decode(frame):
    """(model name, volts, amps, watts, selected group's mWh) from one frame."""
    model_id, v_raw, i_raw, p_mw, _, _, group = struct.unpack(">HHHIHHH", frame[:16])
    name, v_div, i_div = MODELS[model_id]
    groups = struct.unpack(">20I", frame[16:96])
    mwh = groups[2 * group + 1] if group < 10 else None
    return name, v_raw / v_div, i_raw / i_div, p_mw / 1000.0, mwh


@register
class UMMeter(SerialMeter):
    name = "um"
    baudrate = 9600
    default_interval_s = 0.5
    polled = True
    max_power_w = 120.0  # 24 V x 5 A, the largest of the UM24C/25C/34C ranges

    def __init__(self, port=None, interval_s=None, model=None, **options):
        SerialMeter.__init__(self, port, interval_s, **options)
        known = sorted(name for name, _, _ in MODELS.values())
        if model is not None and model.upper() not in known:
            raise MeterError("um: unknown model %r; known: %s" % (model, ", ".join(known)))
        if self.interval_s < 0.5:
            raise MeterError("um: these meters answer at most twice a second; "
                             "interval_s must be >= 0.5, got %r" % interval_s)
        self.model = model.upper() if model else None

    def make_framer(self):
        return UMFramer()

    def identify(self):
        got = self.exchange(REQUEST, self.identify_timeout_s)
        if not got:
            raise MeterError("um: no RDTech UM frame on %s within %.1f s (wrong device or port?)"
                             % (self.port.path, self.identify_timeout_s))
        detected = decode(got[0][0])[0]
        if self.model and detected != self.model:
            raise MeterError("um: %s is a %s, not the %s asked for" % (self.port.path, detected,
                                                                        self.model))
        self.model = detected
        return detected

    def acquire(self):
        return self.exchange(REQUEST, max(1.0, self.interval_s))

    def to_sample(self, record, t_mono, t_wall):
        _, volts, amps, watts, mwh = decode(record)
        return Sample(t_mono, t_wall, self.name, TOTAL, watts, volts, amps,
                      None if mwh is None else mwh * 3.6)

    def describe(self):
        facts = SerialMeter.describe(self)
        facts["model"] = self.model
        return facts
