"""Energy, training time and accuracy across power modes, per model: the table and the Pareto plot.

A suite that sweeps `power_modes` (docs/power-modes.md) runs every method at every mode. For each
(model, dataset) this lists, per board state (the recorded power mode, and clock caps where set) and
method, the mean and 95% interval of training energy, training seconds and accuracy, and marks the
points no other point of that model beats on all three (the Pareto front: less energy, less time,
no less accuracy). Energy keeps its measured/modelled label; points with different labels are
never on one front.
"""
import json
from typing import List

import pandas as pd

from ebedge.config.settings import ONLY_WHEN_SET as BOARD_SETTINGS  # the board-state settings
from ebedge.report.answer import TRAIN_PHASES
from ebedge.report.runs import _method_rank, mean_ci95, settings_key

COLUMNS = ["model", "dataset", "state", "method", "ratio", "variant", "n", "energy_kj_mean", "energy_kj_ci95",
           "train_s_mean", "train_s_ci95", "acc_pct_mean", "acc_pct_ci95", "energy_label", "pareto", "run_ids"]


def _train_seconds(runs_df: pd.DataFrame) -> pd.Series:
    parts = [runs_df[c] for c in ("seconds_" + p for p in TRAIN_PHASES) if c in runs_df]
    if not parts:
        return runs_df["runtime_s"]
    total = pd.concat(parts, axis=1).sum(axis=1, min_count=1)
    return total.fillna(runs_df["runtime_s"])


def _state(row) -> str:
    """The board state a run ran at: its recorded power mode, and the caps it asked for."""
    text = str(row["power_mode"]) if isinstance(row["power_mode"], str) else "mode unknown"
    gpu, cpu = row.get("setting_gpu_max_freq_hz"), row.get("setting_cpu_max_freq_khz")
    if isinstance(gpu, (int, float)) and gpu == gpu:
        text += ", GPU <= {:g} MHz".format(gpu / 1e6)
    if isinstance(cpu, (int, float)) and cpu == cpu:
        text += ", CPU <= {:g} MHz".format(cpu / 1e3)
    if row.get("setting_pin_clocks") is True:
        text += ", clocks pinned"
    return text


def _variant(result_settings: str) -> str:
    """A run's result settings less the board state and method: equal for one experiment across modes."""
    settings = json.loads(result_settings)
    return settings_key({k: v for k, v in settings.items() if k not in BOARD_SETTINGS + ("method",)})


def tradeoff_frame(runs_df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, dataset, board state, method, ratio, variant) over complete runs; see the module."""
    if runs_df.empty:
        return pd.DataFrame(columns=COLUMNS)
    done = runs_df[runs_df["complete"].astype(bool)].copy()
    if done.empty:
        return pd.DataFrame(columns=COLUMNS)
    done["_train_s"] = _train_seconds(done)
    done["_state"] = [_state(r) for r in done.to_dict("records")]
    done["_variant"] = done["result_settings"].map(_variant)
    rows = []
    keys = ["model", "dataset", "_state", "method", "ratio", "_variant"]
    for key, g in done.groupby(keys, sort=False):
        energy, seconds, acc = (mean_ci95(g["energy_kj_train_total"]), mean_ci95(g["_train_s"]),
                                mean_ci95(g["test_acc"] * 100.0))
        rows.append(list(key) + [len(g), energy[0], energy[1], seconds[0], seconds[1], acc[0], acc[1],
                                 "+".join(sorted(set(g["energy_label"]))), False, ";".join(g["run_id"].astype(str))])
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["pareto"] = _pareto(out)
    out["_m"] = out["method"].map(_method_rank)
    return out.sort_values(["model", "dataset", "state", "_m", "ratio"]).drop(columns=["_m"]).reset_index(drop=True)


def _pareto(rows: pd.DataFrame) -> List[bool]:
    """Whether each row is on its (model, dataset, variant, energy label) front."""
    marks = []
    for _, a in rows.iterrows():
        peers = rows[(rows["model"] == a["model"]) & (rows["dataset"] == a["dataset"])
                     & (rows["variant"] == a["variant"]) & (rows["energy_label"] == a["energy_label"])]
        point = (a["energy_kj_mean"], a["train_s_mean"], -a["acc_pct_mean"])
        if any(v != v for v in point):
            marks.append(False)
            continue
        beaten = False
        for _, b in peers.iterrows():
            other = (b["energy_kj_mean"], b["train_s_mean"], -b["acc_pct_mean"])
            if all(o <= p for o, p in zip(other, point)) and any(o < p for o, p in zip(other, point)):
                beaten = True
                break
        marks.append(not beaten)
    return marks


def _front_2d(xs, accs) -> List[tuple]:
    """The points no other has beaten with less x and no less accuracy, by increasing x."""
    out = []
    for x, acc in sorted(zip(xs, accs), key=lambda p: (p[0], -p[1])):
        if x == x and acc == acc and (not out or acc > out[-1][1]):
            out.append((x, acc))
    return out


def plot_tradeoff(trade: pd.DataFrame, out_dir: str) -> List[str]:
    """Per (model, dataset) with more than one board state: accuracy against energy and against training
    time, a marker per method, each point named by its state, each panel's own Pareto front as a step
    line (tradeoff.csv's `pareto` is the front over all three)."""
    from ebedge.report.plots import _figure, _save  # matplotlib only when drawn
    paths = []
    for (model, dataset), g in trade.groupby(["model", "dataset"]):
        if g["state"].nunique() < 2:
            continue
        fig = _figure(11.0, 4.6)
        label = "+".join(sorted(set(g["energy_label"])))
        for i, (metric, axis) in enumerate((("energy_kj", "training energy (kJ, {})".format(label)),
                                            ("train_s", "training time (s)"))):
            ax = fig.add_subplot(1, 2, i + 1)
            for marker, (method, m) in zip("os^vD<>pP*Xh", g.groupby("method", sort=False)):
                ax.errorbar(m[metric + "_mean"], m["acc_pct_mean"], xerr=m[metric + "_ci95"].fillna(0),
                            yerr=m["acc_pct_ci95"].fillna(0), fmt=marker, capsize=2, label=method)
                for _, row in m.iterrows():
                    ax.annotate(row["state"].split(",")[0], (row[metric + "_mean"], row["acc_pct_mean"]),
                                fontsize=6, xytext=(3, 3), textcoords="offset points")
            front = _front_2d(g[metric + "_mean"], g["acc_pct_mean"])
            ax.step([x for x, _ in front], [y for _, y in front], "k--", where="post", linewidth=0.8,
                    label="Pareto front (this panel)")
            ax.set_xlabel(axis)
            ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
        fig.suptitle("{} / {}: energy, time and accuracy across power modes".format(model, dataset))
        paths += _save(fig, out_dir, "tradeoff_{}_{}".format(model, dataset))
    return paths
