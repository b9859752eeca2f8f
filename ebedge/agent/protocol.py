"""The board's answers to the laptop's probes: the clock, `remote doctor`'s facts, whether a run
can start here; and the mark that ends `watch`'s stream."""
import os
import shutil
import socket
import sys

from ebedge.agent.layout import runs_root

STATE_MARK = "@@ebedge-state "  # prefix of the last line `watch` prints
REQUIRED = ("torch", "torchvision", "numpy", "click")  # what a run cannot start without


def clock_loop(stdin=None, stdout=None):
    """Answer each line read with this board's wall time, until end of input."""
    from meters.base import now
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        stdout.write(("%.6f\n" % now()[1]).encode("ascii"))
        stdout.flush()


def info(root=None):
    """What `remote doctor` shows: versions, meters, power mode, free disk."""
    import platform
    import ebedge
    out = {"python": platform.python_version(), "ebedge": ebedge.__version__,
           "hostname": socket.gethostname(), "executable": sys.executable}
    for name in ("torch", "torchvision"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # a missing or broken install is what doctor must say
            out[name] = None
            out[name + "_error"] = "%s: %s" % (type(exc).__name__, exc)
    try:
        import meters
        out["meters"] = [{"name": n, "available": ok, "reason": why} for n, ok, why in meters.detect()]
    except Exception as exc:
        out["meters"], out["meters_error"] = [], str(exc)
    from ebedge.measure import board, powermode
    out["board"] = board.snapshot().to_json()  # BoardState's one serialisation
    out["power_modes"] = [{"id": i, "name": n} for i, n in powermode.read_modes(powermode.BOARD_ROOT)]
    root = runs_root(root)
    probe = root if os.path.isdir(root) else os.path.expanduser("~")
    usage = shutil.disk_usage(probe)
    out["disk_free_bytes"] = usage.free
    out["runs_root"] = root
    return out


def check():
    """{"python", "ebedge", "executable", "missing": {module: error}}: can this board run?"""
    import platform
    import ebedge
    missing = {}
    for name in REQUIRED + ("meters",):
        try:
            __import__(name)
        except Exception as exc:  # a missing or broken install is what the laptop must hear
            missing[name] = "%s: %s" % (type(exc).__name__, exc)
    return {"python": platform.python_version(), "ebedge": ebedge.__version__,
            "executable": sys.executable, "missing": missing}
