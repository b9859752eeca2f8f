"""One sweep per board: a reservation the sweep takes before it starts cells and releases at the
end; starts of another sweep are refused while it holds."""
import os
import shutil
import time
import uuid

from ebedge.agent.layout import LOCK_DIR, read_json, runs_root, write_json
from ebedge.errors import EbedgeError
from ebedge.run import runlock


def lock(owner, root=None, laptop=None, pid=None):
    """Reserve the board for sweep `owner` (a random id); returns the reservation record.

    Re-taking one's own reservation (a resumed sweep) is allowed and records the takeover; another
    sweep's is refused until it is released (`unlock`, `ebedge remote unlock HOST`). Whether that
    sweep still lives is not guessed from hostnames, pids or clocks."""
    root = runs_root(root)
    if not owner:
        raise EbedgeError("a reservation needs an owner id")
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, LOCK_DIR)
    record = {"owner": owner, "session": uuid.uuid4().hex, "laptop": laptop, "pid": pid,
              "time": time.time()}
    try:
        os.mkdir(path)
    except FileExistsError:
        held = read_json(os.path.join(path, "owner.json")) or {}
        if held.get("owner") != owner:
            raise EbedgeError(reserved_message(held))
        record["taken_over_from"] = held.get("session")
    write_json(os.path.join(path, "owner.json"), record)
    return record


def reserved_message(held, host="HOST"):
    return ("board is reserved by sweep %s (laptop %s, pid %s, since %s); if that sweep is gone, "
            "release it with `ebedge remote unlock %s`"
            % (held.get("owner") or "unknown", held.get("laptop") or held.get("host") or "?",
               held.get("pid") or "?", runlock.when_text(held.get("time")), host))


def check_reservation(root, sweep):
    held = lock_holder(root)
    if held is not None and held.get("owner") != sweep:
        raise EbedgeError(reserved_message(held))


def lock_holder(root=None):
    path = os.path.join(runs_root(root), LOCK_DIR)
    if not os.path.isdir(path):
        return None
    return read_json(os.path.join(path, "owner.json")) or {}


def unlock(owner=None, root=None, force=False):
    """Release the reservation if `owner` holds it (or with `force`); the record removed, or None."""
    path = os.path.join(runs_root(root), LOCK_DIR)
    held = lock_holder(root)
    if held is None:
        return None
    if held.get("owner") != owner and not force:
        raise EbedgeError("board is reserved by sweep %s, not %s" % (held.get("owner"), owner))
    shutil.rmtree(path, ignore_errors=True)
    return held
