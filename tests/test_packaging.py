"""A plain (non-editable) install works from any directory: shipped suites by name, --list."""
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.host  # a laptop builds and installs the wheel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "results",
                              "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding the built wheel (no deps), the shared deps reached through a .pth."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = str(tmp / "src")
    shutil.copytree(ROOT, src, ignore=SKIP, symlinks=True)
    subprocess.check_call([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp / "dist"), src])
    wheel = [os.path.join(str(tmp / "dist"), n) for n in os.listdir(str(tmp / "dist"))]
    venv = str(tmp / "venv")
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    python = os.path.join(venv, "bin", "python")
    subprocess.check_call([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index"] + wheel)
    site = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   universal_newlines=True).strip()
    deps = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(os.path.join(p, "click"))]
    assert deps, "no site-packages holding the dependencies"
    with open(os.path.join(site, "shared-deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    elsewhere = str(tmp / "elsewhere")
    os.makedirs(elsewhere)
    return os.path.join(venv, "bin", "ebedge"), python, elsewhere


def _run(argv, cwd):
    env = dict(os.environ, PYTHONPATH="")
    return subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


@pytest.mark.slow
def test_the_installed_package_is_not_this_checkout(installed):
    _, python, elsewhere = installed
    where = _run([python, "-c", "import ebedge; print(ebedge.__file__)"], elsewhere).stdout
    assert ROOT not in where and "site-packages" in where


def test_shipped_suites_run_by_name_from_any_directory(installed, tmp_path):
    ebedge, _, elsewhere = installed
    listed = _run([ebedge, "bench", "--list"], elsewhere)
    assert listed.returncode == 0, listed.stdout
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"quick", "paper-table2-cifar10", "paper-table3-imagenet"} <= set(names)
    for name, cells in (("quick", 2), ("paper-table2-cifar10", 50)):
        result = _run([ebedge, "bench", name, "--dry-run"], elsewhere)
        assert result.returncode == 0, result.stdout
        assert "suite %s: %d cells" % (name, cells) in result.stdout
    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\n[grid]\nmethods = ["dense"]\n')
    result = _run([ebedge, "bench", str(own), "--dry-run"], elsewhere)
    assert result.returncode == 0 and "suite mine: 1 cells" in result.stdout, result.stdout
    missing = _run([ebedge, "bench", "../quick", "--dry-run"], elsewhere)
    assert missing.returncode == 1 and "suite not found" in missing.stdout
