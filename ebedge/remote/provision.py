"""`remote doctor` and `remote install`: what a board has, and putting this ebedge on it.

Install assumes the board has no internet: the wheel is written here (ebedge.remote.wheel, no
build tools needed) and pushed, the venv sees the system site packages (JetPack's NVIDIA
torch/torchvision live there), our wheel goes in with `--no-deps`, and then every dependency is
imported once on the board so the user learns exactly which are missing and how to bring them
over; a missing required one makes install fail.
"""
import math
import os
import posixpath
import tempfile

import ebedge
from ebedge.errors import EbedgeError
from ebedge.measure.board_state import BoardState
from ebedge.remote import bounded
from ebedge.remote.clock import BOUND_LIMIT_S, ClockChannel, ClockModel
from ebedge.remote.wheel import build_wheel

# module -> (distribution name, needed when)
DEPENDENCIES = (("torch", "torch", "always"), ("torchvision", "torchvision", "always"),
                ("numpy", "numpy", "always"), ("click", "click", "always"),
                ("serial", "pyserial", "serial meters"), ("tomli", "tomli", "suites, Python < 3.11"),
                ("dataclasses", "dataclasses", "Python 3.6"), ("jtop", "jetson-stats", "optional"))
# run on the board with the venv's python: JSON {module: version or null}; a constant, no input
_CHECK = ("import json, sys\nout = {}\nfor name in %r:\n    try:\n        m = __import__(name)\n"
          "        out[name] = str(getattr(m, '__version__', 'present'))\n"
          "    except Exception:\n        out[name] = None\n"
          "out['python'] = '%%d.%%d.%%d' %% sys.version_info[:3]\nprint(json.dumps(out))\n"
          % ([m for m, _, _ in DEPENDENCIES],))


def doctor(board, clock_bursts=3):
    """{"info", "clock", "ebedge_matches", "lines"} for `board` (a remote.board.Board)."""
    board.conn.connect()
    info = board.info()  # a board without ebedge: one line saying so and how to install
    if not isinstance(info, dict):
        raise EbedgeError("%s: ebedge agent info answered something that is no object" % board.host)
    channel = ClockChannel(board.conn, board.remote_ebedge)
    try:
        clock = ClockModel([channel.burst() for _ in range(clock_bursts)]).as_dict()
    finally:
        channel.close()
    matches = info.get("ebedge") == ebedge.__version__
    state = BoardState.from_json(info.get("board"))
    meters = info.get("meters") if isinstance(info.get("meters"), list) else []
    available = [str(m.get("name")) for m in meters if isinstance(m, dict) and m.get("available")]
    free = info.get("disk_free_bytes")
    lines = [
        "board %s (%s)" % (board.host, info.get("hostname")),
        "  python       %s (%s)" % (info.get("python"), info.get("executable")),
        "  torch        %s" % (info.get("torch") or "MISSING: %s" % info.get("torch_error")),
        "  torchvision  %s" % (info.get("torchvision") or "MISSING: %s"
                               % info.get("torchvision_error")),
        "  ebedge       %s (%s)" % (info.get("ebedge"), "matches this laptop" if matches else
                                    "this laptop has %s: `ebedge remote install %s`"
                                    % (ebedge.__version__, board.host)),
        "  meters       %s" % (", ".join(available) or "none available"),
        "  board        %s, L4T %s, power mode %s, jetson_clocks %s" % (
            state.model, state.l4t, state.power_mode_label, state.clocks_pinned),
        "  disk free    %s under %s" % ("%.1f GB" % (free / 1e9) if _finite(free) else "unknown",
                                        info.get("runs_root")),
        "  clock        board - laptop = %+.3f s +- %.3f s%s" % (
            clock["offset_s"], clock["bound_s"],
            "" if clock["bound_s"] <= BOUND_LIMIT_S else
            "  (over the %.1f s bound: laptop-meter runs will be flagged)" % BOUND_LIMIT_S)]
    return {"info": info, "clock": clock, "ebedge_matches": matches, "lines": lines}


def _finite(value):
    """True for a number the board sent that may be shown as one."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def install(conn, remote_python="python3", venv="~/.ebedge/venv", progress=None):
    """Push our wheel and install it into `venv` on the board; (lines saying what each
    dependency is, [required distributions missing])."""
    progress = progress or (lambda text: None)
    conn.connect()
    home = conn.run(["printenv", "HOME"])[1].strip()
    venv = home + venv[1:] if venv.startswith("~") else venv
    with tempfile.TemporaryDirectory(prefix="ebedge-wheel-") as tmp:
        wheel = build_wheel(tmp)
        progress("built %s" % os.path.basename(wheel))
        wheels_dir = posixpath.join(posixpath.dirname(venv.rstrip("/")), "wheels")
        conn.run(["mkdir", "-p", wheels_dir])
        remote_wheel = posixpath.join(wheels_dir, os.path.basename(wheel))
        conn.push(wheel, remote_wheel)
    progress("pushed to %s:%s" % (conn.host, remote_wheel))
    rc, _, err = conn.run([remote_python, "-m", "venv", "--system-site-packages", venv],
                          check=False, timeout=600)
    if rc != 0:
        raise EbedgeError("creating %s on %s failed (is python3-venv installed there? "
                          "`sudo apt-get install python3-venv`): %s"
                          % (venv, conn.host, err.strip()[-300:]))
    bin_dir = posixpath.join(venv, "bin")
    rc, out, err = conn.run([posixpath.join(bin_dir, "python"), "-m", "pip", "install",
                             "--no-deps", "--no-index", "--force-reinstall", remote_wheel],
                            check=False, timeout=600)
    if rc != 0:
        raise EbedgeError("pip install of %s on %s failed: %s" % (remote_wheel, conn.host,
                                                                  (err or out).strip()[-300:]))
    progress("installed into %s" % venv)
    answer = conn.run([posixpath.join(bin_dir, "python"), "-c", _CHECK])[1].strip()
    found = bounded.loads((answer.splitlines() or [""])[-1], "%s's dependency check" % conn.host)
    if not isinstance(found, dict):
        raise EbedgeError("%s's dependency check answered something that is no object" % conn.host)
    return dependency_report(found, posixpath.join(bin_dir, "ebedge"))


def dependency_report(found, ebedge_path):
    """(lines for `install`: each dependency's version and how to bring over a missing one,
    [required distributions missing])."""
    py = str(found.get("python", "?"))
    tag = "".join(py.split(".")[:2])
    lines = ["board Python %s; ebedge at %s" % (py, ebedge_path)]
    missing = []
    for module, dist, when in DEPENDENCIES:
        version = found.get(module)
        needed = not ((module == "dataclasses" and not py.startswith("3.6"))
                      or (module == "tomli" and _at_least(py, (3, 11))))
        if version:
            lines.append("  ok       %-12s %s" % (dist, version))
        elif needed:
            lines.append("  MISSING  %-12s (%s)" % (dist, when))
            if when != "optional":
                missing.append(dist)
    for dist in missing:
        if dist in ("torch", "torchvision"):
            lines.append("  %s: install NVIDIA's build for your JetPack (a Jetson needs the CUDA "
                         "wheel from NVIDIA, not PyPI's), then rerun install" % dist)
    others = [d for d in missing if d not in ("torch", "torchvision")]
    if others:
        lines.append("  the board has no internet? on this laptop: pip download --only-binary=:all:"
                     " --platform linux_aarch64 --python-version %s -d wheels %s; copy wheels/ to "
                     "the board; there: %s/pip install --no-index --find-links wheels %s"
                     % (tag, " ".join(others), posixpath.dirname(ebedge_path), " ".join(others)))
    if not missing:
        lines.append("  every dependency imports; next: ebedge remote doctor HOST")
    return lines, missing


def _at_least(version, floor):
    try:
        return tuple(int(x) for x in version.split(".")[:2]) >= floor
    except ValueError:
        return False
