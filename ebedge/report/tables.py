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
        for key in ("test_acc", "best_test_acc", "test_acc_top5", "best_test_acc_top5", "dense_test_acc", "params_dense", "params_pruned",
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
                "acc_pct_ci95", "acc5_pct_mean", "acc5_pct_ci95", "energy_kj_mean", "energy_kj_ci95", "pflops_mean",
                "pflops_ci95", "power_mode", "energy_method", "energy_label", "boards", "n_flagged", "flags", "run_ids",
                "accuracy"]
ACCURACY = {"final": ("test_acc", "test_acc_top5"), "best": ("best_test_acc", "best_test_acc_top5")}
ACCURACY_TEXT = {"final": "final (the last epoch's test accuracy)",
                 "best": "best (the best epoch of the retrain, as the official code keeps; of dense training for dense)"}
IMPROV = "EB Train Improv."  # the table row of the paper's improvements (see `improvements`)


def accuracy_columns(accuracy: str):
    """runs.csv's (top-1, top-5) columns for `accuracy` ('final' or 'best')."""
    if accuracy not in ACCURACY:
        raise ReportError("accuracy must be one of {}, got {!r}".format(", ".join(ACCURACY), accuracy))
    return ACCURACY[accuracy]


def cell_stats(runs_df: pd.DataFrame, allow_mixed_power_modes: bool = False,
               allow_mixed_energy_methods: bool = False, accuracy: str = "final") -> pd.DataFrame:
    """Long form of Table 2: one row per (model, dataset, method, result settings, ratio) over the complete runs.

    Runs are averaged only when their result settings (settings_key) agree: runs differing in anything but
    seed, repeat, output place or meters are separate rows, and `settings` names what differs between
    rows. acc_pct / acc5_pct = top-1 / top-5 test accuracy in percent, the final epoch's or, with
    accuracy="best", the best epoch's (column `accuracy` says which); energy_kj = train_total kJ, pflops =
    train_flops_total / 1e15; each with mean and ci95 (t-interval half-width; empty for n = 1). Raises
    ReportError when the runs of one cell ran at different power modes (unless allow_mixed_power_modes) or
    mix measured, modelled and unmeasured energy (unless allow_mixed_energy_methods).
    """
    top1, top5 = accuracy_columns(accuracy)
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
        acc = mean_ci95(g[top1] * 100.0)
        acc5 = mean_ci95(g[top5] * 100.0) if top5 in g else (float("nan"), float("nan"))
        energy = mean_ci95(g["energy_kj_train_total"])
        pflops = mean_ci95(g["train_pflops_total"])
        flags = sorted({f for f in g["flags"] if isinstance(f, str) and f})
        rows.append([model, dataset, method, key, differ[key],
                     "{} ({})".format(method, differ[key]) if differ[key] else method, ratio, len(g),
                     acc[0], acc[1], acc5[0], acc5[1], energy[0], energy[1], pflops[0], pflops[1], "+".join(modes),
                     "+".join(methods), "+".join(sorted(set(g["energy_label"]))),
                     "+".join(sorted({str(b) for b in g["board_id"] if b is not None and b == b})),
                     sum(1 for f in g["flags"] if isinstance(f, str) and f), " | ".join(flags),
                     ";".join(g["run_id"].astype(str)), accuracy])
    out = pd.DataFrame(rows, columns=CELL_COLUMNS)
    out = _gain_over_dense(out)
    out["_m"] = out["method"].map(_method_rank)
    out["_r"] = out["ratio"].map(_ratio_rank)
    return (out.sort_values(["model", "dataset", "_m", "settings", "_r"]).drop(columns=["_m", "_r"])
            .reset_index(drop=True))


def _gain_over_dense(cells: pd.DataFrame) -> pd.DataFrame:
    """acc_gain_pct / acc5_gain_pct: a pruned cell's mean accuracy minus the unpruned model's, as Table 3's
    "Acc. Improv." columns. The unpruned model is the dense cell of the same model and dataset; where
    several dense cells differ in settings, the one with the pruned cell's settings."""
    dense = cells[cells["method"] == "dense"]
    for column, source in (("acc_gain_pct", "acc_pct_mean"), ("acc5_gain_pct", "acc5_pct_mean")):
        values = []
        for _, c in cells.iterrows():
            mine = dense[(dense["model"] == c["model"]) & (dense["dataset"] == c["dataset"])]
            if len(mine) > 1:
                mine = mine[mine["settings"] == c["settings"]]
            values.append(c[source] - mine[source].iloc[0] if c["method"] != "dense" and len(mine) == 1
                          else float("nan"))
        cells[column] = values
    return cells


def improvements(cells: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """The paper's "EB Train Improv." row (Table 2), per model, dataset, result settings and ratio.

    Competitors are the cells of the other methods (neither eb* nor dense) at the same model, dataset
    and ratio whose settings differ from EB Train's in nothing the table's rows differ in. As the paper:
    improv_acc_pct = EB Train (FF, method `eb`) mean accuracy minus the most accurate competitor's;
    energy_x and flops_x = the cheapest competitor's mean (energy and FLOPs each on its own) divided by
    EB Train (LL)'s (`eb-ll`; where no eb-ll ran, `eb`'s, and `cost_of` says so). > 1 means EB Train
    is cheaper. Comparing cells at different power modes raises ReportError unless allow_mixed_power_modes.
    """
    rows = []
    peers_of = cells[cells["method"].map(is_baseline_method) & cells["acc_pct_mean"].notna()]
    for (model, dataset, settings, ratio), g in cells[cells["method"].map(is_eb_method)].groupby(
            ["model", "dataset", "settings", "ratio"], sort=False):
        peers = peers_of[(peers_of["model"] == model) & (peers_of["dataset"] == dataset)
                         & (peers_of["ratio"] == ratio) & (peers_of["settings"] == settings)]
        by_method = {m: c.iloc[0] for m, c in g.groupby("method")}
        if peers.empty or ("eb" not in by_method and "eb-ll" not in by_method):
            continue
        cost_of = by_method.get("eb-ll", by_method.get("eb"))
        for eb in (by_method.get("eb"), cost_of):
            bad = [p for p in peers.itertuples() if eb is not None and p.power_mode != eb["power_mode"]]
            if bad and not allow_mixed_power_modes:
                raise ReportError("{}/{} p={}: {} ran at power mode {} but baseline {} at {}; "
                                  "pass --allow-mixed-power-modes to compare them anyway"
                                  .format(model, dataset, ratio, eb["method"], eb["power_mode"], bad[0].method,
                                          bad[0].power_mode))
        best = peers.loc[peers["acc_pct_mean"].idxmax()]
        cheap_e = peers.loc[peers["energy_kj_mean"].idxmin()] if peers["energy_kj_mean"].notna().any() else None
        cheap_f = peers.loc[peers["pflops_mean"].idxmin()]
        rows.append({"model": model, "dataset": dataset, "settings": settings, "ratio": ratio,
                     "improv_acc_pct": (by_method["eb"]["acc_pct_mean"] - best["acc_pct_mean"]
                                      if "eb" in by_method else float("nan")),
                     "acc_vs": best["method"],
                     "energy_x": (cheap_e["energy_kj_mean"] / cost_of["energy_kj_mean"]
                                  if cheap_e is not None else float("nan")),
                     "energy_vs": cheap_e["method"] if cheap_e is not None else None,
                     "flops_x": cheap_f["pflops_mean"] / cost_of["pflops_mean"],
                     "flops_vs": cheap_f["method"], "cost_of": cost_of["method"]})
    return pd.DataFrame(rows, columns=IMPROV_COLUMNS)


IMPROV_COLUMNS = ["model", "dataset", "settings", "ratio", "improv_acc_pct", "acc_vs", "energy_x",
                  "energy_vs", "flops_x", "flops_vs", "cost_of"]
IMPROV_METRICS = IMPROV_COLUMNS[4:]


TABLE_METRICS = ("acc_pct_mean", "acc_pct_ci95", "acc5_pct_mean", "acc5_pct_ci95", "acc_gain_pct",
                 "acc5_gain_pct", "energy_kj_mean", "energy_kj_ci95", "pflops_mean", "pflops_ci95", "n", "n_flagged",
                 "flags")
TABLE_KEYS = ["model", "dataset", "method", "settings", "settings_key"]


def table_frame(runs_df: pd.DataFrame, allow_mixed_power_modes: bool = False,
                allow_mixed_energy_methods: bool = False, accuracy: str = "final") -> pd.DataFrame:
    """The paper's Table 2: one row per (model, dataset, method, result settings), complete runs only.

    Columns are '<metric>[p=<ratio>]' for metric in TABLE_METRICS, grouped by metric then ratio;
    runs without a prune ratio (dense) fill the 'p=-' columns. Metrics: top-1 and top-5 accuracy in
    percent (final or best: column `accuracy`) and their gain over the unpruned model (Table 3), energy
    in kJ (train_total, labelled by the row's energy_label), training PFLOPs, each with mean and ci95 =
    95% t-interval half-width over repeats (empty for n = 1), n = runs averaged (0: none). After each
    model and dataset's rows, one row per settings named IMPROV carries `improvements` (IMPROV_METRICS).
    """
    return pivot_cells(cell_stats(runs_df, allow_mixed_power_modes, allow_mixed_energy_methods, accuracy),
                       allow_mixed_power_modes)


def pivot_cells(cells: pd.DataFrame, allow_mixed_power_modes: bool = False) -> pd.DataFrame:
    """cell_stats' long form in Table 2's shape (see table_frame)."""
    if cells.empty:
        return pd.DataFrame(columns=TABLE_KEYS + ["accuracy", "power_mode", "energy_label", "boards"])
    gains = improvements(cells, allow_mixed_power_modes)
    ratios = sorted(cells["ratio"].unique(), key=_ratio_rank)
    rows = []
    for (model, dataset), block in cells.groupby(["model", "dataset"], sort=False):
        for key, g in block.groupby(TABLE_KEYS, sort=False):
            row = dict(zip(TABLE_KEYS, key))
            row["accuracy"] = g["accuracy"].iloc[0]
            row["power_mode"] = "+".join(sorted(set("+".join(g["power_mode"]).split("+"))))
            row["energy_label"] = "+".join(sorted(set("+".join(g["energy_label"]).split("+"))))
            row["boards"] = "+".join(sorted(set(b for b in "+".join(g["boards"]).split("+") if b)))
            by_ratio = {r: c for r, c in g.groupby("ratio")}
            for metric in TABLE_METRICS:
                for r in ratios:
                    value = by_ratio[r][metric].iloc[0] if r in by_ratio else (0 if metric == "n" else None)
                    row["{}[p={}]".format(metric, r)] = value
            rows.append(row)
        mine = gains[(gains["model"] == model) & (gains["dataset"] == dataset)]
        for settings, g in mine.groupby("settings", sort=False):
            row = {"model": model, "dataset": dataset, "method": IMPROV, "settings": settings,
                   "settings_key": "", "accuracy": block["accuracy"].iloc[0],
                   "power_mode": "+".join(sorted(set("+".join(block["power_mode"]).split("+")))),
                   "energy_label": "+".join(sorted(set(block["energy_label"])))}
            by_ratio = {r: c for r, c in g.groupby("ratio")}
            for metric in IMPROV_METRICS:
                for r in ratios:
                    row["{}[p={}]".format(metric, r)] = by_ratio[r][metric].iloc[0] if r in by_ratio else None
            rows.append(row)
    return pd.DataFrame(rows)


def _search_accuracy(run: Run):
    """The test accuracy after the search's last epoch (where the ticket was drawn), or None."""
    epochs = _read_csv(run, "epochs.csv", usecols=lambda c: c in ("phase", "test_acc"))
    if epochs is None or "phase" not in epochs or "test_acc" not in epochs:
        return None
    search = pd.to_numeric(epochs[epochs["phase"] == "search"]["test_acc"], errors="coerce").dropna()
    return float(search.iloc[-1]) if not search.empty else None


DRAW_COLUMNS = ["model", "dataset", "method", "ratio", "draw", "schedule", "test_acc", "best_test_acc",
                "search_acc", "pflops"]


def draw_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per complete run of a fixed-draw-epoch experiment: EB variants with `draw_at`
    (draw = the draw epoch), network slimming (draw = its whole schedule: the paper's "final" ticket)
    and dense runs (the dashed line). `schedule` tells apart runs of Tables 1 and 4 (lr schedule,
    initial lr); `search_acc` is the search's test accuracy at the draw (Fig. 1's star marks the best)."""
    rows = []
    for run in runs:
        s = run.summary or {}
        if not run.complete:
            continue
        method = s.get("method")
        draw = s.get("draw_at")
        if method == "ns":
            draw = run.settings.get("epochs")
        if method != "dense" and draw is None:
            continue
        rows.append({"model": s.get("model"), "dataset": s.get("dataset"), "method": method,
                     "ratio": ratio_label(s.get("prune_ratio")), "draw": draw,
                     "schedule": run.settings.get("lr_schedule") or "lr {}".format(run.settings.get("lr")),
                     "test_acc": s.get("test_acc"), "best_test_acc": s.get("best_test_acc"),
                     "search_acc": _search_accuracy(run) if method != "dense" else None,
                     "pflops": (s.get("train_flops_total") or 0) / 1e15})
    return pd.DataFrame(rows, columns=DRAW_COLUMNS)


def draw_table(frame: pd.DataFrame, accuracy: str = "final") -> pd.DataFrame:
    """Tables 1 and 4 as the paper lays them out: per model, dataset, EB method and ratio, one row per
    draw epoch and a last row "final" (network slimming's ticket, drawn after the whole schedule), one
    column per schedule (Table 1: lr schedules; Table 4: initial learning rates) holding the mean
    retrain accuracy in percent (`accuracy`: final or best epoch, said in the column `accuracy`), and
    n<schedule> the runs averaged. Empty when no run drew its ticket at a fixed epoch."""
    top1 = accuracy_columns(accuracy)[0]
    drawn = frame[frame["method"].map(is_eb_method).astype(bool)]
    schedules = list(dict.fromkeys(frame.loc[frame["method"] != "dense", "schedule"]))
    rows = []
    for (model, dataset, method, ratio), g in drawn.groupby(["model", "dataset", "method", "ratio"], sort=False):
        final = frame[(frame["method"] == "ns") & (frame["model"] == model) & (frame["dataset"] == dataset)
                      & (frame["ratio"] == ratio)]
        for label, part in [(str(int(d)), p) for d, p in sorted(g.groupby("draw"))] + [("final", final)]:
            if part.empty:
                continue
            row = {"model": model, "dataset": dataset, "method": method, "ratio": ratio, "drawn_at": label,
                   "accuracy": accuracy}
            for schedule in schedules:
                cell = pd.to_numeric(part.loc[part["schedule"] == schedule, top1], errors="coerce").dropna()
                row["acc_pct[{}]".format(schedule)] = cell.mean() * 100 if len(cell) else float("nan")
                row["n[{}]".format(schedule)] = len(cell)
            rows.append(row)
    return pd.DataFrame(rows)


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


