"""Power mode as an axis: switching, capping, checking and restoring, against a fake nvpmodel whose
modes change the simulated board's power, so a sweep's energies are checked against the truth per mode."""
import csv
import json
import os
import stat

import pytest

from ebedge.errors import EbedgeError
from ebedge.measure import board, powermode
from ebedge.run.suite import load_suite, run_suite
from meters.sim.nvpmodel import FakePowerModes, Mode
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree

# Constant power per mode: a window's exact energy is then watts x seconds, and its covered part
# (a loaded machine may delay a read, which the meter then counts as a gap) is that times covered_frac.
MAXN = Mode(0, "MAXN", PowerProfile([(13.0, 13.0, 1.0)]), 2035200, 1300500000)
MAXQ = Mode(1, "MAXQ", PowerProfile([(5.5, 5.5, 1.0)]), 1267200, 854250000)


@pytest.fixture
def modes(tmp_path, monkeypatch):
    """A TX2-like board tree with two modes, its fake nvpmodel first on PATH, MAXN in force."""
    fake = FakePowerModes(str(tmp_path / "board"), [MAXN, MAXQ])
    monkeypatch.setenv("PATH", "%s:%s" % (fake.bin_dir, os.environ["PATH"]))
    monkeypatch.setattr(powermode, "BOARD_ROOT", fake.root)
    monkeypatch.setattr(powermode, "SETTLE_POLL_S", 0.02)
    monkeypatch.setattr(board, "COMMAND_INTERVAL_S", 0.0)
    return fake


def _session(fake):
    return powermode.Session(fake.root, poll_s=0.02, settle_timeout_s=5.0)


def _target(mode=None, gpu=None, cpu=None):
    return powermode.Target(mode, gpu, cpu, False)


def test_apply_switches_settles_checks_and_restore_goes_back(modes):
    with _session(modes) as session:
        record = session.apply(_target("maxq"))  # names match in any case
        assert modes.mode() == 1 and record["power_mode"] == "MAXQ (1)"
        assert record["mode"] == {"id": 1, "name": "MAXQ"} and record["settled"] and record["switched"]
        assert board.read_gpu(modes.root)["max"] == MAXQ.gpu_max_hz
        assert session.apply(_target(1))["switched"] is False  # same target: no second switch
    assert modes.mode() == 0
    assert board.read_cpus(modes.root)["cpu0"]["max"] == MAXN.cpu_max_khz


def test_caps_are_written_checked_and_undone(modes):
    with _session(modes) as session:
        record = session.apply(_target(0, gpu=522750000, cpu=1000000))
        assert record["power_mode"] == "MAXN (0)" and record["settled"] and not record["flags"]
        assert board.read_gpu(modes.root)["max"] == 522750000
        assert all(c["max"] == 1000000 for c in board.read_cpus(modes.root).values())
        with pytest.raises(EbedgeError, match="GPU clock cap 9999 is outside the hardware range"):
            session.apply(_target(0, gpu=9999))
    assert board.read_gpu(modes.root)["max"] == MAXN.gpu_max_hz
    assert board.read_cpus(modes.root)["cpu1"]["max"] == MAXN.cpu_max_khz


def test_unknown_mode_is_refused_in_one_line_naming_the_modes(modes):
    with pytest.raises(EbedgeError) as err:
        _session(modes).apply(_target("MODE_15W"))
    assert str(err.value) == "power mode 'MODE_15W' is not one of this board's modes: 0 MAXN, 1 MAXQ"
    assert modes.mode() == 0


def test_without_root_or_sudo_the_switch_is_refused_with_the_sudoers_line(modes, tmp_path, monkeypatch):
    open(os.path.join(modes.root, "deny"), "w").close()  # nvpmodel -m fails as for a normal user
    sudo = tmp_path / "sudo-bin" / "sudo"
    sudo.parent.mkdir()
    sudo.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    sudo.chmod(sudo.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (sudo.parent, os.environ["PATH"]))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a normal user, also when the tests run as root
    with pytest.raises(EbedgeError) as err:
        _session(modes).apply(_target("MAXQ"))
    message = str(err.value)
    assert "\n" not in message and message.startswith("cannot run `nvpmodel -m 1` (sudo: a password is required)")
    assert powermode.SUDOERS_LINE in message
    assert modes.mode() == 0


def test_guard_refuses_a_board_that_does_not_take_the_mode(modes, tmp_path, monkeypatch):
    lazy = tmp_path / "lazy" / "nvpmodel"  # exits 0 but changes nothing, like a mode the board ignores
    lazy.parent.mkdir()
    lazy.write_text("#!/bin/sh\n[ \"$1\" = -q ] && exec '%s' -q\nexit 0\n" % os.path.join(modes.bin_dir, "nvpmodel"))
    lazy.chmod(lazy.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (lazy.parent, os.environ["PATH"]))
    with pytest.raises(EbedgeError, match=r"power-mode guard: asked for MAXQ \(1\), the board reports MAXN \(0\)"):
        _session(modes).apply(_target("MAXQ"))


SUITE = """
name = "modes"
[defaults]
model = "vgg11"
width = 0.0625
limit_train = 256
limit_test = 32
batch_size = 32
epochs = 2
device = "cpu"
meters = ["ina3221"]
meter_interval = 0.01
idle_seconds = 0.6
[grid]
methods = ["dense"]
power_modes = ["MAXN", "MAXQ"]
"""


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _suite(tmp_path, tree_root, text=SUITE):
    path = tmp_path / "modes.toml"
    path.write_text(text.replace('meters = ["ina3221"]', 'meters = ["ina3221"]\nmeter_options = {ina3221 = {root = "%s"}}'
                                 % tree_root))
    return load_suite(str(path))


@pytest.mark.slow
def test_a_suite_sweeps_the_modes_and_each_cells_energy_is_that_modes_truth(tmp_path, modes, one_thread):
    from ebedge.run.runner import execute
    tree = FakeIna3221Tree(modes.root, "tx2", modes.profile).start(rate_hz=1000.0)
    try:
        suite = _suite(tmp_path, modes.root)
        assert [c.cell_id for c in suite.cells()] == ["vgg11-synthetic-dense-pmMAXN-r0",
                                                      "vgg11-synthetic-dense-pmMAXQ-r0"]
        results = run_suite(suite, str(tmp_path / "out"), execute, progress=lambda line: None)
        assert [status for _, status in results] == ["complete", "complete"]
        watts = {}
        for cell_id, mode in (("vgg11-synthetic-dense-pmMAXN-r0", "MAXN (0)"),
                              ("vgg11-synthetic-dense-pmMAXQ-r0", "MAXQ (1)")):
            run = os.path.join(str(tmp_path / "out"), cell_id)
            summary = json.load(open(os.path.join(run, "summary.json")))
            config = json.load(open(os.path.join(run, "config.json")))
            assert summary["power_mode"] == mode and config["settings"]["power_mode"] == mode.split()[0]
            assert config["power_mode_switch"]["power_mode"] == mode
            energy = {r["phase"]: r for r in _rows(os.path.join(run, "energy.csv"))
                      if r["rail"] == "total" and r["meter"] == "ina3221"}
            truth = {}
            for row in _rows(os.path.join(run, "phases.csv")):
                truth[row["phase"]] = truth.get(row["phase"], 0.0) + tree.truth(float(row["t_start_mono"]),
                                                                                 float(row["t_end_mono"]))
            assert {"idle_before", "search", "idle_after"} <= set(truth)
            for phase, exact in truth.items():
                row = energy[phase]
                if float(row["duration_s"]) < 0.2:
                    continue  # under 20 sample periods: too coarse for the 2% claim (the runner flags it)
                assert float(row["covered_frac"]) > 0.5, phase
                assert float(row["energy_j"]) == pytest.approx(exact * float(row["covered_frac"]), rel=0.02), phase
            watts[mode] = float(energy["search"]["avg_power_w"])
        assert watts["MAXN (0)"] == pytest.approx(13.0, rel=0.01) and watts["MAXQ (1)"] == pytest.approx(5.5, rel=0.01)
        assert modes.mode() == 0  # the original mode is back after the suite
    finally:
        tree.close()


def test_ctrl_c_in_a_cell_still_restores_the_original_mode(tmp_path, modes):
    suite = _suite(tmp_path, modes.root)

    def execute(settings, out, resume):
        if settings["power_mode"] == "MAXQ":
            session, owned = powermode.session_for_run()
            assert not owned  # the suite's session, which restores once at its end
            session.apply(powermode.target_of(settings))
            assert modes.mode() == 1
            raise KeyboardInterrupt
        return {"status": "complete"}
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, str(tmp_path / "out"), execute, progress=lambda line: None)
    assert modes.mode() == 0


def test_pinned_clocks_are_stored_first_and_restored_after(modes, tmp_path, monkeypatch):
    log = tmp_path / "jetson_clocks.log"
    fake = tmp_path / "jc" / "jetson_clocks"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$*" >> \'%s\'\n[ "$1" = --store ] && echo stored > "$2"\nexit 0\n' % log)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (fake.parent, os.environ["PATH"]))
    with _session(modes) as session:
        session.apply(powermode.Target("MAXQ", None, None, True))
        calls = log.read_text().splitlines()
        assert calls[0].startswith("--store ") and calls[1] == ""
        stored = calls[0].split(" ", 1)[1]
        assert open(stored).read() == "stored\n"
    assert log.read_text().splitlines()[2] == "--restore " + stored and not os.path.exists(stored)
    assert modes.mode() == 0


def test_suite_grid_takes_modes_and_caps_and_checks_them(tmp_path):
    from ebedge.config.settings import resolve
    path = tmp_path / "s.toml"
    path.write_text('[defaults]\nepochs = 2\n[grid]\nmethods = ["dense", "eb"]\nprune_ratios = [0.5]\n'
                    'power_modes = [0, "MAXQ"]\ngpu_max_freqs_hz = [522750000]\nrepeats = 2\n')
    ids = [c.cell_id for c in load_suite(str(path)).cells()]
    assert ids[:4] == ["vgg16-synthetic-dense-pm0-gpu522.75MHz-r0", "vgg16-synthetic-eb-p0.5-pm0-gpu522.75MHz-r0",
                       "vgg16-synthetic-dense-pmMAXQ-gpu522.75MHz-r0", "vgg16-synthetic-eb-p0.5-pmMAXQ-gpu522.75MHz-r0"]
    assert len(ids) == 8 and ids[4].endswith("-r1")  # repeat-major, the board state outermost inside a repeat
    path.write_text('[grid]\npower_modes = ["MAXN", "x; reboot"]\n')
    with pytest.raises(EbedgeError) as err:
        load_suite(str(path))
    assert str(err.value).startswith("%s:2: grid.power_modes: power_mode must be an nvpmodel mode id or name" % path)
    assert resolve({"power_mode": "7"})["power_mode"] == 7
    for bad in (True, -1, "", "a" * 65):
        with pytest.raises(EbedgeError, match="power_mode must be"):
            resolve({"power_mode": bad})


def test_sigterm_during_a_suite_restores_the_original_mode(tmp_path, modes):
    """A `kill` of `ebedge bench` mid-suite (here inside a cell) leaves the board as it was found."""
    import subprocess
    import sys
    suite = tmp_path / "s.toml"
    suite.write_text('[grid]\nmethods = ["dense"]\npower_modes = ["MAXQ"]\n')
    script = ("import sys, time\nfrom ebedge.measure import powermode\nfrom ebedge.run.suite import load_suite, run_suite\n"
              "powermode.BOARD_ROOT = sys.argv[1]\npowermode.SETTLE_POLL_S = 0.02\n"
              "def execute(settings, out, resume):\n"
              "    session, _ = powermode.session_for_run()\n"
              "    session.apply(powermode.target_of(settings))\n"
              "    print('switched', flush=True)\n    time.sleep(60)\n"
              "run_suite(load_suite(sys.argv[2]), sys.argv[3], execute, progress=lambda line: None)\n")
    child = subprocess.Popen([sys.executable, "-c", script, modes.root, str(suite), str(tmp_path / "out")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert child.stdout.readline() == "switched\n" and modes.mode() == 1
    child.terminate()
    _, err = child.communicate(timeout=60)
    assert child.returncode != 0 and "Terminated" in err.splitlines()[-1]
    assert modes.mode() == 0


def test_a_single_run_switches_records_and_restores_and_refuses_an_unknown_mode(tmp_path, modes, one_thread):
    from ebedge.run.runner import execute
    tiny = {"method": "dense", "model": "vgg11", "width": 0.0625, "limit_train": 64, "limit_test": 32,
            "batch_size": 32, "epochs": 1, "device": "cpu", "meters": ["none"]}
    summary = execute(dict(tiny, power_mode=1), out=str(tmp_path / "run"), quiet=True)
    assert summary["status"] == "complete" and summary["power_mode"] == "MAXQ (1)"
    config = json.load(open(str(tmp_path / "run" / "config.json")))
    assert config["power_mode_switch"]["mode"] == {"id": 1, "name": "MAXQ"}
    assert config["board"]["nvpmodel"]["id"] == 1 and modes.mode() == 0  # recorded at MAXQ, then put back
    with pytest.raises(EbedgeError, match="^power mode 'MODE_15W' is not one of this board's modes: 0 MAXN, 1 MAXQ$"):
        execute(dict(tiny, power_mode="MODE_15W"), out=str(tmp_path / "bad"), quiet=True)
    assert modes.mode() == 0


def test_settling_waits_for_the_cooldown_and_flags_a_board_that_stays_hot(modes):
    import threading
    zone = os.path.join(modes.root, "sys/class/thermal/thermal_zone0")
    os.makedirs(zone)
    with open(os.path.join(zone, "type"), "w") as f:
        f.write("GPU-therm\n")
    temp = os.path.join(zone, "temp")
    with open(temp, "w") as f:
        f.write("60000\n")
    hot = powermode.Session(modes.root, poll_s=0.02, settle_timeout_s=0.3).apply(_target("MAXQ"), cooldown_temp_c=40)
    assert not hot["settled"] and hot["flags"] == [
        "warning: clocks/temperature did not settle within 0 s after the power-mode switch"]

    done = threading.Event()

    def cool():
        with open(temp, "w") as f:
            f.write("35000\n")
        done.set()
    threading.Timer(1.5, cool).start()
    cooled = powermode.Session(modes.root, poll_s=0.02, settle_timeout_s=20).apply(_target("MAXN"), cooldown_temp_c=40)
    assert done.is_set()  # apply returned only after the board cooled
    assert cooled["settled"] and cooled["settle_s"] > 0 and not cooled["flags"]
