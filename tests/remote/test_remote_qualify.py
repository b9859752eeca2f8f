"""`ebedge remote qualify` against a real OpenSSH server on loopback playing the board.

The board's clocks run SHIFT_S ahead of the laptop's (sshd SetEnv); its meter is the fake
tegrastats and the laptop's reference a simulated UM25C on a pty, both following one slow ramp
from one t0. On a ramp, a window read SHIFT_S off is tens of percent off, so a passing
qualification with gain 1 and offset 0 shows that the laptop's samples were placed on the board's
windows through the measured clock offset.
"""
import json
import os
import subprocess

import pytest

from ebedge.remote.loopback import EBEDGE, Lab, lying_ebedge
from meters.sim.profile import PowerProfile
from meters.sim.tegrastats import BIN as FAKE_TEGRASTATS, profile_spec
from meters.sim.um_sim import UMSimulator
from support.remote_sshd import needs_sshd

SHIFT_S = 7.0
PROFILE = PowerProfile.parse("3-12:40,12-3:40")  # ramps: both meters' trapezoids are exact
PROTOCOL = ["--windows", "3", "--window-s", "2", "--settle-s", "0.5"]

pytestmark = [needs_sshd, pytest.mark.host, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    sim = UMSimulator(PROFILE).start()
    work = str(tmp_path_factory.mktemp("qualify-lab"))
    env = {"EBEDGE_CLOCK_SHIFT_S": repr(SHIFT_S), "EBEDGE_SIM_PROFILE": profile_spec(PROFILE),
           "EBEDGE_SIM_T0": repr(sim.t0), "EBEDGE_CONFIG_DIR": os.path.join(work, "board-config")}
    lab = Lab(work, env=env)
    lab.sim = sim
    yield lab
    lab.stop()
    sim.stop()


def qualify(lab, out, *extra, **kwargs):
    return lab.remote("qualify", "board1", "--meter", "tegrastats", "--option",
                      "executable=%s" % FAKE_TEGRASTATS, "--option", "interval_s=0.1",
                      "--reference", "um", "--port", lab.sim.path, "--out", out,
                      *(PROTOCOL + list(extra)), **kwargs)


@pytest.mark.slow  # the protocol's loads run for about half a minute
def test_board_meter_is_qualified_against_the_laptop_reference_on_one_time_axis(lab, tmp_path):
    out = str(tmp_path / "q")
    done = qualify(lab, out, "--save")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.load(open(os.path.join(out, "qualification.json")))
    assert result["meter"] == "tegrastats" and result["reference"] == "um@laptop"
    assert result["host"] == "board1"
    assert abs(result["clock"]["offset_s"] - SHIFT_S) < 0.05
    levels = [w["level"] for w in result["windows"]]
    assert levels[:3] == ["idle"] * 3 and levels[-3:] == ["step"] * 3
    assert len(levels) == 3 * len(result["protocol"]["levels"])
    for w in result["windows"]:
        assert w["meter_covered"] > 0.95 and w["reference_covered"] > 0.95, w
        assert abs(w["error_pct"]) < 2.0, w
    assert result["verdict"] == "pass"
    assert result["fit"]["gain"] == pytest.approx(1.0, abs=0.03)
    assert result["fit"]["offset_w"] == pytest.approx(0.0, abs=0.3)
    # both meters' samples are in one file on the board's clocks, the reference under its own name
    assert {"samples.csv", "phases.csv", "energy.csv"} <= set(os.listdir(out))
    assert os.path.isfile(os.path.join(out, "board", "samples.csv"))
    assert "verdict: pass" in done.stdout
    # --save stored the profile on the board (its HOME is the lab's), named for board and meter
    saved = [l for l in done.stdout.splitlines() if l.startswith("saved calibration profile")]
    assert saved, done.stdout
    path = saved[0].split()[3]
    profile = json.load(open(path))
    assert profile["meter"] == "tegrastats" and profile["reference"] == "um@laptop"
    assert profile["gain"] == pytest.approx(result["fit"]["gain"])
    # and the report's qualification page shows it, the reference under its laptop name
    report = subprocess.run([EBEDGE, "report", out, "--out", str(tmp_path / "report")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=120)
    assert report.returncode == 0, report.stdout
    page = open(str(tmp_path / "report" / "index.html")).read()
    assert 'id="qualification"' in page and "um@laptop" in page


@pytest.mark.parametrize("answer", [
    '"not an object"',
    '{"out": "relative/path", "protocol": {}, "meters": [], "errors": [], "board": {}}',
    '{"out": "/tmp", "protocol": {}, "meters": ["\\u001b[2J"], "errors": [], "board": {}}',
])
def test_a_board_that_answers_no_qualification_is_refused_in_one_line(lab, tmp_path, answer):
    liar = lying_ebedge(os.path.join(lab.work, "liar"), 'if args[:2] == ["agent", "qualify"]:\n'
                        '    sys.stdin.read()\n    say(json.loads(%r))' % answer)
    out = str(tmp_path / "q")
    done = qualify(lab, out, remote_ebedge=liar)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "Traceback" not in done.stderr
    assert not os.path.exists(os.path.join(out, "qualification.json"))


def test_windows_the_board_forged_are_refused(lab, tmp_path):
    """A board whose phases.csv holds no window ebedge wrote (names, times) is refused."""
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "phases.csv").write_text(
        "run_id,phase,epoch,t_start_mono,t_end_mono,t_start_wall,t_end_wall\n"
        "x,../../etc,0,1,2,3,4\nx,idle/0,0,nan,2,3,4\nx,idle/1,0,5,4,3,4\n")
    (forged / "samples.csv").write_text("run_id,t_mono\n")
    liar = lying_ebedge(os.path.join(lab.work, "forger"), (
        'if args[:2] == ["agent", "qualify"]:\n    sys.stdin.read()\n'
        '    say({"out": %r, "protocol": {}, "meters": [], "errors": [], "board": {}})'
        % str(forged)))
    done = qualify(lab, str(tmp_path / "q"), remote_ebedge=liar)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "0 qualification windows" in lines[0], done.stderr
