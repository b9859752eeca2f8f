"""Reading run directories through their files (the run-directory contract) into `Run`s.

Host side: Python 3.8+, pandas."""
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field  # novermin: the 3.6 backport is a declared dependency
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ebedge.config import catalog, spec
from ebedge.measure.board_state import BoardState
from ebedge.config.settings import explicit
from ebedge.util import stats


class ReportError(ValueError):
    """Bad input to the report (missing path, runs that must not be averaged together)."""


HEARTBEAT_STALE_S = 60.0
RUN_MARKERS = ("config.json", "summary.json")
RUN_FILES = ("config.json", "summary.json", "phases.csv", "epochs.csv", "energy.csv", "samples.csv")
REPORT_MARKERS = ("runs.csv", "table.csv")
QUALIFICATION_MARKER = "qualification.json"
ENERGY_PHASES = ("idle_before", "search", "prune", "retrain", "eval", "idle_after", "train_total")
# Paper order (Table 2): dense reference, the baselines, then the EB Train variants.
NO_RATIO = "-"

def t_quantile_975(df: int) -> float:
    """t(0.975, df); see ebedge.util.stats (kept here for the report's users)."""
    try:
        return stats.t_quantile_975(df)
    except ValueError as exc:
        raise ReportError(str(exc))


def mean_ci95(values) -> Tuple[float, float]:
    """Mean and 95% interval half-width (t-distribution) of the finite values; NaN where undefined (n < 2)."""
    x = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not x:
        return float("nan"), float("nan")
    mean, _, half = stats.mean_std_ci95(x)
    return mean, (half if half is not None else float("nan"))


# Settings that do not change what a run measures (the spec's replicate and observation roles:
# the seed, which repeat, where data lives, how it was observed), and where a run was written.
# Everything else (new keys too, e.g. amp or data_pipeline) separates table rows.
NOT_RESULT_SETTINGS = tuple(s.name for s in spec.SPEC if s.role != spec.EXPERIMENT) + ("out", "run_id")


def result_settings(settings: dict) -> dict:
    """The settings that determine a run's result, less the prune ratio it was pruned at (the table's
    column); ratios only detected for study stay, as 'prune_ratio_detected'."""
    out = {k: v for k, v in explicit(settings).items() if k not in NOT_RESULT_SETTINGS and k != "prune_ratio"}
    ratios = settings.get("prune_ratio")
    if isinstance(ratios, (list, tuple)) and len(ratios) > 1:
        out["prune_ratio_detected"] = list(ratios[1:])
    return out


def settings_key(settings: dict) -> str:
    """Equal for runs that differ only in seed, repeat, output place, meters or the pruned ratio."""
    blob = json.dumps(result_settings(settings), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def ratio_label(prune_ratio) -> str:
    """'0.5' for a prune ratio, '-' for runs without one (dense).

    A list (the settings' ratios, read from an incomplete run's config) means its first ratio."""
    if isinstance(prune_ratio, (list, tuple)):
        prune_ratio = prune_ratio[0] if prune_ratio else None
    if prune_ratio is None or (isinstance(prune_ratio, float) and math.isnan(prune_ratio)):
        return NO_RATIO
    return "{:g}".format(float(prune_ratio))


def is_eb_method(method) -> bool:
    """An EB Train variant: a method that draws an Early-Bird ticket (ebedge.config.catalog)."""
    known = catalog.known(method)
    return known is not None and known.draws_ticket


def is_baseline_method(method) -> bool:
    return not is_eb_method(method) and str(method) != "dense"


# ---------------------------------------------------------------- reading run directories

@dataclass
class Run:
    """One run directory as read from its files; `status` is derived (see load_run)."""
    path: str
    run_id: str
    config: dict
    summary: Optional[dict]
    status: str
    missing: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def settings(self) -> dict:
        settings = self.config.get("settings")
        return settings if isinstance(settings, dict) else {}

    def get(self, key, default=None):
        """A summary field, falling back to the config's settings (so incomplete runs still say what they were)."""
        if self.summary and key in self.summary:
            return default if self.summary[key] is None else self.summary[key]
        value = self.settings.get(key)
        return default if value is None else value

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)


def _read_json(path: str, notes: List[str]) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        notes.append("unreadable {}: {}".format(os.path.basename(path), exc))
        return None
    if not isinstance(data, dict):
        notes.append("{} is not a JSON object".format(os.path.basename(path)))
        return None
    return data


def _heartbeat_age(path: str, summary: Optional[dict], now: float) -> Optional[float]:
    """Seconds since the running process last showed life: heartbeat mtime, else summary heartbeat_wall."""
    beat = os.path.join(path, "heartbeat")
    if os.path.exists(beat):
        return now - os.path.getmtime(beat)
    if summary and isinstance(summary.get("heartbeat_wall"), (int, float)):
        return now - float(summary["heartbeat_wall"])
    return None


def load_run(path: str, now: Optional[float] = None) -> Run:
    """Read one run directory. Never raises for a damaged run: problems land in status/missing/notes.

    status is the summary's status, except: no (or a torn) summary.json -> "incomplete (no summary.json)" (or
    "running" while the heartbeat is fresh); status "running" with a heartbeat older than 60 s (or none)
    -> "stale (killed?)".
    """
    now = time.time() if now is None else now
    notes = []  # type: List[str]
    config = _read_json(os.path.join(path, "config.json"), notes) or {}
    summary = _read_json(os.path.join(path, "summary.json"), notes)
    missing = [name for name in RUN_FILES if not os.path.isfile(os.path.join(path, name))]
    run_id = (summary or {}).get("run_id") or config.get("run_id") or os.path.basename(os.path.normpath(path))
    age = _heartbeat_age(path, summary, now)
    alive = age is not None and age <= HEARTBEAT_STALE_S
    if summary is None:
        there = os.path.isfile(os.path.join(path, "summary.json"))
        status = "running" if alive else "incomplete ({} summary.json)".format("unreadable" if there else "no")
    else:
        status = str(summary.get("status") or "incomplete (no status)")
        if status == "running" and not alive:
            status = "stale (killed?)"
    return Run(path=path, run_id=str(run_id), config=config, summary=summary, status=status,
               missing=missing, notes=notes)


def find_run_dirs(paths: Sequence[str], skip: Sequence[str] = ()) -> Tuple[List[str], List[str]]:
    """Run directories under `paths` (each a run dir or a tree of them) and the foreign entries met on the way.

    A run directory holds config.json or summary.json; the walk does not descend into it. A directory
    reached twice (given twice, or through a symlink) counts once. Earlier report outputs
    (runs.csv + table.csv) and the paths in `skip` are passed over silently; a directory holding no
    run at any depth is one foreign entry.
    """
    seen = {os.path.realpath(p) for p in skip}
    runs, foreign = [], []  # type: List[str], List[str]

    def visit(directory: str, top: bool) -> Optional[bool]:
        """True: runs found below; False: none (foreign); None: passed over silently."""
        real = os.path.realpath(directory)
        if real in seen:
            return None
        seen.add(real)
        try:
            names = os.listdir(directory)
        except OSError:
            return False
        if any(m in names for m in RUN_MARKERS):
            runs.append(directory)
            return True
        if all(m in names for m in REPORT_MARKERS) or QUALIFICATION_MARKER in names:
            return None  # a report, or a meter qualification (ebedge.report.qualification)
        found_any, strays = False, []
        for name in sorted(names):
            full = os.path.join(directory, name)
            found = visit(full, False) if os.path.isdir(full) else False
            if found:
                found_any = True
            elif found is False:
                strays.append(full + os.sep if os.path.isdir(full) else full)
        if found_any or top:
            foreign.extend(strays)
        return found_any

    for p in paths:
        if not os.path.isdir(p):
            raise ReportError("not a directory: {}".format(p))
        visit(p, True)
    return runs, foreign


def _read_csv(run: Run, name: str, **kwargs) -> Optional[pd.DataFrame]:
    """A run's CSV, tolerating a missing, empty or torn file (a crash may cut the last line)."""
    path = run.file(name)
    if not os.path.isfile(path):
        return None
    try:
        return pd.read_csv(path, on_bad_lines="skip", **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError):
        return None


# ---------------------------------------------------------------- frames

def _energy(run: Run) -> dict:
    return ((run.summary or {}).get("energy")) or {}


def energy_label(run: Run) -> str:
    """'measured (ina3221)', 'modelled (model)' or 'none': every energy number travels with this label."""
    e = _energy(run)
    if not e:
        return "none"
    return "{} ({})".format(e.get("method") or "unlabelled", e.get("meter") or "?")


def _power_mode(run: Run):
    mode = run.get("power_mode")
    if mode is None:
        mode = BoardState.from_json(run.config.get("board")).power_mode_label
    return None if mode is None else str(mode)


def _flat(value):
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _num(value) -> float:
    """A numeric summary field as float; NaN when absent or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def ticket_epoch(run: Run):
    """The epoch the ticket was drawn at: summary 'ticket_epoch' when a method writes one, else 'eb_epoch'."""
    s = run.summary or {}
    return s.get("ticket_epoch", s.get("eb_epoch"))



def _method_rank(method) -> Tuple[float, str]:
    """The catalog's report order (the paper's: baselines first); methods not installed here last."""
    known = catalog.known(method)
    return (known.order if known is not None else float("inf"), str(method))


def _ratio_rank(label: str) -> float:
    return -1.0 if label == NO_RATIO else float(label)
