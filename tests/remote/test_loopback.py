"""The loopback board lab refuses in one line, naming the package, where sshd is missing, and the
remote tests skip with that reason instead of failing with FileNotFoundError."""
import pytest

from ebedge.remote import loopback
from support.remote_sshd import needs_sshd

pytestmark = pytest.mark.host


def test_a_missing_sshd_is_named_with_its_package(tmp_path, monkeypatch):
    monkeypatch.setattr(loopback, "SSHD", str(tmp_path / "no-sshd"))
    assert not loopback.sshd_available()
    board = loopback.LoopbackBoard(str(tmp_path), "b", loopback.keygen(str(tmp_path / "id")))
    with pytest.raises(loopback.SshdMissing, match=r"no-sshd is missing .*openssh-server"):
        board.start()
    assert board.proc is None


def test_remote_tests_skip_with_the_package_name():
    assert needs_sshd.name == "skipif"
    assert needs_sshd.args == (not loopback.sshd_available(),)
    assert "openssh-server" in needs_sshd.kwargs["reason"]


@needs_sshd
def test_a_board_answers_over_real_ssh(tmp_path):
    import subprocess
    identity = str(tmp_path / "id")
    board = loopback.LoopbackBoard(str(tmp_path), "b", loopback.keygen(identity)).start()
    try:
        config = loopback.write_ssh_config(str(tmp_path / "cfg"), [board], identity,
                                           str(tmp_path / "known_hosts"))
        done = subprocess.run(["ssh", "-F", config, "b", "echo", "board-up"], stdout=subprocess.PIPE,
                              universal_newlines=True, timeout=30)
        assert done.returncode == 0 and done.stdout.strip() == "board-up"
    finally:
        board.stop()
