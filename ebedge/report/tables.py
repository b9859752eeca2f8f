"""Data frames of a report: runs.csv, table.csv (Table 2 shape), phases.csv."""
import json
import math
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

from ebedge.report.runs import (ENERGY_PHASES, ReportError, Run, _energy, _flat, _method_rank, _num, _power_mode, _ratio_rank, _read_csv, energy_label, is_baseline_method, is_eb_method, mean_ci95, ratio_label, result_settings, settings_key, ticket_epoch)


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
        row["settings_key"] = settings_key(run.settings)
        row["result_settings"] = json.dumps(result_settings(run.settings), sort_keys=True, default=str)
        for key, value in sorted(run.settings.items()):
            row["setting_" + key] = _flat(value)
        row["path"] = run.path
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=RUNS_KEY_COLUMNS)




def _modes(series: pd.Series) -> List[str]:
    return sorted({"unknown" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v)
                   for v in series})


def _differing_settings(done: pd.DataFrame) -> Dict[str, str]:
    """settings_key -> 'k=v, ...' for the result settings that differ between the table's rows
    (model, dataset and method are columns of their own)."""
    groups = {k: json.loads(v) for k, v in zip(done["settings_key"], done["result_settings"])}
    keys = sorted({k for s in groups.values() for k in s} - {"model", "dataset", "method"})
    differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in groups.values()}) > 1]
    return {g: ", ".join("{}={}".format(k, _flat(s.get(k))) for k in differ) for g, s in groups.items()}


def _check_one(values: List[str], what: str, cell: str, flag: str, allowed: bool):
    if len(values) > 1 and not allowed:
        raise ReportError("{} averages runs with different {} ({}); pass {} to average them anyway"
                          .format(cell, what, ", ".join(values), flag))


CELL_COLUMNS = ["model", "dataset", "method", "settings_key", "settings", "label", "ratio", "n", "acc_pct_mean",
                "acc_pct_ci95", "energy_kj_mean", "energy_kj_ci95", "pflops_mean", "pflops_ci95", "power_mode",
                "energy_method", "energy_label", "boards", "n_flagged", "flags", "run_ids"]


def cell_stats(runs_df: pd.DataFrame, allow_mixed_power_modes: bool = False,
               allow_mixed_energy_methods: bool = False) -> pd.DataFrame:
    """Long form of Table 2: one row per (model, dataset, method, result settings, ratio) over the complete runs.

    Runs are averaged only when their result settings (settings_key) agree: runs differing in anything but
    seed, repeat, output place or meters are separate rows, and `settings` names what differs between
    rows. acc_pct = final test accuracy in percent, energy_kj = train_total kJ, pflops = train_flops_total
    / 1e15; each with mean and ci95 (t-interval half-width; empty for n = 1). Raises ReportError when the
    runs of one cell ran at different power modes (unless allow_mixed_power_modes) or mix measured,
    modelled and unmeasured energy (unless allow_mixed_energy_methods).
    """
    if runs_df.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    done = runs_df[runs_df["complete"].astype(bool)]
    if done.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    differ = _differing_settings(done)
    rows = []
    for (model, dataset, method, key, ratio), g in done.groupby(
            ["model", "dataset", "method", "settings_key", "ratio"], sort=False):
        cell = "{}/{}/{} p={}{}".format(model, dataset, method, ratio,
                                       " ({})".format(differ[key]) if differ[key] else "")
        modes = _modes(g["power_mode"])
        _check_one(modes, "power modes", cell, "--allow-mixed-power-modes", allow_mixed_power_modes)
        methods = sorted(set(g["energy_method"].astype(str)))
        _check_one(methods, "energy methods", cell, "--allow-mixed-energy-methods", allow_mixed_energy_methods)
        acc = mean_ci95(g["test_acc"] * 100.0)
        energy = mean_ci95(g["energy_kj_train_total"])
        pflops = mean_ci95(g["train_pflops_total"])
        flags = sorted({f for f in g["flags"] if isinstance(f, str) and f})
        rows.append([model, dataset, method, key, differ[key],
                     "{} ({})".format(method, differ[key]) if differ[key] else method, ratio, len(g),
                     acc[0], acc[1], energy[0], energy[1], pflops[0], pflops[1], "+".join(modes), "+".join(methods),
                     "+".join(sorted(set(g["energy_label"]))),
                     "+".join(sorted({str(b) for b in g["board_id"] if b is not None and b == b})),
                     sum(1 for f in g["flags"] if isinstance(f, str) and f), " | ".join(flags),
                     ";".join(g["run_id"].astype(str))])
    out = pd.DataFrame(rows, columns=CELL_COLUMNS)
    out["_m"] = out["method"].map(_method_rank)
    out["_r"] = out["ratio"].map(_ratio_rank)
    return (out.sort_values(["model", "dataset", "_m", "settings", "_r"]).drop(columns=["_m", "_r"])
            .reset_index(drop=True))


def improvements(cells: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """EB Train's gain over the strongest baseline, per EB cell.

    For every eb* cell (model, dataset, method, ratio): the baselines are the cells of the other
    methods, neither eb* nor dense, at the same model, dataset and ratio, whose settings differ from the eb*
    cell's in nothing the table's rows differ in (cell_stats' `settings`); the strongest baseline is the
    one with the highest mean retrain accuracy. energy_x = baseline mean energy / eb mean energy and
    flops_x = baseline mean training FLOPs / eb mean training FLOPs (> 1 means EB Train is cheaper).
    Comparing cells at different power modes raises ReportError unless allow_mixed_power_modes.
    """
    rows = []
    for _, eb in cells[cells["method"].map(is_eb_method)].iterrows():
        peers = cells[(cells["model"] == eb["model"]) & (cells["dataset"] == eb["dataset"])
                      & (cells["ratio"] == eb["ratio"]) & (cells["settings"] == eb["settings"])
                      & cells["method"].map(is_baseline_method)]
        peers = peers[peers["acc_pct_mean"].notna()]
        if peers.empty:
            continue
        best = peers.loc[peers["acc_pct_mean"].idxmax()]
        if best["power_mode"] != eb["power_mode"] and not allow_mixed_power_modes:
            raise ReportError("{}/{} p={}: {} ran at power mode {} but baseline {} at {}; "
                              "pass --allow-mixed-power-modes to compare them anyway"
                              .format(eb["model"], eb["dataset"], eb["ratio"], eb["method"], eb["power_mode"],
                                      best["method"], best["power_mode"]))
        rows.append({"model": eb["model"], "dataset": eb["dataset"], "method": eb["method"],
                     "settings_key": eb["settings_key"], "ratio": eb["ratio"], "baseline": best["label"],
                     "energy_x": best["energy_kj_mean"] / eb["energy_kj_mean"],
                     "flops_x": best["pflops_mean"] / eb["pflops_mean"]})
    return pd.DataFrame(rows, columns=["model", "dataset", "method", "settings_key", "ratio", "baseline", "energy_x",
                                       "flops_x"])


TABLE_METRICS = ("acc_pct_mean", "acc_pct_ci95", "energy_kj_mean", "energy_kj_ci95", "pflops_mean",
                 "pflops_ci95", "n", "n_flagged", "flags", "baseline", "energy_x", "flops_x")
TABLE_KEYS = ["model", "dataset", "method", "settings", "settings_key"]


def table_frame(runs_df: pd.DataFrame, allow_mixed_power_modes: bool = False,
                allow_mixed_energy_methods: bool = False) -> pd.DataFrame:
    """The paper's Table 2: one row per (model, dataset, method, result settings), complete runs only.

    Columns are '<metric>[p=<ratio>]' for metric in TABLE_METRICS, grouped by metric then ratio;
    runs without a prune ratio (dense) fill the 'p=-' columns. Metrics: retrain accuracy in percent,
    energy in kJ (train_total, labelled by the row's energy_label), training PFLOPs, each with mean and
    ci95 = 95% t-interval half-width over repeats (empty for n = 1), n = runs averaged (0: none); and, on eb*
    rows, baseline / energy_x / flops_x as defined in `improvements`.
    """
    return pivot_cells(cell_stats(runs_df, allow_mixed_power_modes, allow_mixed_energy_methods),
                       allow_mixed_power_modes)


def pivot_cells(cells: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """cell_stats' long form in Table 2's shape (see table_frame)."""
    if cells.empty:
        return pd.DataFrame(columns=TABLE_KEYS + ["power_mode", "energy_label", "boards"])
    gains = improvements(cells, allow_mixed_power_modes)
    cells = cells.merge(gains, on=["model", "dataset", "method", "settings_key", "ratio"], how="left")
    ratios = sorted(cells["ratio"].unique(), key=_ratio_rank)
    rows = []
    for key, g in cells.groupby(TABLE_KEYS, sort=False):
        row = dict(zip(TABLE_KEYS, key))
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
    """Per run, phase, meter and rail: seconds (phases.csv) and gross/net kJ, the same re-integrated at 1 Hz, the
    calibrated kJ where a calibration profile applied, and sampling quality (energy.csv)."""
    cols = ["run_id", "board_id", "power_mode", "phase", "seconds", "meter", "rail", "method", "energy_kj",
            "net_energy_kj", "avg_power_w", "idle_power_w", "duration_s", "n_samples", "rate_hz", "sensor_update_hz",
            "max_gap_s", "covered_frac", "uncertainty_pct", "energy_1hz_kj", "calibrated_energy_kj"]
    frames = []
    for run in runs:
        phases = _read_csv(run, "phases.csv")
        seconds = _phase_seconds(phases) if phases is not None and {"phase", "t_start_mono"} <= set(phases) else {}
        energy = _read_csv(run, "energy.csv")
        if energy is not None and "phase" in energy:
            f = energy.copy()
            f["energy_kj"] = pd.to_numeric(f.get("energy_j"), errors="coerce") / 1e3
            f["net_energy_kj"] = pd.to_numeric(f.get("net_energy_j"), errors="coerce") / 1e3
            for col in ("energy_1hz_j", "calibrated_energy_j"):  # absent in older runs
                f[col[:-2] + "_kj"] = (pd.to_numeric(f[col], errors="coerce") / 1e3 if col in f
                                       else np.nan)
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


