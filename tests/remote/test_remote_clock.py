"""Clock-offset estimation, laptop-sample alignment and remote quoting, without any sshd."""
import csv
import json
import os
import random
import subprocess
import sys

import pytest

from ebedge.remote import align
from ebedge.remote.clock import FLAG, ClockModel, estimate
from ebedge.remote.ssh import HostKeyError, check_host_key, remote_command

pytestmark = pytest.mark.host

HOSTILE = ["a b", "x; touch /tmp/ebedge-never", "$(touch /tmp/ebedge-never)", "`id`", "'q'",
           '"dq"', "~/home-relative", "-n", "", "*", "\\", "line\nbreak"]


def test_remote_command_passes_every_argument_as_data(tmp_path):
    argv = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"] + HOSTILE
    out = subprocess.run(["sh", "-c", remote_command(argv)], stdout=subprocess.PIPE,
                         universal_newlines=True, cwd=str(tmp_path), check=True).stdout
    got = json.loads(out)
    expected = list(HOSTILE)
    expected[6] = os.path.expanduser("~") + "/home-relative"  # a leading ~/ is the home dir
    assert got == expected
    assert not os.path.exists("/tmp/ebedge-never")


def test_host_key_messages_are_recognised():
    with pytest.raises(HostKeyError, match="host key"):
        check_host_key("b", "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n"
                            "Host key verification failed.\n")
    check_host_key("b", "ssh: connect to host b port 22: Connection refused")  # not a key issue


def _exchanges(offset_at, n, rng, t):
    out = []
    for _ in range(n):
        up, down = rng.uniform(0.001, 0.05), rng.uniform(0.001, 0.05)
        out.append((t, offset_at(t + up) + t + up, t + up + down))
        t += 0.1
    return out, t


def test_min_delay_bursts_and_drift_fit_recover_the_true_offset():
    rng = random.Random(3)
    offset_at = lambda t: 5.0 + 2e-4 * (t - 100.0)  # board - laptop, drifting 200 ppm
    estimates, t = [], 100.0
    for _ in range(4):
        burst, t = _exchanges(offset_at, 15, rng, t)
        best = min(burst, key=lambda e: e[2] - e[0])
        estimates.append(estimate(*best))
        t += 60.0
    model = ClockModel(estimates)
    assert model.drift == pytest.approx(2e-4, abs=5e-5)
    for probe in (100.0, 200.0, 300.0):
        assert abs(model.board_wall(probe) - (probe + offset_at(probe))) <= model.bound_s
    assert model.bound_s < 0.05


def _fake_run(path, shift, watts_at):
    """A collected run whose board stamps wall = mono + shift, and laptop samples of P(t)."""
    os.makedirs(os.path.join(path, "laptop"))
    with open(os.path.join(path, "phases.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run_id", "phase", "epoch", "t_start_mono", "t_end_mono", "t_start_wall",
                    "t_end_wall"])
        for name, a, b in (("idle_before", 10, 12), ("search", 12, 20), ("idle_after", 20, 22)):
            w.writerow(["r", name, "", a, b, a + shift, b + shift])
    with open(os.path.join(path, "samples.csv"), "w", newline="") as f:
        csv.writer(f).writerow(["run_id", "meter", "rail", "t_mono", "t_wall", "power_w",
                                "voltage_v", "current_a", "meter_energy_j", "flags"])
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"run_id": "r", "settings": {}, "meters": []}, f)
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump({"status": "complete", "flags": [], "board_id": "jetson"}, f)
    with open(os.path.join(path, "laptop", "samples.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["meter", "rail", "t_mono", "t_wall", "power_w", "voltage_v", "current_a",
                    "meter_energy_j", "flags"])
        for i in range(0, 300):  # laptop mono 0..30 s at 10 Hz
            t = i * 0.1
            w.writerow(["um", "total", t, t + 50, watts_at(t), "", "", "", ""])


@pytest.mark.parametrize("bound,flagged", [(0.01, False), (0.5, True)])
def test_laptop_samples_land_on_board_phases(tmp_path, bound, flagged):
    run = str(tmp_path / "run")
    shift = 1000.0
    # the board's wall clock reads laptop mono + 1005 (so board mono = laptop mono + 5)
    _fake_run(run, shift, lambda t: 2.0 * t)
    est = [{"t_mono": t, "offset_mono_s": 1005.0, "bound_s": bound,
            "laptop_wall_minus_mono": 50.0} for t in (0.0, 30.0)]
    align.write_clock(run, est, {"name": "um@laptop", "where": "laptop"})
    for _ in range(2):  # merging twice changes nothing
        summary = align.merge_laptop(run, host_alias="board7")
    rows = {r["phase"]: r for r in csv.DictReader(open(os.path.join(run, "energy.csv")))
            if r["meter"] == "um@laptop"}
    # search is board mono 12..20 = laptop mono 7..15: integral of 2t dt = 15^2 - 7^2
    assert float(rows["search"]["energy_j"]) == pytest.approx(15 ** 2 - 7 ** 2, rel=1e-6)
    assert float(rows["idle_before"]["energy_j"]) == pytest.approx(7 ** 2 - 5 ** 2, rel=1e-6)
    assert (FLAG in summary["flags"]) is flagged and summary["flags"].count(FLAG) <= 1
    assert summary["board_id"] == "board7" and summary["board_hostname"] == "jetson"
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["clock"]["offset_s"] == pytest.approx(1005.0 - 50.0)
    assert [m["name"] for m in config["meters"]] == ["um@laptop"]
    laptop = [r for r in csv.DictReader(open(os.path.join(run, "samples.csv")))
              if r["meter"] == "um@laptop"]
    assert len(laptop) == 300 and float(laptop[0]["t_mono"]) == pytest.approx(5.0)
