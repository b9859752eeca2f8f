"""A full disk (a real file-size limit: writes past it fail with EFBIG) ends
the run `failed: disk full (...)` with one line, leaves no temporary file and keeps the last good
checkpoint, from which the run resumes to completion."""
import os
import resource
import signal
import subprocess
import sys

import pytest

from ebedge.run.rundir import load_checkpoint
from support.resume_helpers import TINY, kill_mid_epoch, rows, run, summary


def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so writes raise EFBIG instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _leftovers(out):
    return [os.path.join(d, f) for d, _, files in os.walk(out) for f in files
            if f.endswith(".tmp") or ".tmp." in f]


@pytest.mark.slow  # end to end: a run, a failing resume, a resume
def test_disk_full_at_a_checkpoint_fails_cleanly_and_resumes(tmp_path):
    out = str(tmp_path / "run")
    args = TINY + ["--method", "dense", "--epochs", "3", "--out", out]
    kill_mid_epoch(args, out)  # a good checkpoint after epoch 0
    checkpoint = os.path.join(out, "checkpoints", "last.pt")
    with open(checkpoint, "rb") as f:
        good = f.read()
    # every small file still fits, the next checkpoint does not
    full = run(["--resume", out, "--quiet"], preexec_fn=_file_size_limit(len(good) - 1))
    output = full.stdout.decode()
    assert full.returncode == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: disk full ("), output
    assert "last.pt" in lines[0]
    status = summary(out)["status"]
    assert status.startswith("failed: disk full (") and "File too large" in status
    assert _leftovers(out) == []
    with open(checkpoint, "rb") as f:
        assert f.read() == good  # the last good checkpoint, untouched
    assert load_checkpoint(out)["next_epoch"] == 1
    # with room again, the run resumes from it and trains each epoch once
    done = run(["--resume", out])
    assert done.returncode == 0, done.stdout.decode()
    assert summary(out)["status"] == "complete"
    epochs = [(r["phase"], int(r["epoch"])) for r in rows(os.path.join(out, "epochs.csv"))]
    assert sorted(e for p, e in epochs if p == "search") == [0, 1, 2]
    assert ("lost", 1) in epochs  # trained, but its checkpoint never reached the disk
    assert _leftovers(out) == []


SAMPLES_FILL = """
import sys
from ebedge.run.rundir import RunDir
from meters.base import Sample
rundir = RunDir(sys.argv[1], "run")
for k in range(2000):  # the meter thread's writes: they must not raise
    rundir.log_samples([Sample(k * 0.01, 1.8e9, "ina3221", "total", 5.0)])
rundir.close()
print(repr(rundir.write_error))
"""


def test_disk_full_in_the_meter_thread_is_kept_for_the_runner(tmp_path):
    """samples.csv hits the limit in the meter thread: no traceback there; the error is kept
    (as DiskFull) so that the runner ends the run `failed: disk full`."""
    done = subprocess.run([sys.executable, "-c", SAMPLES_FILL, str(tmp_path / "run")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=_file_size_limit(20000), timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode() == ""
    assert done.stdout.decode().startswith("DiskFull('disk full (")
    assert "samples.csv" in done.stdout.decode()
    assert os.path.getsize(str(tmp_path / "run" / "samples.csv")) <= 20000
