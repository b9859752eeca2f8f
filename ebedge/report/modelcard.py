"""`ebedge report --format model-card`: the "Energy" section of a model card, in Markdown.

Per trained configuration (a table cell: model, dataset, method, ratio, settings) it says on what
hardware and at which power mode the model was trained, which meter measured (or modelled) the
energy and how far that meter is qualified where the run recorded it, the energy of every phase
with its 95% interval over repeats, the training FLOPs and the flags the runs raised. Numbers come
from the report's frames, so the card says what table.csv and phases.csv hold.
"""
from typing import Dict, List, Sequence

import pandas as pd

from ebedge.report.runs import Run, mean_ci95

PHASES = ("search", "prune", "retrain", "train_total", "eval")


def _pm(mean, ci, fmt="{:.4g}") -> str:
    if mean != mean:
        return "n/a"
    return fmt.format(mean) + ("" if ci != ci else " ± " + fmt.format(ci))


def _md(text) -> str:
    """Board-sent text as inert Markdown: no tables, links, markup or line breaks."""
    return "".join(c if c.isalnum() or c in " .,:;()+-/=%'_" else " " for c in str(text)).strip() or "?"


def _hardware(runs: Sequence[Run]) -> str:
    boards = set()
    for run in runs:
        board = run.config.get("board") or {}
        parts = [board.get("model") or "unknown board"]
        if board.get("jetpack") or board.get("l4t"):
            parts.append("JetPack {} (L4T {})".format(board.get("jetpack") or "?", board.get("l4t") or "?"))
        boards.add(", ".join(_md(p) for p in parts))
    return "; ".join(sorted(boards)) or "unknown"


def _meter(runs: Sequence[Run]) -> str:
    """The headline meter, its label, stated accuracy and recorded qualification, where known."""
    out = set()
    for run in runs:
        energy = (run.summary or {}).get("energy") or {}
        name = energy.get("meter")
        if not name:
            out.add("none (energy not measured)")
            continue
        facts = next((m for m in run.config.get("meters") or [] if isinstance(m, dict) and m.get("name") == name), {})
        text = "{} ({})".format(_md(name), _md(energy.get("method") or "unlabelled"))
        if facts.get("total_rails"):
            text += ", total = " + " + ".join(_md(r) for r in facts["total_rails"])
        if facts.get("accuracy_pct") is not None:
            text += ", stated accuracy ±{:g}%".format(facts["accuracy_pct"])
        qualification = facts.get("qualification")
        text += ", qualification: {}".format(_md(qualification) if qualification else "none recorded")
        out.add(text)
    return "; ".join(sorted(out))


def _phase_lines(phases_df: pd.DataFrame, runs: Sequence[Run]) -> List[str]:
    lines = []
    for phase in PHASES:
        values, seconds = [], []
        for run in runs:
            meter = ((run.summary or {}).get("energy") or {}).get("meter")
            rows = phases_df[(phases_df["run_id"] == run.run_id) & (phases_df["phase"] == phase)
                             & (phases_df["rail"] == "total") & (phases_df["meter"] == meter)]
            if not rows.empty:
                values.append(rows["energy_kj"].iloc[0])
                seconds.append(rows["seconds"].iloc[0])
        if values:
            lines.append("| {} | {} | {} |".format(phase, _pm(*mean_ci95(values)), _pm(*mean_ci95(seconds), fmt="{:.1f}")))
    return lines


def model_card(cells_df: pd.DataFrame, phases_df: pd.DataFrame, runs: Sequence[Run]) -> str:
    """The Markdown section, one subsection per table cell."""
    by_id: Dict[str, Run] = {r.run_id: r for r in runs}
    out = ["## Energy", "",
           "Measured with ebedge on the device; mean ± 95% interval half-width over "
           "repeats (no interval for a single run). Energy labelled modelled is an estimate, not a measurement.", ""]
    for cell in cells_df.to_dict("records"):
        runs_here = [by_id[i] for i in str(cell["run_ids"]).split(";") if i in by_id]
        title = "{} / {} / {}".format(cell["model"], cell["dataset"], cell["label"])
        if cell["ratio"] != "-":
            title += ", prune ratio {}".format(cell["ratio"])
        out += ["### " + _md(title), "",
                "- Hardware: " + _hardware(runs_here),
                "- Power mode: " + _md(cell["power_mode"]),
                "- Meter: " + _meter(runs_here),
                "- Runs: {}".format(cell["n"]),
                "- Accuracy: {} %".format(_pm(cell["acc_pct_mean"], cell["acc_pct_ci95"], "{:.2f}")),
                "- Training FLOPs: {} PFLOPs".format(_pm(cell["pflops_mean"], cell["pflops_ci95"])),
                "- Flags: " + (_md(cell["flags"]) if cell["flags"] else "none"), "",
                "| phase | energy (kJ, {}) | seconds |".format(_md(cell["energy_label"])), "|---|---|---|"]
        out += _phase_lines(phases_df, runs_here) or ["| (no energy recorded) | | |"]
        out.append("")
    return "\n".join(out)
