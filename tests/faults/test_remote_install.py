"""`remote install` from a laptop venv
that has ebedge's own dependencies but no `wheel`, `setuptools` or `build` (and no network), onto
a loopback board whose Python lacks torch: the wheel is built and installed, and install fails
naming what is missing."""
import os
import subprocess
import sys

import pytest

import click
import numpy
from support.remote_fixtures import Lab
from support.remote_sshd import needs_sshd

pytestmark = [needs_sshd, pytest.mark.host, pytest.mark.timeout(240)]  # the laptop side
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_PYTHON = getattr(sys, "_base_executable", None) or sys.executable


def bare_venv(path):
    """A venv with no pip, wheel or setuptools; ebedge's source, click and numpy on its path."""
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", path], check=True)
    deps = os.path.join(path, "deps")
    os.makedirs(deps)
    for module in (click, numpy):
        top = os.path.dirname(module.__file__)
        os.symlink(top, os.path.join(deps, os.path.basename(top)))
        libs = top + ".libs"
        if os.path.isdir(libs):
            os.symlink(libs, os.path.join(deps, os.path.basename(libs)))
    python = os.path.join(path, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    with open(os.path.join(site, "ebedge-source.pth"), "w") as f:
        f.write("%s\n%s\n" % (ROOT, deps))
    return python


def test_install_from_a_bare_venv_fails_when_the_board_lacks_torch(tmp_path):
    laptop = bare_venv(str(tmp_path / "laptop venv"))
    for tool in ("wheel", "setuptools", "build"):
        assert subprocess.run([laptop, "-c", "import " + tool],
                              stderr=subprocess.DEVNULL).returncode != 0, tool
    lab = Lab(str(tmp_path / "lab"))
    try:
        board_venv = str(tmp_path / "board venv")
        done = subprocess.run([laptop, "-m", "ebedge", "remote", "install", "board1",
                               "--ssh-config", lab.config, "--python", BASE_PYTHON,
                               "--venv", board_venv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=200)
        assert "installed into" in done.stdout, done.stdout + done.stderr
        assert done.returncode != 0  # the board's Python has no torch
        assert "torch" in done.stderr and "missing" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert "MISSING  torch" in done.stdout
        imported = subprocess.run([os.path.join(board_venv, "bin", "python"), "-c",
                                   "import ebedge, meters.sim, os; print(ebedge.__file__); "
                                   "print(os.access(os.path.join(os.path.dirname(meters.sim."
                                   "__file__), 'bin', 'tegrastats'), os.X_OK))"],
                                  stdout=subprocess.PIPE, universal_newlines=True, cwd="/")
        assert imported.returncode == 0
        assert board_venv in imported.stdout and imported.stdout.split()[-1] == "True"
        assert os.access(os.path.join(board_venv, "bin", "ebedge"), os.X_OK)
    finally:
        lab.stop()
