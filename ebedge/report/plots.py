"""The report's pictures (matplotlib, Agg backend, PNG and SVG each): the pairwise mask-distance
matrix (paper Fig. 3), accuracy and FLOPs against the ticket epoch (Figs. 1 and 5), energy and
FLOPs bars per method, and a power trace with phases shaded."""
import os
import re
import zipfile
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ebedge.report.runs import Run, _ratio_rank, _read_csv, ratio_label
from ebedge.report.tables import cell_stats

def _safe(text) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text))


def _figure(w=6.4, h=4.8) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_dir: str, stem: str) -> List[str]:
    os.makedirs(out_dir, exist_ok=True)
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, "{}.{}".format(_safe(stem), ext))
        fig.savefig(path, format=ext)
        paths.append(path)
    return paths


def load_masks(run: Run) -> Dict[float, Tuple[np.ndarray, np.ndarray]]:
    """masks.npz as {ratio: (epochs, masks[n_epochs, channels] bool)}; empty when absent or unreadable."""
    path = run.file("masks.npz")
    if not os.path.isfile(path):
        return {}
    out = {}
    try:
        with open(path, "rb") as fh, np.load(fh) as npz:
            for name in npz.files:
                m = re.match(r"ratio_(.+)_masks$", name)
                if m and "ratio_{}_epochs".format(m.group(1)) in npz.files:
                    out[float(m.group(1))] = (np.asarray(npz["ratio_{}_epochs".format(m.group(1))]),
                                              np.asarray(npz[name]).astype(bool))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        run.notes.append("unreadable masks.npz: {}".format(exc))
        return {}
    return out


def mask_distance_matrix(masks: np.ndarray) -> np.ndarray:
    """Pairwise normalized Hamming distance between the masks of all epochs (fraction of channels that differ)."""
    m = masks.astype(np.float64)
    n = m.shape[1]
    differ = m @ (1.0 - m).T
    return (differ + differ.T) / max(n, 1)


def _eb_epoch_for(run: Run, ratio: float):
    s = run.summary or {}
    for key, value in (s.get("eb_epochs") or {}).items():
        try:
            if abs(float(key) - ratio) < 1e-9:
                return value
        except ValueError:
            continue
    if s.get("prune_ratio") is not None and abs(float(s["prune_ratio"]) - ratio) < 1e-9:
        return s.get("eb_epoch")
    return None


def plot_mask_distance(run: Run, out_dir: str) -> List[str]:
    """Fig. 3: the pairwise mask-distance matrix per prune ratio, linearly normalized to [0, 1] as in the
    paper, with the EB epoch marked by red lines."""
    paths = []
    for ratio, (epochs, masks) in sorted(load_masks(run).items()):
        if len(epochs) == 0:
            continue
        d = mask_distance_matrix(masks)
        span = d.max() - d.min()
        d = (d - d.min()) / span if span > 0 else np.zeros_like(d)
        fig = _figure(5.2, 4.4)
        ax = fig.add_subplot(111)
        lo, hi = float(epochs[0]) - 0.5, float(epochs[-1]) + 0.5
        image = ax.imshow(d, cmap="viridis_r", extent=(lo, hi, hi, lo), interpolation="nearest")
        fig.colorbar(image, ax=ax, label="mask distance (normalized)")
        eb = _eb_epoch_for(run, ratio)
        if eb is not None and not lo <= float(eb) <= hi:
            run.notes.append("EB epoch {} at p={} lies outside the recorded masks (epochs {}..{})"
                             .format(eb, ratio_label(ratio), epochs[0], epochs[-1]))
        elif eb is not None:
            ax.axvline(eb, color="red", lw=1.2)
            ax.axhline(eb, color="red", lw=1.2, label="EB epoch {}".format(eb))
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("epoch")
        ax.set_title("{} {}/{} p={}".format(run.run_id, run.get("model"), run.get("dataset"), ratio_label(ratio)),
                     fontsize=9)
        paths += _save(fig, out_dir, "mask_distance_{}_p{}".format(run.run_id, ratio_label(ratio)))
    return paths


def ticket_epoch_groups(runs_df: pd.DataFrame) -> pd.DataFrame:
    """Complete runs whose (model, dataset, method, ratio) drew tickets at two or more distinct epochs."""
    if runs_df.empty:
        return runs_df
    done = runs_df[runs_df["complete"].astype(bool) & runs_df["ticket_epoch"].notna()]
    counts = done.groupby(["model", "dataset", "method", "ratio"])["ticket_epoch"].transform("nunique")
    return done[counts >= 2]


def plot_ticket_epoch(runs_df: pd.DataFrame, out_dir: str) -> List[str]:
    """Figs. 1 and 5: retrain accuracy and total training FLOPs against the ticket epoch, one figure per
    (model, dataset); points are means, error bars min..max over repeats (as in the paper); the dashed
    line is the dense accuracy where dense runs exist. Returns [] when no group has several ticket epochs."""
    sweep = ticket_epoch_groups(runs_df)
    paths = []
    for (model, dataset), g in sweep.groupby(["model", "dataset"]):
        fig = _figure(10, 4)
        ax_acc, ax_flops = fig.add_subplot(121), fig.add_subplot(122)
        for (method, ratio), line in g.groupby(["method", "ratio"]):
            stats = line.groupby("ticket_epoch").agg(
                acc=("test_acc", "mean"), acc_lo=("test_acc", "min"), acc_hi=("test_acc", "max"),
                pf=("train_pflops_total", "mean"), pf_lo=("train_pflops_total", "min"),
                pf_hi=("train_pflops_total", "max")).sort_index()
            x, label = stats.index.values.astype(float), "{} p={}".format(method, ratio)
            ax_acc.errorbar(x, stats["acc"] * 100, yerr=[(stats["acc"] - stats["acc_lo"]) * 100,
                                                        (stats["acc_hi"] - stats["acc"]) * 100],
                            marker="o", capsize=3, label=label)
            ax_flops.errorbar(x, stats["pf"], yerr=[stats["pf"] - stats["pf_lo"], stats["pf_hi"] - stats["pf"]],
                              marker="o", capsize=3, label=label)
        dense = runs_df[runs_df["complete"].astype(bool) & (runs_df["method"] == "dense")
                        & (runs_df["model"] == model) & (runs_df["dataset"] == dataset)]
        if not dense.empty:
            ax_acc.axhline(dense["test_acc"].mean() * 100, ls="--", color="gray", label="dense")
        for ax in (ax_acc, ax_flops):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_acc.set_xlabel("epoch the ticket was drawn")
        ax_acc.set_ylabel("retrain accuracy (%)")
        ax_flops.set_xlabel("epoch the ticket was drawn")
        ax_flops.set_ylabel("total training FLOPs (P)")
        ax_acc.legend(fontsize=8)
        fig.suptitle("{} / {}".format(model, dataset))
        paths += _save(fig, out_dir, "ticket_epoch_{}_{}".format(model, dataset))
    return paths


def plot_method_bars(runs_df: pd.DataFrame, out_dir: str, allow_mixed_power_modes: bool = False,
                     allow_mixed_energy_methods: bool = False) -> List[str]:
    """Energy (train_total kJ, with its measured/modelled label) and training PFLOPs per method (and result
    settings, where rows differ in them), grouped by prune ratio, mean with 95% interval, one figure per
    (model, dataset)."""
    cells = cell_stats(runs_df, allow_mixed_power_modes, allow_mixed_energy_methods)
    paths = []
    for (model, dataset), g in cells.groupby(["model", "dataset"]):
        methods = list(dict.fromkeys(g["label"]))  # cell_stats' order: the paper's, then settings
        ratios = sorted(g["ratio"].unique(), key=_ratio_rank)
        fig = _figure(max(6.4, 1.2 * len(methods) * 2), 4.2)
        width = 0.8 / len(ratios)
        panels = (("energy_kj", "energy, train total (kJ, {})".format("+".join(sorted(set(g["energy_label"]))))),
                  ("pflops", "training FLOPs (P)"))
        for i, (metric, label) in enumerate(panels):
            ax = fig.add_subplot(1, 2, i + 1)
            for j, r in enumerate(ratios):
                sub = g[g["ratio"] == r].set_index("label").reindex(methods)
                x = np.arange(len(methods)) + (j - (len(ratios) - 1) / 2.0) * width
                ax.bar(x, sub[metric + "_mean"].fillna(0), width, yerr=sub[metric + "_ci95"].fillna(0),
                       capsize=2, label="p={}".format(r))
            ax.set_xticks(np.arange(len(methods)))
            ax.set_xticklabels(methods, rotation=30, ha="right")
            ax.set_ylabel(label, fontsize=8)
        ax.legend(fontsize=8)
        fig.suptitle("{} / {}".format(model, dataset))
        paths += _save(fig, out_dir, "methods_{}_{}".format(model, dataset))
    return paths


MAX_TRACE_POINTS = 20000


def plot_power_trace(run: Run, out_dir: str) -> List[str]:
    """Power over time on the 'total' rail, one line per meter (labelled measured/modelled), phases shaded.

    The time axis is wall-clock seconds since the run's first phase: the one clock that samples from a
    laptop-side meter and phase marks from the board share (each side's monotonic clock is its own)."""
    samples = _read_csv(run, "samples.csv", usecols=lambda c: c in ("meter", "rail", "t_mono", "t_wall", "power_w"))
    if samples is None or samples.empty or "power_w" not in samples:
        return []
    clock = "t_wall" if "t_wall" in samples and samples["t_wall"].notna().any() else "t_mono"
    total = samples[samples["rail"].astype(str) == "total"] if "rail" in samples else samples
    if total.empty:
        return []
    phases = _read_csv(run, "phases.csv")
    start_col, end_col = clock.replace("t_", "t_start_"), clock.replace("t_", "t_end_")
    have_phases = phases is not None and {"phase", start_col, end_col} <= set(phases)
    t0 = float(phases[start_col].min()) if have_phases else float(total[clock].min())
    methods = {}
    energy = _read_csv(run, "energy.csv")
    if energy is not None and {"meter", "method"} <= set(energy):
        methods = dict(zip(energy["meter"].astype(str), energy["method"]))
    fig = _figure(9, 3.8)
    ax = fig.add_subplot(111)
    if have_phases:
        colours = {}  # type: Dict[str, str]
        for _, ph in phases.iterrows():  # per-epoch windows too: search, eval, retrain alternate
            name = str(ph["phase"])
            first = name not in colours
            colours.setdefault(name, "C{}".format(len(colours) % 10))
            ax.axvspan(ph[start_col] - t0, ph[end_col] - t0, color=colours[name], alpha=0.15,
                       label=name if first else None)
    for meter, g in total.groupby("meter"):
        g = g.sort_values(clock)
        step = max(1, len(g) // MAX_TRACE_POINTS)
        g = g.iloc[::step]
        ax.plot(g[clock] - t0, g["power_w"], lw=0.8,
                label="{} ({})".format(meter, methods.get(str(meter), "unlabelled")))
    ax.set_xlabel("time since run start (s, {})".format("wall clock" if clock == "t_wall" else "monotonic"))
    ax.set_ylabel("power, rail total (W)")
    ax.set_title("{} {} {}/{} p={}".format(run.run_id, run.get("method"), run.get("model"), run.get("dataset"),
                                            ratio_label(run.get("prune_ratio"))), fontsize=9)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    return _save(fig, out_dir, "power_{}".format(run.run_id))


