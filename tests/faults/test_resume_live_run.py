"""Resume of a live run: `train --resume DIR` (or `--overwrite`) while another process
still runs DIR is refused in one line and touches nothing; the kernel frees the run-directory
lock when that process dies (a real SIGKILL), and a resume then goes ahead."""
import os
import signal

import pytest

from ebedge.run import runlock
from support.resume_helpers import TINY, rows, run, start, wait_for_epochs

pytestmark = pytest.mark.timeout(300)


def files_of(out):
    names = ("phases.csv", "epochs.csv", "config.json")
    return {n: open(os.path.join(out, n), "rb").read() for n in names}


@pytest.mark.slow  # end to end: a live run, killed, then resumed
def test_resume_or_overwrite_of_a_live_run_is_refused_until_it_dies(tmp_path):
    out = str(tmp_path / "live")
    args = TINY + ["--epochs", "5000", "--meter", "none", "--out", out]
    live = start(args)
    try:
        wait_for_epochs(out, 1, live)
        before = files_of(out)
        for attempt in (["--resume", out, "--quiet"], args + ["--overwrite"]):
            done = run(attempt, timeout=120)
            lines = done.stdout.decode().strip().splitlines()
            assert done.returncode != 0 and len(lines) == 1, done.stdout
            assert "is being run right now by pid %d" % live.pid in lines[0]
            assert live.poll() is None  # the refusal came while the run was live
            now = files_of(out)
            assert now["config.json"] == before["config.json"]
            for name in ("phases.csv", "epochs.csv"):  # nothing relabelled `lost`, only appended
                assert now[name].startswith(before[name]) and b",lost," not in now[name]
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    runlock.hold_run_dir(out).release()  # free again, and the lock file goes with the holder
    assert not os.path.exists(os.path.join(out, runlock.RUN_DIR_LOCK))
    done = len(rows(os.path.join(out, "epochs.csv")))
    resumed = start(["--resume", out, "--quiet"])
    try:
        wait_for_epochs(out, done + 1, resumed)  # it trains on
    finally:
        resumed.send_signal(signal.SIGKILL)
        resumed.wait()
