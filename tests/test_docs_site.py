"""The documentation site builds with `mkdocs build --strict`: a broken link, a page missing from
the nav's files or a public name the API page cites that no longer exists fails here."""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# module -> the package that brings it (setup.cfg's `docs` extra)
SITE_PACKAGES = {"mkdocs": "mkdocs", "material": "mkdocs-material", "mkdocstrings": "mkdocstrings",
                 "mkdocstrings_handlers.python": "mkdocstrings-python", "mkdocs_click": "mkdocs-click"}


def missing_site_packages():
    missing = []
    for module, package in sorted(SITE_PACKAGES.items()):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            missing.append(package)
    return missing


@pytest.mark.slow
@pytest.mark.host
@pytest.mark.timeout(240)
def test_site_builds_strict(tmp_path):
    missing = missing_site_packages()
    if missing:
        pytest.skip("%s not installed (pip install -e '.[docs]')" % ", ".join(missing))
    env = dict(os.environ, PYTHONPATH=ROOT, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=220)
    assert done.returncode == 0, done.stdout[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("ebedge.Monitor", "ebedge.runner.execute", "ebedge.flops.training_cost", "meters.create",
                 "ebedge.report.build.build_report"):
        assert name in api, name  # rendered from the docstrings, not a missing-object placeholder
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "ebedge remote sweep" in cli and "--prune-ratio" in cli
