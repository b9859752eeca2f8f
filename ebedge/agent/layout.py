"""Where the agent keeps things on the board: the runs root, and beside each run directory its
own folder `<root>/.agent/<id>/` (settings.json as pushed, log.txt, pid.json)."""
import json
import os

from ebedge.run import runlock
from ebedge.util import safeio

DEFAULT_ROOT = runlock.DEFAULT_ROOT
AGENT_DIR = ".agent"
LOCK_DIR = ".lock"


def runs_root(root=None):
    return os.path.abspath(os.path.expanduser(root or DEFAULT_ROOT))


def agent_dir(root, run_id):
    return os.path.join(root, AGENT_DIR, run_id)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return None


def write_json(path, data):
    safeio.write_json(path, data)
