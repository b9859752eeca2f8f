"""A board that lies or lacks things, seen from the laptop through real OpenSSH on loopback; nothing
may land outside the results directory."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from support.remote_fixtures import (EBEDGE, Lab, hostile_ebedge, no_symlinks_or_specials,
                                    write_run)
from support.remote_sshd import needs_sshd

pytestmark = [pytest.mark.host, pytest.mark.timeout(240)]  # the laptop side


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("hostile")))
    yield lab
    lab.stop()


def board_says(tmp_path, runs):
    """A hostile ebedge whose `agent status` reports `runs`."""
    answers = str(tmp_path / "answers.json")
    with open(answers, "w") as f:
        json.dump(runs, f)
    return hostile_ebedge(str(tmp_path / "ebedge"), answers)


def one_line_error(done):
    lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
    return done.returncode != 0 and len(lines) == 1 and "Traceback" not in done.stderr


@needs_sshd
def test_run_ids_from_the_board_or_the_user_are_checked(lab, tmp_path):
    good = write_run(str(tmp_path / "board" / "good"), "good")
    outside = os.path.normpath(os.path.join(lab.results, "board1", "../../../escaped-run"))
    absolute = str(tmp_path / "absolute-run")
    fake = board_says(tmp_path, [
        {"run_id": "../../../escaped-run", "state": "complete", "out": good},
        {"run_id": absolute, "state": "complete", "out": good},
        {"run_id": "lost+found", "state": "unknown", "out": str(tmp_path / "board" / "lf")},
        {"run_id": "good", "state": "complete", "out": good}])
    done = lab.remote("collect", "board1", "--results", lab.results, remote_ebedge=fake)
    assert not os.path.exists(outside) and not os.path.exists(absolute)
    assert one_line_error(done), done.stdout + done.stderr  # 2 runs refused, said in one line
    assert "2 run(s)" in done.stderr
    assert "lost+found is no run" in done.stdout  # a stray folder: a warning, not an abort
    assert json.load(open(os.path.join(lab.results, "board1", "good", "summary.json")))[
        "status"] == "complete"
    typed = lab.remote("collect", "board1", "../../x", "--results", lab.results)
    assert one_line_error(typed) and "bad run id" in typed.stderr
    on_board = subprocess.run([EBEDGE, "agent", "status", "../x", "--root", lab.root()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    assert one_line_error(on_board) and "bad run id" in on_board.stderr


@pytest.mark.slow
@needs_sshd
def test_planted_links_and_special_files_never_reach_the_laptop(lab, tmp_path):
    victim = tmp_path / "laptop-file.txt"
    victim.write_text("precious\n")
    run = write_run(str(tmp_path / "board" / "linky"), "linky")
    for name in ("summary.json.tmp", "samples.csv.tmp", "energy.csv.tmp", "notes.txt"):
        os.symlink(str(victim), os.path.join(run, name))
    os.mkfifo(os.path.join(run, "pipe"))
    fake = board_says(tmp_path, [{"run_id": "linky", "state": "complete", "out": run}])
    done = lab.remote("collect", "board1", "linky", "--results", lab.results,
                      remote_ebedge=fake)
    assert done.returncode == 0, done.stdout + done.stderr
    assert victim.read_text() == "precious\n"
    local = os.path.join(lab.results, "board1", "linky")
    assert no_symlinks_or_specials(lab.results) == []
    assert json.load(open(os.path.join(local, "summary.json")))["status"] == "complete"
    assert "skipping non-regular file" in done.stdout

    # a collect that fails (over the size cap) leaves the good earlier copy as it was
    before = open(os.path.join(local, "summary.json")).read()
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump({"run_id": "linky", "status": "failed: replaced", "pad": "x" * 5000}, f)
    capped = lab.remote("collect", "board1", "linky", "--results", lab.results,
                        "--max-bytes", "4000", remote_ebedge=fake)
    assert one_line_error(capped) and "4000" in capped.stderr
    assert open(os.path.join(local, "summary.json")).read() == before
    assert sorted(os.listdir(os.path.join(lab.results, "board1"))) == ["good", "linky"] or \
        not [n for n in os.listdir(os.path.join(lab.results, "board1")) if n.startswith(".")]


@needs_sshd
def test_scp_fallback_passes_no_name_through_the_boards_shell(lab, tmp_path):
    bindir = tmp_path / "bin"  # a laptop without rsync; scp logs how it is called
    bindir.mkdir()
    os.symlink(shutil.which("ssh"), str(bindir / "ssh"))
    scp_log = tmp_path / "scp.log"
    (bindir / "scp").write_text("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n"
                                % (scp_log, shutil.which("scp")))
    os.chmod(str(bindir / "scp"), 0o755)
    canary = tmp_path / "canary"
    weird = str(tmp_path / ("board dir; $(touch %s)" % canary) / "weird")
    write_run(weird, "weird")
    fake = board_says(tmp_path, [
        {"run_id": "weird", "state": "complete", "out": weird},
        {"run_id": "x;touch${IFS}%s" % canary, "state": "complete", "out": weird}])
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.path.dirname(sys.executable)))
    done = lab.remote("collect", "board1", "--results", lab.results, remote_ebedge=fake, env=env)
    assert done.returncode != 0 and "1 run(s)" in done.stderr, done.stdout + done.stderr
    assert json.load(open(os.path.join(lab.results, "board1", "weird", "summary.json")))[
        "status"] == "complete"
    calls = scp_log.read_text().splitlines()
    assert calls and all(" -s " in " %s " % c for c in calls)  # SFTP: no remote shell
    assert not canary.exists()
    assert not [n for n in os.listdir(os.path.join(lab.results, "board1")) if "touch" in n]


@needs_sshd
def test_host_key_type_mismatch_is_not_called_an_attack(lab, tmp_path):
    config = tmp_path / "ssh_config"
    text = open(lab.config).read().replace(
        "StrictHostKeyChecking yes", "StrictHostKeyChecking yes\n  HostKeyAlgorithms ecdsa-sha2-nistp256")
    config.write_text(text)
    done = subprocess.run([EBEDGE, "remote", "status", "board1", "--ssh-config", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert one_line_error(done), done.stderr
    assert "host key type" in done.stderr and "ssh-ed25519" in done.stderr
    assert "man-in-the-middle" not in done.stderr


@needs_sshd
def test_doctor_on_a_board_without_ebedge_says_how_to_install(lab):
    done = lab.remote("doctor", "board1", remote_ebedge="/nonexistent/ebedge")
    assert one_line_error(done), done.stderr
    assert "no ebedge at /nonexistent/ebedge" in done.stderr
    assert "ebedge remote install board1" in done.stderr and "127" not in done.stderr


@needs_sshd
def test_run_checks_the_board_first(lab, tmp_path):
    broken = tmp_path / "site" / "torch"  # what a Jetson with a CPU-only or broken torch shows
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "raise ImportError('libcudart.so.10.2: cannot open shared object file')\n")
    wrapper = tmp_path / "ebedge-no-torch"
    wrapper.write_text("#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n" % (broken.parent, EBEDGE))
    os.chmod(str(wrapper), 0o755)
    done = lab.remote("run", "board1", "--results", lab.results, "--name", "notorch",
                      "--epochs", "1", remote_ebedge=str(wrapper))
    assert one_line_error(done), done.stdout + done.stderr
    assert "torch" in done.stderr and "libcudart" in done.stderr
    assert "ebedge remote install board1" in done.stderr
    assert not os.path.exists(os.path.join(lab.root(), ".agent", "notorch"))  # nothing started


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "../x", "/abs", "x" * 129, "a b",
                                   "a;b", "$(x)", "a`b`", "caf\u00e9", "a\nb", "a*", None, 7])
def test_run_id_shape_is_checked(value):
    from ebedge.errors import EbedgeError
    from ebedge.run.runid import check_run_id, is_run_id
    assert not is_run_id(value)
    with pytest.raises(EbedgeError, match="bad run id"):
        check_run_id(value)
    assert check_run_id("x" * 128) and check_run_id("lost+found") == "lost+found"
    assert check_run_id("vgg16-cifar10-eb-p0.5-r0_1.2")


@needs_sshd
def test_a_long_tmpdir_still_leaves_room_for_the_control_socket(lab):
    import tempfile
    base = tempfile.mkdtemp(prefix="ebedge-long-", dir="/tmp")
    tmpdir = os.path.join(base, "t" * (60 - len(base) - 1))  # 60 chars, as on macOS (~49) and more
    os.makedirs(tmpdir)
    try:
        done = lab.remote("status", "board1", env=dict(os.environ, TMPDIR=tmpdir))
        assert done.returncode == 0, done.stderr
        assert os.listdir(tmpdir) == []  # the private control directory is gone again
    finally:
        shutil.rmtree(base)
