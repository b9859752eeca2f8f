"""Shared test setup: make the checkout importable, locate ../shared when it is beside it, and smooth
over the library versions a device interpreter has (Python 3.6, torch 1.10, click 8.0)."""
import inspect
import os
import sys
import time

import pytest
from click.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FIXTURES = os.path.join(SHARED, "fixtures")
CIFAR_JPEG = os.path.join(SHARED, "data", "cifar10-jpeg")

# click < 8.2 mixes stderr into output unless told not to (and then `.stderr` raises); 8.2 dropped the switch.
SEPARATE_STDERR = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}


def load_checkpoint(path):
    """Our own checkpoint (numpy arrays inside): torch >= 2.6 needs weights_only=False, torch 1.10 lacks it."""
    import torch
    trusted = {"weights_only": False} if "weights_only" in inspect.signature(torch.load).parameters else {}
    return torch.load(path, map_location="cpu", **trusted)


def wait_for(predicate, timeout=90, poll_s=0.3):
    """predicate()'s first true value, polled until `timeout` seconds (then AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convs on a shared 2-core box run far faster without intra-op threads."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_tx2(tmp_path):
    """Makes a TX2's INA3221 sysfs tree that plays a PowerProfile, refreshed at 1 kHz by a process of its own; closed after the test."""
    from meters.sim.sysfs import FakeIna3221Tree
    trees = []

    def make(profile):
        tree = FakeIna3221Tree(str(tmp_path / "sys"), "tx2", profile)
        tree.start(rate_hz=1000.0, process=True)
        trees.append(tree)
        return tree
    yield make
    for tree in trees:
        tree.close()
