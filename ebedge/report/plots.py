"""The report's pictures (matplotlib, Agg backend, PNG and SVG each): the pairwise mask-distance
matrix of every run, the paper's Fig. 3 (four-panel mask distances of a whole-schedule search),
Figs. 1 and 5 (retrain accuracy and total training FLOPs against the epoch a ticket was drawn at,
from runs with fixed draw epochs), accuracy and FLOPs against the detector's EB epoch where runs
drew tickets at several epochs, energy and FLOPs bars per method, and a power trace with phases
shaded."""
import os
import re
import zipfile
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ebedge.report.runs import Run, _ratio_rank, _read_csv, is_eb_method, ratio_label
from ebedge.report.tables import cell_stats, draw_frame

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
    """The pairwise mask-distance matrix per prune ratio, linearly normalized to [0, 1] as in the
    paper's Fig. 3, with the EB epoch marked by red lines."""
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
    """Retrain accuracy and total training FLOPs against the epoch the detector drew the ticket at,
    one figure per (model, dataset), for runs that happened to draw at several epochs (e.g. several
    seeds); points are means, error bars min..max over repeats; the dashed line is the dense accuracy
    where dense runs exist. Not the paper's Figs. 1 and 5, whose tickets are drawn at fixed epochs
    (see plot_fig1 / plot_fig5). Returns [] when no group has several ticket epochs."""
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
        paths += _save(fig, out_dir, "eb_epoch_sweep_{}_{}".format(model, dataset))
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




# ---------------------------------------------------------------- the paper's Figs. 1, 3 and 5

def _min_max_line(ax, g: pd.DataFrame, column: str, scale: float, label: str, **style):
    st = g.groupby("draw")[column].agg(["mean", "min", "max"]).sort_index()
    x = st.index.values.astype(float)
    ax.errorbar(x, st["mean"] * scale, yerr=[(st["mean"] - st["min"]) * scale, (st["max"] - st["mean"]) * scale],
                marker="o", capsize=3, label=label, **style)


def _star_best_search(ax, g: pd.DataFrame, column: str, scale: float):
    """Fig. 1's star: the retrain accuracy of the ticket drawn where the search's accuracy was best."""
    g = g.reset_index(drop=True)
    search = pd.to_numeric(g["search_acc"], errors="coerce")
    if search.notna().any():
        best = g.loc[search.groupby(g["draw"]).transform("mean").idxmax(), "draw"]
        ax.plot([float(best)], [g.loc[g["draw"] == best, column].mean() * scale], marker="*", markersize=14,
                color=ax.lines[-1].get_color(), linestyle="none")


def _draw_figure(runs: List[Run], out_dir: str, stem: str, column: str, scale: float, ylabel: str,
                 dashed_dense: bool) -> List[str]:
    frame = draw_frame(runs)
    drawn = frame[frame["method"].map(is_eb_method).astype(bool)]
    paths = []
    for (model, dataset), g in drawn.groupby(["model", "dataset"]):
        fig = _figure(6.4, 4.4)
        ax = fig.add_subplot(111)
        several = g["schedule"].nunique() > 1
        for (method, ratio, schedule), line in g.groupby(["method", "ratio", "schedule"]):
            label = "{} p={}{}".format(method, ratio, " ({})".format(schedule) if several else "")
            final = frame[(frame["method"] == "ns") & (frame["model"] == model) & (frame["dataset"] == dataset)
                          & (frame["ratio"] == ratio) & (frame["schedule"] == schedule)]
            if column == "test_acc":  # Fig. 1: the "final" ticket continues the line
                _min_max_line(ax, pd.concat([line, final]), column, scale, label)
                _star_best_search(ax, pd.concat([line, final]), column, scale)
            else:  # Fig. 5: EB Train's line against the progressive baseline's cost
                _min_max_line(ax, line, column, scale, label)
                if not final.empty:
                    ax.axhline(final[column].mean() * scale, ls=":", color=ax.lines[-1].get_color(),
                               label="NS (ticket after {} epochs) p={}".format(int(final["draw"].iloc[0]), ratio))
        dense = frame[(frame["method"] == "dense") & (frame["model"] == model) & (frame["dataset"] == dataset)]
        if dashed_dense and not dense.empty:
            ax.axhline(dense[column].mean() * scale, ls="--", color="gray", label="dense")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch the ticket was drawn at (the last: after the whole schedule, NS)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        ax.set_title("{} / {}".format(model, dataset), fontsize=9)
        paths += _save(fig, out_dir, "{}_{}_{}".format(stem, model, dataset))
    return paths


def plot_fig1(runs: List[Run], out_dir: str) -> List[str]:
    """Fig. 1 (and Fig. 2 for eb-lf runs): retrain accuracy against the draw epoch, per (model,
    dataset), one line per method and p, error bars min/max over repeats, dense accuracy dashed, a
    star on the ticket drawn at the epoch of best search accuracy."""
    return _draw_figure(runs, out_dir, "fig1", "test_acc", 100.0, "retrain accuracy (%)", True)


def plot_fig5(runs: List[Run], out_dir: str) -> List[str]:
    """Fig. 5: total training FLOPs against the draw epoch, EB Train per p, the progressive
    prune-and-train baseline (NS: ticket after the whole schedule, retrained fully) dotted."""
    return _draw_figure(runs, out_dir, "fig5", "pflops", 1.0, "total training FLOPs (P)", False)


def plot_fig3(run: Run, out_dir: str) -> List[str]:
    """Fig. 3: one panel per prune ratio of a search that recorded every epoch's mask
    (`keep_searching`), normalized pairwise mask distances, the epoch the detector fired marked."""
    masks = load_masks(run)
    if not run.settings.get("keep_searching") or not masks:
        return []
    fig = _figure(4.2 * len(masks), 4.0)
    for i, (ratio, (epochs, history)) in enumerate(sorted(masks.items())):
        ax = fig.add_subplot(1, len(masks), i + 1)
        d = mask_distance_matrix(history)
        span = d.max() - d.min()
        d = (d - d.min()) / span if span > 0 else np.zeros_like(d)
        lo, hi = float(epochs[0]) - 0.5, float(epochs[-1]) + 0.5
        ax.imshow(d, cmap="viridis_r", extent=(lo, hi, hi, lo), interpolation="nearest")
        eb = _eb_epoch_for(run, ratio)
        if eb is not None and lo <= float(eb) <= hi:
            ax.axvline(eb, color="red", lw=1.0)
            ax.axhline(eb, color="red", lw=1.0)
        ax.set_title("p={}  EB epoch {} (eps {})".format(ratio_label(ratio), eb if eb is not None else "none",
                                                      run.settings.get("epsilon")), fontsize=8)
        ax.set_xlabel("epoch")
    fig.suptitle("{} / {}".format(run.get("model"), run.get("dataset")), fontsize=9)
    return _save(fig, out_dir, "fig3_{}_{}_{}".format(run.get("model"), run.get("dataset"), run.run_id))
