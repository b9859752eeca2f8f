"""Framers and parsers of the serial drivers: partial frames, leading garbage, scaling."""
import random
import struct

import pytest

from meters.base import NAN, OVERRANGE, MeterError
from meters.serial.framing import LineFramer
from meters.serial.lines import LineParser, checksum
from meters.serial.scpi import _value
from meters.serial.um import FRAME_LEN, UMFramer, decode
from meters.serial.wattsup import WattsupFramer, WattsUp

# From the reference (serial-power-meters.md section 1): 15.3 W, 230.1 V, 0.112 A.
WU_HEADER = b"#h,-,18,W,V,A,WH,Cost,WH/Mo,Cost/Mo,Wmax,Vmax,Amax,Wmin,Vmin,Amin,PF,DC,PC,Hz,VA;\r\n"
WU_RECORD = b"#d,-,18,153,2301,112,25,0,2,0,155,2302,113,151,2299,110,59,100,0,500,258;\r\n"


def feed_in_pieces(framer, data, seed=0):
    rng = random.Random(seed)
    out = []
    while data:
        n = rng.randint(1, 7)
        out += framer.feed(data[:n])
        data = data[n:]
    return out


def test_wattsup_framer_skips_junk_and_restarts_on_hash():
    stream = b"\x00\xffjunk;#d,-,18,12,3" + WU_RECORD + b"#d,-,2,1;" + WU_RECORD
    records = feed_in_pieces(WattsupFramer(), stream)
    # the cut record is abandoned at the next '#', and "#d,-,2,1" has the wrong field count
    assert len(records) == 2
    assert all(r[:3] == ["d", "-", "18"] and r[3] == "153" for r in records)


def test_wattsup_record_scaling_follows_the_header():
    meter = WattsUp(port="/dev/null-not-opened")
    meter._columns = tuple(WattsupFramer().feed(WU_HEADER)[0][3:])
    sample = meter.to_sample(WattsupFramer().feed(WU_RECORD)[0], 1.0, 2.0)
    assert sample.power_w == pytest.approx(15.3)
    assert sample.voltage_v == pytest.approx(230.1)
    assert sample.current_a == pytest.approx(0.112)
    assert sample.meter_energy_j == pytest.approx(2.5 * 3600)  # WH field 25 = 2.5 Wh
    blank = WU_RECORD.replace(b",153,", b",_,")
    assert NAN in meter.to_sample(WattsupFramer().feed(blank)[0], 1.0, 2.0).flags


def test_wattsup_refuses_sub_second_interval():
    with pytest.raises(MeterError, match="whole second"):
        WattsUp(port="/dev/ttyUSB0", interval_s=0.5)


def um_frame(model_id=0x09C9, v=0x139C, i=0x1388, p_mw=0x09CE, group=0, mwh=1234):
    groups = [0] * 20
    groups[2 * group + 1] = mwh
    return (struct.pack(">HHHIHHH", model_id, v, i, p_mw, 30, 86, group)
            + struct.pack(">20I", *groups) + b"\x00" * 32 + b"\xff\xf1")


def test_um_frame_decoding_per_model():
    # the reference's example: UM25C 0x139C = 5.020 V, 0x1388 = 0.5000 A, 0x09CE = 2.510 W
    assert decode(um_frame()) == ("UM25C", pytest.approx(5.02), pytest.approx(0.5),
                                  pytest.approx(2.51), 1234)
    name, volts, amps, watts, _ = decode(um_frame(model_id=0x0963, v=502, i=500))
    assert (name, volts, amps, watts) == ("UM24C", pytest.approx(5.02), pytest.approx(0.5),
                                          pytest.approx(2.51))
    assert decode(um_frame(model_id=0x0D4C, group=3, mwh=77))[4] == 77


def test_um_framer_resyncs_after_garbage_and_fake_markers():
    frame = um_frame()
    assert len(frame) == FRAME_LEN
    stream = b"\x01\x02\x09\xc9garbage\xff\xf1" + frame + b"\x09" + frame
    frames = feed_in_pieces(UMFramer(), stream, seed=3)
    assert frames == [frame, frame]


def test_line_framer_partial_lines_crlf_and_first_line():
    framer = LineFramer(skip_first=True)
    assert feed_in_pieces(framer, b"ut line\r\nfirst,1\r\nsecond,2\nthi") == ["first,1",
                                                                             "second,2"]
    assert framer.feed(b"rd,3\r\n") == ["third,3"]
    assert LineFramer(max_len=8).feed(b"x" * 20 + b"\nok\n") == ["ok"]


def test_line_parser_reference_format_and_checksums():
    parser = LineParser()
    body = "1500,5.000,0.40000,2.00000"
    good = "%s*%02X" % (body, checksum(body))
    q = parser.parse(good)
    assert q == {"t_s": 1.5, "voltage_v": 5.0, "current_a": 0.4, "power_w": 2.0}
    assert parser.parse("%s*%02X" % (body, checksum(body) ^ 1)) is None
    assert parser.parse(body) is None  # once checksums were seen, a line without one is cut
    assert parser.parse("Hello!") is None and parser.parse("# ms,V,A,W") is None


def test_line_parser_units_regex_and_power_from_v_times_i():
    q = LineParser(columns="ms,mV,mA,-", sep="\t").parse("10\t5000\t400\tjunk")
    assert q["power_w"] == pytest.approx(2.0) and q["voltage_v"] == pytest.approx(5.0)
    text = LineParser(pattern=r"Power:\s*(?P<power_mw>[-\d.]+)\s*mW")
    assert text.parse("Bus Voltage: 5.00 V | Power: 2500.00 mW")["power_w"] == 2.5
    assert text.parse("Bus Voltage: 5.00 V") is None
    with pytest.raises(MeterError, match="unknown column"):
        LineParser(columns="ms,volts")
    with pytest.raises(MeterError, match="neither power"):
        LineParser(columns="ms,V")


def test_scpi_nan_and_inf_tokens_become_flags():
    assert _value("1.5312E+01") == (15.312, None)
    assert _value("NAN") == (None, NAN)
    assert _value("INF") == (None, OVERRANGE)
    assert _value("-INF") == (None, OVERRANGE)
