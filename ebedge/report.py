"""Run directories in, report CSVs and plots out (host side: Python 3.8+, pandas, matplotlib).

The report reads run directories only through their files (the run-directory contract), so it can
report runs written by another ebedge version, on any board, and runs that crashed half way.

Outputs of `build_report`:
  runs.csv    one row per run: status, board, power mode, summary numbers, energy with its label, settings
  table.csv   the paper's Table 2 shape: one row per (model, dataset, method), columns per prune ratio
  phases.csv  energy (gross and net kJ) and seconds per phase, per run, meter and rail
  plots/      mask-distance matrices (Fig. 3), accuracy and FLOPs against ticket epoch (Figs. 1 and 5),
              energy and FLOPs bars per method, power traces with phases shaded; each as PNG and SVG
"""
import json
import math
import os
import time
from dataclasses import dataclass, field  # novermin: the 3.6 backport is a declared dependency
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ebedge import stats


class ReportError(ValueError):
    """Bad input to the report (missing path, runs that must not be averaged together)."""


HEARTBEAT_STALE_S = 60.0
RUN_MARKERS = ("config.json", "summary.json")
RUN_FILES = ("config.json", "summary.json", "phases.csv", "epochs.csv", "energy.csv", "samples.csv")
REPORT_MARKERS = ("runs.csv", "table.csv")
ENERGY_PHASES = ("idle_before", "search", "prune", "retrain", "eval", "idle_after", "train_total")
# Paper order (Table 2): dense reference, the baselines, then the EB Train variants.
METHOD_ORDER = ("dense", "lt", "snip", "ns", "thinet", "sfp", "eb-reinit", "eb", "eb-lf", "eb-ll")
NO_RATIO = "-"

def t_quantile_975(df: int) -> float:
    """t(0.975, df); see ebedge.stats (kept here for the report's users)."""
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


def ratio_label(prune_ratio) -> str:
    """'0.5' for a prune ratio, '-' for runs without one (dense).

    A list (the settings' ratios, read from an incomplete run's config) means its first ratio."""
    if isinstance(prune_ratio, (list, tuple)):
        prune_ratio = prune_ratio[0] if prune_ratio else None
    if prune_ratio is None or (isinstance(prune_ratio, float) and math.isnan(prune_ratio)):
        return NO_RATIO
    return "{:g}".format(float(prune_ratio))


def is_eb_method(method) -> bool:
    return str(method).startswith("eb")


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
        return self.config.get("settings") or {}

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
        if all(m in names for m in REPORT_MARKERS):
            return None
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
        mode = (run.config.get("board") or {}).get("nvpmodel")
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


RUNS_KEY_COLUMNS = ["run_id", "status", "complete", "board_id", "power_mode", "method", "model", "dataset",
                    "prune_ratio", "ratio", "ticket_epoch", "test_acc", "train_pflops_total",
                    "energy_kj_train_total", "energy_label"]


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: identity, status, board and power mode, summary numbers, labelled energy, settings."""
    rows = []
    for run in runs:
        s = run.summary or {}
        e = _energy(run)
        row = {
            "run_id": run.run_id, "status": run.status, "complete": run.complete,
            "board_id": run.get("board_id"), "power_mode": _power_mode(run),
            "method": run.get("method"), "model": run.get("model"), "dataset": run.get("dataset"),
            "prune_ratio": run.get("prune_ratio"), "ratio": ratio_label(run.get("prune_ratio")),
            "seed": run.get("seed"), "repeat": run.get("repeat"),
            "eb_epoch": s.get("eb_epoch"), "ticket_epoch": ticket_epoch(run),
            "eb_epochs": _flat(s.get("eb_epochs")) if s.get("eb_epochs") else None,
        }
        for key in ("test_acc", "best_test_acc", "dense_test_acc", "params_dense", "params_pruned",
                    "forward_flops_dense", "forward_flops_pruned", "train_flops_search", "train_flops_prune",
                    "train_flops_retrain", "train_flops_total", "runtime_s"):
            row[key] = _num(s.get(key))
        row["train_pflops_total"] = row["train_flops_total"] / 1e15
        for phase, secs in sorted((s.get("phase_seconds") or {}).items()):
            row["seconds_" + phase] = _num(secs)
        row["energy_method"] = e.get("method") if e else "none"
        row["energy_meter"] = e.get("meter") if e else None
        row["energy_rail"] = e.get("rail") if e else None
        row["energy_label"] = energy_label(run)
        for phase in ENERGY_PHASES:
            row["energy_kj_" + phase] = _num((e.get("kj") or {}).get(phase))
            row["energy_net_kj_" + phase] = _num((e.get("net_kj") or {}).get(phase))
        row["idle_power_w"] = _num(e.get("idle_power_w"))
        row["j_per_train_gflop"] = _num(e.get("j_per_train_gflop"))
        row["flags"] = _flat(s.get("flags") or [])
        row["missing_files"] = ";".join(run.missing)
        row["notes"] = ";".join(run.notes)
        row["config_hash"] = run.config.get("config_hash")
        for key, value in sorted(run.settings.items()):
            row["setting_" + key] = _flat(value)
        row["path"] = run.path
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=RUNS_KEY_COLUMNS)


def _method_rank(method) -> Tuple[int, str]:
    m = str(method)
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


def _ratio_rank(label: str) -> float:
    return -1.0 if label == NO_RATIO else float(label)


def _modes(series: pd.Series) -> List[str]:
    return sorted({"unknown" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v)
                   for v in series})


def cell_stats(runs_df: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """Long form of Table 2: one row per (model, dataset, method, ratio) over the complete runs.

    acc_pct = final test accuracy in percent, energy_kj = train_total kJ, pflops = train_flops_total / 1e15;
    each with mean and ci95 (t-interval half-width; empty for n = 1). Raises ReportError when the runs of
    one cell ran at different power modes, unless allow_mixed_power_modes.
    """
    cols = ["model", "dataset", "method", "ratio", "n", "acc_pct_mean", "acc_pct_ci95", "energy_kj_mean",
            "energy_kj_ci95", "pflops_mean", "pflops_ci95", "power_mode", "energy_label", "boards"]
    if runs_df.empty:
        return pd.DataFrame(columns=cols)
    done = runs_df[runs_df["complete"].astype(bool)]
    rows = []
    for (model, dataset, method, ratio), g in done.groupby(["model", "dataset", "method", "ratio"], sort=False):
        modes = _modes(g["power_mode"])
        if len(modes) > 1 and not allow_mixed_power_modes:
            raise ReportError("{}/{}/{} p={} averages runs at different power modes ({}); "
                              "pass --allow-mixed-power-modes to average them anyway"
                              .format(model, dataset, method, ratio, ", ".join(modes)))
        acc = mean_ci95(g["test_acc"] * 100.0)
        energy = mean_ci95(g["energy_kj_train_total"])
        pflops = mean_ci95(g["train_pflops_total"])
        rows.append([model, dataset, method, ratio, len(g), acc[0], acc[1], energy[0], energy[1],
                     pflops[0], pflops[1], "+".join(modes), "+".join(sorted(set(g["energy_label"]))),
                     "+".join(sorted({str(b) for b in g["board_id"] if b is not None and b == b}))])
    out = pd.DataFrame(rows, columns=cols)
    out["_m"] = out["method"].map(_method_rank)
    out["_r"] = out["ratio"].map(_ratio_rank)
    return out.sort_values(["model", "dataset", "_m", "_r"]).drop(columns=["_m", "_r"]).reset_index(drop=True)


def improvements(cells: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """EB Train's gain over the strongest baseline, per EB cell.

    For every eb* cell (model, dataset, method, ratio): the baselines are the cells of the other
    methods, neither eb* nor dense, at the same model, dataset and ratio; the strongest baseline is the
    one with the highest mean retrain accuracy. energy_x = baseline mean energy / eb mean energy and
    flops_x = baseline mean training FLOPs / eb mean training FLOPs (> 1 means EB Train is cheaper).
    Comparing cells at different power modes raises ReportError unless allow_mixed_power_modes.
    """
    rows = []
    for _, eb in cells[cells["method"].map(is_eb_method)].iterrows():
        peers = cells[(cells["model"] == eb["model"]) & (cells["dataset"] == eb["dataset"])
                      & (cells["ratio"] == eb["ratio"]) & cells["method"].map(is_baseline_method)]
        peers = peers[peers["acc_pct_mean"].notna()]
        if peers.empty:
            continue
        best = peers.loc[peers["acc_pct_mean"].idxmax()]
        if best["power_mode"] != eb["power_mode"] and not allow_mixed_power_modes:
            raise ReportError("{}/{} p={}: {} ran at power mode {} but baseline {} at {}; "
                              "pass --allow-mixed-power-modes to compare them anyway"
                              .format(eb["model"], eb["dataset"], eb["ratio"], eb["method"], eb["power_mode"],
                                      best["method"], best["power_mode"]))
        rows.append({"model": eb["model"], "dataset": eb["dataset"], "method": eb["method"], "ratio": eb["ratio"],
                     "baseline": best["method"],
                     "energy_x": best["energy_kj_mean"] / eb["energy_kj_mean"],
                     "flops_x": best["pflops_mean"] / eb["pflops_mean"]})
    return pd.DataFrame(rows, columns=["model", "dataset", "method", "ratio", "baseline", "energy_x", "flops_x"])


TABLE_METRICS = ("acc_pct_mean", "acc_pct_ci95", "energy_kj_mean", "energy_kj_ci95", "pflops_mean",
                 "pflops_ci95", "n", "baseline", "energy_x", "flops_x")


def table_frame(runs_df: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """The paper's Table 2: one row per (model, dataset, method), complete runs only.

    Columns are '<metric>[p=<ratio>]' for metric in TABLE_METRICS, grouped by metric then ratio;
    runs without a prune ratio (dense) fill the 'p=-' columns. Metrics: retrain accuracy in percent,
    energy in kJ (train_total, labelled by the row's energy_label), training PFLOPs, each with mean and
    ci95 = 95% t-interval half-width over repeats (empty for n = 1), n = runs averaged (0: none); and, on eb*
    rows, baseline / energy_x / flops_x as defined in `improvements`.
    """
    cells = cell_stats(runs_df, allow_mixed_power_modes)
    keys = ["model", "dataset", "method"]
    if cells.empty:
        return pd.DataFrame(columns=keys + ["power_mode", "energy_label", "boards"])
    gains = improvements(cells, allow_mixed_power_modes)
    cells = cells.merge(gains, on=keys + ["ratio"], how="left")
    ratios = sorted(cells["ratio"].unique(), key=_ratio_rank)
    rows = []
    for key, g in cells.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row["power_mode"] = "+".join(sorted(set("+".join(g["power_mode"]).split("+"))))
        row["energy_label"] = "+".join(sorted(set("+".join(g["energy_label"]).split("+"))))
        row["boards"] = "+".join(sorted(set(b for b in "+".join(g["boards"]).split("+") if b)))
        by_ratio = {r: c for r, c in g.groupby("ratio")}
        for metric in TABLE_METRICS:
            for r in ratios:
                value = by_ratio[r][metric].iloc[0] if r in by_ratio else (0 if metric == "n" else None)
                row["{}[p={}]".format(metric, r)] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    # Improvement columns exist only where some eb* cell had a baseline beside it (never for p=-).
    empty = [c for c in table.columns if c.split("[")[0] in ("baseline", "energy_x", "flops_x")
             and table[c].isna().all()]
    return table.drop(columns=empty)


def _phase_seconds(phases: pd.DataFrame) -> Dict[str, float]:
    """Seconds per phase: whole-phase rows (empty epoch) when present, else the sum of its per-epoch rows."""
    out = {}
    phases = phases.assign(_s=pd.to_numeric(phases["t_end_mono"], errors="coerce")
                           - pd.to_numeric(phases["t_start_mono"], errors="coerce"))
    for phase, g in phases.groupby("phase", sort=False):
        whole = g[g["epoch"].isna()] if "epoch" in g else g
        out[str(phase)] = float((whole if not whole.empty else g)["_s"].sum())
    return out


def phases_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Per run, phase, meter and rail: seconds (phases.csv) and gross/net kJ and sampling quality (energy.csv)."""
    cols = ["run_id", "board_id", "power_mode", "phase", "seconds", "meter", "rail", "method", "energy_kj",
            "net_energy_kj", "avg_power_w", "idle_power_w", "duration_s", "n_samples", "rate_hz", "max_gap_s",
            "covered_frac", "uncertainty_pct"]
    frames = []
    for run in runs:
        phases = _read_csv(run, "phases.csv")
        seconds = _phase_seconds(phases) if phases is not None and {"phase", "t_start_mono"} <= set(phases) else {}
        energy = _read_csv(run, "energy.csv")
        if energy is not None and "phase" in energy:
            f = energy.copy()
            f["energy_kj"] = pd.to_numeric(f.get("energy_j"), errors="coerce") / 1e3
            f["net_energy_kj"] = pd.to_numeric(f.get("net_energy_j"), errors="coerce") / 1e3
            extra = [p for p in seconds if p not in set(f["phase"])]
            f = pd.concat([f, pd.DataFrame({"phase": extra})], ignore_index=True) if extra else f
        else:
            f = pd.DataFrame({"phase": list(seconds)})
        if f.empty:
            continue
        f["seconds"] = [seconds.get(p, d) for p, d in zip(f["phase"], f.get("duration_s", [np.nan] * len(f)))]
        f["run_id"], f["board_id"], f["power_mode"] = run.run_id, run.get("board_id"), _power_mode(run)
        frames.append(f.reindex(columns=cols))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------- the whole report

@dataclass
class ReportResult:
    """What build_report read and wrote."""
    runs: List[Run]
    runs_df: pd.DataFrame
    table_df: pd.DataFrame
    phases_df: pd.DataFrame
    files: List[str]
    warnings: List[str]
    notes: List[str]


def build_report(paths: Sequence[str], out_dir: str, allow_mixed_power_modes: bool = False,
                 now: Optional[float] = None) -> ReportResult:
    """Read every run directory under `paths` and write runs.csv, table.csv, phases.csv and plots/ to out_dir.

    Raises ReportError for a path that is not a directory, or (unless allow_mixed_power_modes) when a
    table cell would average, or an improvement would compare, runs at different power modes; nothing is
    written then. Foreign files and incomplete runs become warnings, never errors.
    """
    run_dirs, foreign = find_run_dirs(paths, skip=[out_dir])
    runs, duplicates, by_id = [], [], {}  # type: List[Run], List[str], Dict[str, Run]
    for run in (load_run(d, now=now) for d in run_dirs):
        if run.run_id in by_id:  # the same run collected twice must not count twice in a mean
            duplicates.append("run {} appears again in {}: counted once, from {}"
                              .format(run.run_id, run.path, by_id[run.run_id].path))
            continue
        by_id[run.run_id] = run
        runs.append(run)
    runs_df = runs_frame(runs)
    table_df = table_frame(runs_df, allow_mixed_power_modes)
    phases_df = phases_frame(runs)
    notes = []
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for name, frame in (("runs.csv", runs_df), ("table.csv", table_df), ("phases.csv", phases_df)):
        path = os.path.join(out_dir, name)
        frame.to_csv(path, index=False, float_format="%.10g")
        files.append(path)
    from ebedge import report_plots as draw  # matplotlib loads only when a report is drawn

    plots = os.path.join(out_dir, "plots")
    for run in runs:
        files += draw.plot_mask_distance(run, plots)
        files += draw.plot_power_trace(run, plots)
    ticket = draw.plot_ticket_epoch(runs_df, plots)
    if not ticket:
        notes.append("ticket-epoch plots (Figs. 1, 5) skipped: no method/ratio drew tickets at more than one epoch")
    files += ticket
    files += draw.plot_method_bars(runs_df, plots, allow_mixed_power_modes)
    warnings = ["not a run directory, ignored: {}".format(f) for f in foreign] + duplicates
    for run in runs:
        if not run.complete:
            warnings.append("run {} is {}: listed in runs.csv, left out of the table".format(run.run_id, run.status))
        warnings += ["run {}: {}".format(run.run_id, n) for n in run.notes]
    return ReportResult(runs=runs, runs_df=runs_df, table_df=table_df, phases_df=phases_df, files=files,
                        warnings=warnings, notes=notes)
