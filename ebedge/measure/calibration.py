"""Calibration profiles: a qualification's fitted gain and offset, stored per board and meter in
the user's config directory, and applied to later runs on that board beside the raw figures.

A profile names the board (model, module serial or else hostname), the L4T release and the power
mode it was made under, the meter and rail, and the reference. A run looks up the profile of each
of its meters: same board and meter, and the same L4T and power mode, or it is not applied (with
a warning naming both); without one the meter is `uncalibrated`. Calibrated energy is
`gain x energy_j + offset_w x covered seconds` (the map P_ref = gain x P + offset, integrated
over the time the meter saw), in its own column; raw figures are never replaced or averaged with
it. A profile file that cannot be read is skipped with a warning: it is data, not code.
"""
import json
import math
import os
import re
import time

from ebedge.errors import EbedgeError
from ebedge.util.safeio import write_json_atomic

UNCALIBRATED = "uncalibrated"
ENV_DIR = "EBEDGE_CONFIG_DIR"
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def profile_dir():
    """$EBEDGE_CONFIG_DIR/calibration, else $XDG_CONFIG_HOME/ebedge/calibration, else
    ~/.config/ebedge/calibration."""
    base = os.environ.get(ENV_DIR)
    if not base:
        xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        base = os.path.join(xdg, "ebedge")
    return os.path.join(base, "calibration")


def identity(snap):
    """What a profile is tied to, from a board's BoardState (ebedge.measure.board.snapshot)."""
    return {"model": snap.model or "unknown", "serial": snap.serial, "hostname": snap.hostname,
            "l4t": snap.l4t, "power_mode": snap.power_mode_label}


def _board_key(ident):
    return (ident.get("model"), ident.get("serial") or ident.get("hostname"))


def profile_name(ident, meter):
    who = ident.get("serial") or ident.get("hostname") or "unknown"
    parts = (ident.get("model") or "unknown", who, meter)
    return "-".join(_SAFE.sub("_", p).strip("_") for p in parts)


def make_profile(result, ident):
    """A profile from a qualification result (ebedge.measure.qualify) and the board identity."""
    meter = result["meter"]
    return {"name": profile_name(ident, meter), "board": ident, "meter": meter,
            "rail": result["rates"][meter]["rail"], "reference": result["reference"],
            "reference_rail": result["rates"][result["reference"]]["rail"],
            "gain": result["fit"]["gain"], "offset_w": result["fit"]["offset_w"],
            "fit": result["fit"], "verdict": result["verdict"],
            "tolerance_pct": result["tolerance_pct"], "created_wall": time.time()}


def save(profile, directory=None):
    """Write `profile` as <dir>/<name>.json (replacing an older one); returns the path."""
    directory = directory or profile_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, profile["name"] + ".json")
    write_json_atomic(path, profile)
    return path


def _load(path):
    with open(path) as f:
        p = json.load(f)
    if not isinstance(p, dict) or not isinstance(p.get("board"), dict):
        raise ValueError("not a calibration profile")
    p["gain"], p["offset_w"] = float(p["gain"]), float(p["offset_w"])
    if not (p["gain"] > 0 and abs(p["offset_w"]) < 1e4):
        raise ValueError("implausible gain %r / offset %r W" % (p["gain"], p["offset_w"]))
    str(p["meter"]), str(p["rail"]), str(p["name"])
    return p


def profiles(directory=None):
    """([profile], [warning]) of every profile file in the directory."""
    directory = directory or profile_dir()
    found, warnings = [], []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return found, warnings
    for name in names:
        path = os.path.join(directory, name)
        try:
            found.append(_load(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.append("warning: calibration profile %s skipped: %s" % (path, exc))
    return found, warnings


def lookup(ident, meter_names, directory=None):
    """({meter: profile dict or UNCALIBRATED}, [warning]) for a run on board `ident`."""
    found, warnings = profiles(directory)
    chosen = {}
    for meter in meter_names:
        mine = [p for p in found if p["meter"] == meter
                and _board_key(p["board"]) == _board_key(ident)]
        same = [p for p in mine if p["board"].get("l4t") == ident.get("l4t")
                and p["board"].get("power_mode") == ident.get("power_mode")]
        chosen[meter] = same[0] if same else UNCALIBRATED
        for p in mine:
            if p not in same:
                warnings.append(
                    "warning: calibration profile %s not applied: made under L4T %s, power mode "
                    "%s; this run: L4T %s, power mode %s" % (
                        p["name"], p["board"].get("l4t"), p["board"].get("power_mode"),
                        ident.get("l4t"), ident.get("power_mode")))
    return chosen, warnings


def describe(chosen):
    """{meter: profile name or 'uncalibrated'} for config.json and summary.json."""
    return {m: (p["name"] if isinstance(p, dict) else UNCALIBRATED) for m, p in chosen.items()}


def applied(chosen):
    """The parts of the chosen profiles a later process needs to apply them (config.json)."""
    return {m: {k: p[k] for k in ("name", "rail", "gain", "offset_w")}
            for m, p in chosen.items() if isinstance(p, dict)}


def _usable(p):
    """Whether an entry of config.json's `calibration_profiles` (a board wrote it) can be applied."""
    return isinstance(p, dict) and isinstance(p.get("rail"), str) and all(
        isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
        and math.isfinite(p[k]) for k in ("gain", "offset_w"))


def apply(rows, calibration):
    """Fill `calibrated_energy_j` of energy rows whose meter and rail have a profile in
    `calibration` ({meter: {"rail", "gain", "offset_w"}}); None elsewhere, and for entries that
    are not such a profile."""
    if not isinstance(calibration, dict):
        calibration = {}
    for r in rows:
        p = calibration.get(r["meter"])
        if _usable(p) and r["rail"] == p["rail"] and r["energy_j"] is not None:
            covered = r["covered_frac"] * r["duration_s"]
            r["calibrated_energy_j"] = p["gain"] * r["energy_j"] + p["offset_w"] * covered
        else:
            r["calibrated_energy_j"] = None
    return rows


def check_saveable(result):
    """Refuse to store a fit that did not qualify even after calibration."""
    if result["verdict"] == "fail":
        raise EbedgeError("qualification failed (worst calibrated error %s%%); no profile saved"
                          % _fmt(result.get("max_calibrated_error_pct")))


def _fmt(x):
    return "-" if x is None else "%.2f" % x
