"""Issue 16: the laptop survives any board. Boards behind a real sshd on loopback lie in each
class (terminal escapes, floods, silence, endless drops, oversize copies, in-place writes, forged
laptop recordings, broken runs, another run's answers); each test has an honest board or run
beside the hostile one, which must still be collected as usual."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from support.remote_fixtures import (EBEDGE, Lab, hostile_ebedge, lying_ebedge,
                                     no_symlinks_or_specials, runner_ebedge, write_run)

pytestmark = [pytest.mark.host, pytest.mark.timeout(240)]

RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x7f")  # must never reach the terminal raw
TITLE = "\x1b]0;owned\x07"
CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
BIDI = "\u202egnp.exe"
PEAK_MB = 200


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("hostile16")))
    yield lab
    lab.stop()


def clean(text):
    return not any(c in text for c in RAW)


def one_line_error(done):
    lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
    return done.returncode != 0 and len(lines) == 1 and "Traceback" not in done.stderr


def status_board(tmp_path, runs, name="ebedge"):
    answers = str(tmp_path / ("%s.json" % name))
    with open(answers, "w") as f:
        json.dump(runs, f)
    return hostile_ebedge(str(tmp_path / name), answers)


def run_board(tmp_path, outs, watch="", extra="", name="runner"):
    return runner_ebedge(str(tmp_path / name), outs, watch, extra)


def local(lab, run_id):
    return os.path.join(lab.results, "board1", run_id)


def no_stage_left(lab):
    return [n for n in os.listdir(os.path.join(lab.results, "board1")) if n.startswith(".")]


# -- 1. terminal escapes -------------------------------------------------------------------------
@pytest.mark.slow
def test_board_text_is_shown_escaped_everywhere(lab, tmp_path):
    run = write_run(str(tmp_path / "board" / "esc"), "esc")
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump({"run_id": "esc", "status": "complete" + CLEAR, "flags": [CLIPBOARD + BIDI],
                   "test_acc": 0.5}, f)
    fake = run_board(tmp_path, {"esc": run}, watch="print('epoch 1 %s %s done')" % (
        TITLE.encode("unicode_escape").decode(), BIDI.encode("unicode_escape").decode()))
    done = lab.remote("run", "board1", "--results", lab.results, "--name", "esc", "--epochs",
                      "1", remote_ebedge=fake)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert clean(out), repr(out)
    assert "epoch 1 \\x1b]0;owned\\x07 \\u202egnp.exe done" in done.stdout  # shown, escaped
    assert "flag: \\x1b]52;c;ZXZpbA==\\x07" in done.stdout
    assert "status complete\\x1b[2J, test acc 0.5" in done.stdout
    assert json.load(open(os.path.join(local(lab, "esc"), "summary.json")))["test_acc"] == 0.5

    # status: ids, states and errors as the board sent them; a bad id is said to be one
    liar = status_board(tmp_path, [
        {"run_id": "good", "state": "complete", "out": run},
        {"run_id": "bad" + TITLE, "state": "failed" + CLEAR, "error": CLIPBOARD},
        {"run_id": "bidi", "state": "running", "error": "\u2066x\x9b1m\x7f"}])
    status = lab.remote("status", "board1", remote_ebedge=liar)
    assert status.returncode == 0 and clean(status.stdout + status.stderr), repr(status.stdout)
    assert status.stdout.splitlines()[0].split() == ["good", "complete"]  # the honest run
    assert "(not a run id: 'bad\\x1b]0;owned\\x07')" in status.stdout
    assert "\\u2066x\\x9b1m\\x7f" in status.stdout
    assert len(status.stdout.splitlines()) == 3


def test_stop_and_errors_quoting_the_board_are_escaped(lab, tmp_path):
    fake = lying_ebedge(str(tmp_path / "stopper"), """
if args[:2] == ["agent", "stop"]:
    say({"run_id": args[2], "signalled": "SIGINT" + %r, "signalled_pid": 1, "state": %r})
if args[:2] == ["agent", "unlock"]:
    sys.stderr.write("disk on fire %s\\n"); sys.exit(3)
""" % (TITLE, "interrupted" + CLEAR, CLIPBOARD.encode("unicode_escape").decode()))
    stop = lab.remote("stop", "board1", "r1", remote_ebedge=fake)
    assert stop.returncode == 0 and clean(stop.stdout), repr(stop.stdout)
    assert "SIGINT\\x1b]0;owned\\x07" in stop.stdout
    unlock = lab.remote("unlock", "board1", remote_ebedge=fake)
    assert one_line_error(unlock) and clean(unlock.stderr), repr(unlock.stderr)
    assert "disk on fire \\x1b]52;c;" in unlock.stderr


def test_printable_escapes_every_class_and_keeps_text():
    from ebedge.util.printable import printable
    for code in list(range(0x00, 0x09)) + list(range(0x0b, 0x20)) + [0x7f] + \
            list(range(0x80, 0xa0)) + list(range(0x202a, 0x202f)) + list(range(0x2066, 0x206a)):
        shown = printable("a%sb" % chr(code))
        assert chr(code) not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert printable("caf\u00e9 \u4e2d 10\u00b0C\tx\ny") == "caf\u00e9 \u4e2d 10\u00b0C\tx\ny"
    assert printable("x\ny\tz", one_line=True) == "x\\x0ay\\x09z"
    assert printable(b"\xff\x1b") == "\ufffd\\x1b"


# -- 2. bounded reads --------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_flooding_or_deeply_nested_answer_is_refused_in_bounded_memory(lab, tmp_path):
    flood = lying_ebedge(str(tmp_path / "flood"), """
if args[:2] == ["agent", "status"]:
    chunk = "x" * 2 ** 20
    sys.stdout.write('["')
    for _ in range(200):
        sys.stdout.write(chunk)
    sys.exit(0)
""")
    done, peak = lab.remote_peak("status", "board1", remote_ebedge=flood)
    assert one_line_error(done) and "16777216 bytes" in done.stderr, done.stderr
    assert peak < PEAK_MB, peak
    deep = lying_ebedge(str(tmp_path / "deep"), """
if args[:2] == ["agent", "status"]:
    print("[" * 100000 + "]" * 100000); sys.exit(0)
""")
    nested = lab.remote("status", "board1", remote_ebedge=deep)
    assert one_line_error(nested) and "deeper than 64 levels" in nested.stderr, nested.stderr
    honest = lab.remote("status", "board1")  # the same board's real agent answers fine
    assert honest.returncode == 0, honest.stderr


@pytest.mark.slow
def test_a_log_line_without_end_is_cut_and_the_run_still_collected(lab, tmp_path):
    run = write_run(str(tmp_path / "board" / "longline"), "longline")
    fake = run_board(tmp_path, {"longline": run}, watch="""
sys.stdout.write("before\\n")
for _ in range(300):
    sys.stdout.write("y" * 2 ** 20)
sys.stdout.write("\\nafter\\n")
sys.stdout.flush()""")
    done, peak = lab.remote_peak("run", "board1", "--results", lab.results, "--name", "longline",
                           "--epochs", "1", remote_ebedge=fake)
    assert done.returncode == 0, done.stderr[-2000:]
    cut = [l for l in done.stdout.splitlines() if "cut by ebedge" in l]
    assert len(cut) == 1 and len(cut[0]) < 20000
    assert "board1| before" in done.stdout and "board1| after" in done.stdout
    assert peak < PEAK_MB, peak
    assert os.path.exists(os.path.join(local(lab, "longline"), "summary.json"))


# -- 3. stalled copies ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_board_whose_rsync_never_answers_ends_after_the_stall_timeout(tmp_path):
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "rsync").write_text("#!/bin/sh\nexec sleep 600\n")
    os.chmod(str(fakebin / "rsync"), 0o755)
    stuck = Lab(str(tmp_path / "lab"), aliases=("board1",),
                env={"PATH": "%s:/usr/bin:/bin" % fakebin})
    try:
        run = write_run(str(tmp_path / "board" / "stuck"), "stuck")
        fake = status_board(tmp_path, [{"run_id": "stuck", "state": "complete", "out": run}])
        done = stuck.remote("collect", "board1", "stuck", "--results", stuck.results,
                            "--stall-timeout", "2", remote_ebedge=fake, timeout=60)
        assert one_line_error(done), done.stdout + done.stderr
        assert "no byte from the board for 2 s" in done.stderr
        assert not os.path.exists(os.path.join(stuck.results, "board1", "stuck"))
        assert not [n for n in os.listdir(os.path.join(stuck.results, "board1"))]
    finally:
        stuck.stop()


def test_the_relay_ends_a_silent_or_flooding_command():
    from ebedge.remote import relay
    silent = subprocess.run([sys.executable, relay.__file__, "1000", "1", "sleep", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert silent.returncode == relay.STALLED and b"no byte from the board" in silent.stderr
    flood = subprocess.run([sys.executable, relay.__file__, "100000", "10", "yes"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert flood.returncode == relay.OVER and 100000 - 65536 <= len(flood.stdout) <= 100000
    honest = subprocess.run([sys.executable, relay.__file__, "100000", "10", "echo", "hi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert honest.returncode == 0 and honest.stdout == b"hi\n"


# -- 4. re-attach without progress -------------------------------------------------------------------
@pytest.mark.slow
def test_a_log_stream_that_drops_at_once_is_given_up_after_the_reattach_limit(lab, tmp_path):
    run = write_run(str(tmp_path / "board" / "flappy"), "flappy")
    fake = run_board(tmp_path, {"flappy": run}, extra="""
if args[:2] == ["agent", "watch"]:
    sys.exit(0)  # drops at once, every time""")
    done = lab.remote("run", "board1", "--results", lab.results, "--name", "flappy", "--epochs",
                      "1", "--reattach-limit", "2", remote_ebedge=fake, timeout=60)
    assert one_line_error(done), done.stdout + done.stderr
    assert "without progress (--reattach-limit 2)" in done.stderr
    assert done.stdout.count("re-attached to run flappy") == 2


# -- 5, 6. size cap while copying, no shared inodes --------------------------------------------------
def without_rsync(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ssh", "scp"):
        os.symlink(shutil.which(tool), str(bindir / tool))
    return dict(os.environ, PATH="%s:%s" % (bindir, os.path.dirname(sys.executable)))


@pytest.mark.slow
def test_max_bytes_holds_while_copying_on_rsync_and_scp(lab, tmp_path):
    big = write_run(str(tmp_path / "board" / "big"), "big")
    for i in range(8):  # each under the cap, 32 MiB in all
        with open(os.path.join(big, "chunk%d.bin" % i), "wb") as f:
            f.write(os.urandom(4 * 2 ** 20))
    sparse = write_run(str(tmp_path / "board" / "sparse"), "sparse")
    with open(os.path.join(sparse, "hole.bin"), "wb") as f:
        f.truncate(2 ** 30)  # 1 GiB apparent, nothing on disk
    good = write_run(str(tmp_path / "board" / "fits"), "fits")
    fake = status_board(tmp_path, [{"run_id": r, "state": "complete", "out": d}
                                   for r, d in (("big", big), ("sparse", sparse), ("fits", good))])
    for env in (None, without_rsync(tmp_path)):
        shutil.rmtree(lab.results, ignore_errors=True)
        done, peak = lab.remote_peak("collect", "board1", "--results", lab.results,
                               "--max-bytes", str(10 * 10 ** 6), remote_ebedge=fake, env=env)
        assert done.returncode != 0 and "2 run(s)" in done.stderr, done.stdout + done.stderr
        assert done.stdout.count("the board sent over 11048576 bytes") == (2 if env else 1) or \
            "over max-size" in done.stdout
        assert os.path.exists(os.path.join(local(lab, "fits"), "summary.json"))
        assert not os.path.exists(local(lab, "big")) and not os.path.exists(local(lab, "sparse"))
        assert no_stage_left(lab) == [] and peak < PEAK_MB


def test_a_failed_scp_collect_leaves_the_earlier_copy_byte_and_inode_alike(lab, tmp_path):
    run = write_run(str(tmp_path / "board" / "inplace"), "inplace")
    with open(os.path.join(run, "epochs.csv"), "w") as f:
        f.write("run_id,phase,epoch\ninplace,search,1\n")
    fake = status_board(tmp_path, [{"run_id": "inplace", "state": "complete", "out": run}])
    env = without_rsync(tmp_path)
    first = lab.remote("collect", "board1", "inplace", "--results", lab.results,
                       remote_ebedge=fake, env=env)
    assert first.returncode == 0, first.stderr
    names = ("summary.json", "epochs.csv")
    before = {n: (open(os.path.join(local(lab, "inplace"), n)).read(),
                  os.stat(os.path.join(local(lab, "inplace"), n)).st_ino) for n in names}
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump({"run_id": "inplace", "status": "failed: board rewrote"}, f)
    with open(os.path.join(run, "epochs.csv"), "w") as f:
        f.write("run_id,phase,epoch\ninplace,search,999\n")
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(["not", "an", "object"], f)
    again = lab.remote("collect", "board1", "inplace", "--results", lab.results,
                       remote_ebedge=fake, env=env)
    assert one_line_error(again) and "holds a list, not an object" in again.stderr, again.stderr
    after = {n: (open(os.path.join(local(lab, "inplace"), n)).read(),
                 os.stat(os.path.join(local(lab, "inplace"), n)).st_ino) for n in names}
    assert after == before
    assert no_stage_left(lab) == []


# -- 7. the laptop's own recordings ------------------------------------------------------------------
def test_a_board_cannot_forge_the_laptop_meter(lab, tmp_path):
    forged = write_run(str(tmp_path / "board" / "forged"), "forged")
    os.makedirs(os.path.join(forged, "laptop"))
    with open(os.path.join(forged, "laptop", "samples.csv"), "w") as f:
        f.write("meter,rail,t_mono,t_wall,power_w,voltage_v,current_a,meter_energy_j,flags\n")
    with open(os.path.join(forged, "laptop", "clock.json"), "w") as f:
        json.dump({"estimates": [{"t_mono": 0, "offset_mono_s": 0, "bound_s": 0,
                                  "laptop_wall_minus_mono": 0}], "meter": None}, f)
    with open(os.path.join(forged, "samples.csv"), "a") as f:
        f.write("forged,um@laptop,total,100.0,1000100.0,10.0,,,,\n")
    with open(os.path.join(forged, "config.json"), "w") as f:
        json.dump({"run_id": "forged", "settings": {}, "clock": {"offset_s": 0}}, f)
    honest = write_run(str(tmp_path / "board" / "honest"), "honest")
    fake = status_board(tmp_path, [{"run_id": r, "state": "complete", "out": d}
                                   for r, d in (("forged", forged), ("honest", honest))])
    done = lab.remote("collect", "board1", "--results", lab.results, remote_ebedge=fake)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused laptop/clock.json, laptop/samples.csv" in done.stdout
    assert "only the laptop records those" in done.stdout and "`clock`" in done.stdout
    got = local(lab, "forged")
    assert not os.path.exists(os.path.join(got, "laptop"))
    assert "@laptop" not in open(os.path.join(got, "samples.csv")).read()
    assert "clock" not in json.load(open(os.path.join(got, "config.json")))
    assert open(os.path.join(got, "samples.csv")).read().count("tegrastats") == 101  # board's kept
    assert "refused" not in [l for l in done.stdout.splitlines() if "honest" in l][0]


# -- 8. each run alone ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_bad_run_is_refused_in_one_line_and_the_others_are_collected(lab, tmp_path):
    runs = {}
    runs["listy"] = write_run(str(tmp_path / "board" / "listy"), "listy")
    with open(os.path.join(runs["listy"], "config.json"), "w") as f:
        json.dump([1, 2, 3], f)
    runs["deep"] = write_run(str(tmp_path / "board" / "deep"), "deep")
    os.makedirs(os.path.join(runs["deep"], *(["d"] * 40)))
    runs["typed"] = write_run(str(tmp_path / "board" / "typed"), "typed")
    with open(os.path.join(runs["typed"], "summary.json"), "w") as f:
        f.write('{"run_id": "typed", "status": "complete", "flags": [], "test_acc": "0.9x",'
                ' "runtime_s": NaN, "energy": {"kj": {"search": Infinity}}}')
    runs["zgood"] = write_run(str(tmp_path / "board" / "zgood"), "zgood")
    fake = status_board(tmp_path, [{"run_id": r, "state": "complete", "out": d}
                                   for r, d in sorted(runs.items())])
    done = lab.remote("collect", "board1", "--results", lab.results, remote_ebedge=fake)
    assert one_line_error(done) and "2 run(s)" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stdout
    warnings = [l for l in done.stdout.splitlines() if l.startswith("warning:")]
    assert any("listy" in w and "config.json holds a list" in w for w in warnings)
    assert any("deep" in w and "deeper than 32 levels" in w for w in warnings)
    assert not os.path.exists(local(lab, "listy")) and not os.path.exists(local(lab, "deep"))
    summary = json.load(open(os.path.join(local(lab, "typed"), "summary.json")))
    assert summary["test_acc"] is None and summary["runtime_s"] is None
    assert summary["energy"]["kj"]["search"] is None
    assert len([f for f in summary["flags"] if f.startswith("board_value_refused")]) == 3
    assert json.load(open(os.path.join(local(lab, "zgood"), "summary.json")))["status"] == \
        "complete"
    assert no_stage_left(lab) == [] and no_symlinks_or_specials(lab.results) == []


def test_a_nan_clock_probe_is_refused_and_the_run_flagged_not_aligned(lab, tmp_path):
    from ebedge.errors import EbedgeError
    from ebedge.remote import align
    from ebedge.remote.board import Board
    from ebedge.remote.clock import ClockChannel
    nan = lying_ebedge(str(tmp_path / "nanclock"), """
if args[:2] == ["agent", "clock"]:
    for line in sys.stdin:
        sys.stdout.write("nan\\n"); sys.stdout.flush()
    sys.exit(0)""")
    with Board("board1", ssh_config=lab.config, remote_ebedge=nan) as board:
        channel = ClockChannel(board.conn, nan)
        with pytest.raises(EbedgeError, match="unexpected reply 'nan'"):
            channel.burst()
        channel.close()
        honest = ClockChannel(board.conn, EBEDGE)
        assert abs(honest.burst()["offset_mono_s"]) < 1e10  # a real board answers a number
        honest.close()
    stage = write_run(str(tmp_path / "collected" / "nanrun"), "nanrun")
    os.makedirs(os.path.join(stage, "laptop"))
    with open(os.path.join(stage, "laptop", "samples.csv"), "w") as f:
        f.write("meter,rail,t_mono,t_wall,power_w,voltage_v,current_a,meter_energy_j,flags\n"
                "um,total,5.0,6.0,3.0,,,,\n")
    align.write_clock(stage, [{"t_mono": 1.0, "offset_mono_s": float("nan"), "bound_s": 0.01,
                               "laptop_wall_minus_mono": 0.0}])
    summary = align.merge_laptop(stage, host_alias="board1")
    assert [f for f in summary["flags"] if f.startswith("clock_offset_unknown")]
    assert "@laptop" not in open(os.path.join(stage, "samples.csv")).read()
    assert "clock" not in json.load(open(os.path.join(stage, "config.json")))


# -- 9. another run's answers --------------------------------------------------------------------------
@pytest.mark.slow
def test_an_answer_about_another_run_is_refused(lab, tmp_path):
    other = write_run(str(tmp_path / "board" / "other"), "other")
    asked = write_run(str(tmp_path / "board" / "asked"), "asked")
    swapped = write_run(str(tmp_path / "board" / "swapped"), "swapped")
    with open(os.path.join(swapped, "config.json"), "w") as f:
        json.dump({"run_id": "other", "settings": {}}, f)
    liar = lying_ebedge(str(tmp_path / "swapper"), """
if args[:2] == ["agent", "status"] and len(args) > 2:
    say({"run_id": "other", "state": "complete", "out": %r})
if args[:2] == ["agent", "status"]:
    say([{"run_id": "swapped", "state": "complete", "out": %r},
         {"run_id": "asked", "state": "complete", "out": %r}])
""" % (other, swapped, asked))
    done = lab.remote("collect", "board1", "asked", "--results", lab.results, remote_ebedge=liar)
    assert one_line_error(done) and "answered about run 'other' when asked about run asked" \
        in done.stderr, done.stderr
    assert not os.path.exists(local(lab, "asked"))
    every = lab.remote("collect", "board1", "--results", lab.results, remote_ebedge=liar)
    assert every.returncode != 0 and "1 run(s)" in every.stderr
    assert "config.json is about run 'other'" in every.stdout
    assert not os.path.exists(local(lab, "swapped"))
    assert json.load(open(os.path.join(local(lab, "asked"), "summary.json")))["run_id"] == "asked"


# -- 4. a sweep cell that never progresses -------------------------------------------------------------
SUITE = """name = "stall"
[defaults]
model = "vgg16"
width = 0.0625
dataset = "synthetic"
epochs = 1
[grid]
methods = ["dense"]
"""


@pytest.mark.slow
def test_a_stalled_sweep_cell_moves_to_another_free_board_of_its_kind(tmp_path):
    from ebedge.run.suite import load_suite
    fleet = Lab(str(tmp_path / "fleet"), aliases=("board1", "board2"))
    try:
        suite = tmp_path / "stall.toml"
        suite.write_text(SUITE)
        (cell,) = [c.cell_id for c in load_suite(str(suite)).cells()]
        run = write_run(str(tmp_path / "board2-runs" / cell), cell)
        same_kind = """
with open(%r, "a") as f:
    f.write(" ".join(args[:2]) + "\\n")
if args[:2] == ["agent", "info"]:
    say({"board": {"model": "NVIDIA Jetson TX2", "nvpmodel_mode": "MAXN"}})
"""
        stuck = run_board(tmp_path, {cell: str(tmp_path / "nowhere")}, name="stuck", extra=(
            same_kind % str(tmp_path / "board1.calls")) + """
if args[:2] == ["agent", "watch"]:
    time.sleep(600)  # started, never a byte""")
        honest = run_board(tmp_path, {cell: run}, name="honest", extra=(
            same_kind % str(tmp_path / "board2.calls")) + """
if args[:2] == ["agent", "lock"]:
    time.sleep(3)  # so board1 takes the cell first""")
        hosts = tmp_path / "hosts"
        hosts.write_text("board1 root=%s remote_ebedge=%s\nboard2 root=%s remote_ebedge=%s\n" % (
            fleet.root("board1"), stuck, fleet.root("board2"), honest))
        done = subprocess.run(
            [EBEDGE, "remote", "sweep", str(suite), "--hosts-file", str(hosts), "--ssh-config",
             fleet.config, "--results", fleet.results, "--cell-stall-timeout", "4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "cell %s stalled, left there" % cell in done.stdout
        ledger = json.load(open(os.path.join(fleet.results, "sweep-stall.json")))
        attempts = [(a["board"], a["outcome"]) for a in ledger["cells"][cell]["attempts"]]
        assert attempts == [("board1", "stalled"), ("board2", "done")]
        assert ledger["boards"]["board1"]["state"] == "stalled"
        assert "agent stop" not in (tmp_path / "board1.calls").read_text()  # left as it is
        assert os.path.exists(os.path.join(fleet.results, "board2", cell, "summary.json"))
    finally:
        fleet.stop()


@pytest.mark.slow
def test_a_garbled_final_state_is_no_progress_either(lab, tmp_path):
    run = write_run(str(tmp_path / "board" / "garbled"), "garbled")
    fake = run_board(tmp_path, {"garbled": run}, extra="""
if args[:2] == ["agent", "watch"]:
    print("@@ebedge-state nan"); sys.exit(0)""")
    done = lab.remote("run", "board1", "--results", lab.results, "--name", "garbled", "--epochs",
                      "1", "--reattach-limit", "1", remote_ebedge=fake, timeout=60)
    assert one_line_error(done) and "without progress" in done.stderr, done.stdout + done.stderr


def test_board_samples_with_times_that_are_no_times_place_nothing(tmp_path):
    from ebedge.measure.accounting import read_samples
    path = tmp_path / "samples.csv"
    path.write_text("run_id,meter,rail,t_mono,t_wall,power_w,voltage_v,current_a,meter_energy_j,"
                    "flags\nr,tegrastats,total,nan,1.0,10.0,,,,\nr,tegrastats,total,2.0,inf,10.0,"
                    ",,,\nr,tegrastats,total,3.0,4.0,10.0,,,,\n")
    assert [(s.t_mono, s.t_wall) for s in read_samples(str(path))] == [(3.0, 4.0)]
