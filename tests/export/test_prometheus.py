"""The Prometheus endpoint: its counter against an exact integral, scraped over loopback, also
while `ebedge meters record` runs a command."""
import socket
import sys
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from support.remote_sshd import free_port
from ebedge.cli.meters import meters_group
from ebedge.errors import EbedgeError
from ebedge.export.prometheus import PowerExporter, parse_address
from meters.base import GAP, Sample
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode("utf-8")


def parse(text):
    """{(metric, meter, rail): value} from the text format."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, labels = name_labels.split("{", 1)
        fields = dict(p.split("=", 1) for p in labels.rstrip("}").split('",'))
        out[(name, fields["meter"].strip('"'), fields["rail"].strip('"'))] = float(value)
    return out


def ramp(meter, rail, t0, n, dt, watts, flags_at=()):
    """Samples of power = watts(t) every dt; the trapezoid is exact for a linear ramp."""
    return [Sample(t0 + i * dt, 0.0, meter, rail, watts(i * dt), flags=(GAP,) if i in flags_at else ())
            for i in range(n)]


def test_counter_is_the_exact_integral_and_gaps_are_not_bridged():
    exporter = PowerExporter(0)
    try:
        watts = lambda t: 2.0 + 3.0 * t  # integral over [0, T]: 2T + 1.5T^2
        exporter.feed(ramp("ina3221", "total", 100.0, 11, 0.1, watts)[:6])  # in two batches
        exporter.feed(ramp("ina3221", "total", 100.0, 11, 0.1, watts)[6:])
        # a second rail with a gap-flagged sample at 0.5 s and an unusable reading at 0.8 s
        gappy = ramp("ina3221", "VDD_GPU", 100.0, 11, 0.1, watts, flags_at=(5,))
        gappy[8] = Sample(gappy[8].t_mono, 0.0, "ina3221", "VDD_GPU", float("nan"))
        exporter.feed(gappy)
        # a stall of 1 s (10 periods) on a third rail
        stalled = ramp("ina3221", "VDD_CPU", 100.0, 3, 0.1, lambda t: 4.0)
        stalled.append(Sample(101.2, 0.0, "ina3221", "VDD_CPU", 4.0))
        exporter.feed(stalled)
        got = parse(scrape(exporter.port))
    finally:
        exporter.close()
    exact = lambda a, b: 2 * (b - a) + 1.5 * (b * b - a * a)
    assert got[("ebedge_energy_joules_total", "ina3221", "total")] == pytest.approx(exact(0, 1.0))
    assert got[("ebedge_power_watts", "ina3221", "total")] == pytest.approx(5.0)
    # covered: [0, 0.4] and [0.5, 0.7] ([0.4, 0.5] ends in a gap; 0.7-0.9 touch the NaN); [0.9, 1.0]
    assert got[("ebedge_energy_joules_total", "ina3221", "VDD_GPU")] == pytest.approx(
        exact(0, 0.4) + exact(0.5, 0.7) + exact(0.9, 1.0))
    assert got[("ebedge_energy_joules_total", "ina3221", "VDD_CPU")] == pytest.approx(4.0 * 0.2)


def test_label_values_are_escaped_and_other_paths_are_404():
    exporter = PowerExporter("127.0.0.1:0")
    try:
        exporter.feed([Sample(1.0, 0.0, 'evil"meter', "rail\\x\ny", 1.5)])
        text = scrape(exporter.port)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen("http://127.0.0.1:%d/other" % exporter.port, timeout=10)
        assert err.value.code == 404
    finally:
        exporter.close()
    assert 'ebedge_power_watts{meter="evil\\"meter",rail="rail\\\\x\\ny"} 1.5' in text
    assert "# TYPE ebedge_energy_joules_total counter" in text


@pytest.mark.parametrize("bad", ["http", "70000", "host:", "-1"])
def test_bad_addresses_are_one_line_errors(bad):
    with pytest.raises(EbedgeError, match="--prometheus-port wants PORT or ADDR:PORT"):
        parse_address(bad)


def test_a_port_in_use_is_a_one_line_error():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(EbedgeError, match="cannot serve Prometheus metrics on 127.0.0.1:%d"
                           % taken.getsockname()[1]):
            PowerExporter(taken.getsockname()[1])
    finally:
        taken.close()


SCRAPER = """
import sys, time, urllib.request
def scrape():
    return urllib.request.urlopen("http://127.0.0.1:%s/metrics", timeout=10).read().decode()
time.sleep(1.0)
first = scrape()
time.sleep(1.0)
open(sys.argv[1], "w").write(first + "\\n=====\\n" + scrape())
"""


def test_meters_record_serves_the_metrics_while_the_command_runs(tmp_path):
    """The recorded command scrapes the endpoint itself, so the scrapes fall inside the recording."""
    port = free_port()
    tree = FakeIna3221Tree(str(tmp_path / "root"), "orin-nx", PowerProfile.parse("5:30"))
    scraped = tmp_path / "scraped.txt"
    with tree.start(rate_hz=50):
        res = CliRunner().invoke(meters_group, [
            "record", "--meter", "ina3221", "--option", "root=%s" % tree.root, "--interval", "0.05",
            "--out", str(tmp_path / "run"), "--prometheus-port", str(port), "--",
            sys.executable, "-c", SCRAPER % port, str(scraped)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    first, second = [parse(t) for t in scraped.read_text().split("\n=====\n")]
    key = ("ebedge_power_watts", "ina3221", "total")
    assert first[key] == pytest.approx(5.0, rel=0.01) and second[key] == pytest.approx(5.0, rel=0.01)
    energy = ("ebedge_energy_joules_total", "ina3221", "total")
    # constant 5 W: the counter grows by 5 J per second between the scrapes (a drain is 0.5 s)
    assert 0 < first[energy] < second[energy]
    assert second[energy] - first[energy] == pytest.approx(5.0, abs=5.0 * 0.6)
    with pytest.raises(OSError):  # closed with the recording
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2)
