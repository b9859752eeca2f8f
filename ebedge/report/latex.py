"""`ebedge report --format latex`: the paper's Table 2 shape as a booktabs tabular, ready for \\input.

One row per (model, dataset, method[, differing settings]), three columns per prune ratio: accuracy
(%), training energy (kJ) and training FLOPs (P), each `mean \\pm 95% half-width` (the half-width
only where repeats exist). A modelled energy carries a dagger, measured energy none, and the note
row under the table says which meter measured and what the dagger means; a row without energy
shows `--`. The document needs `\\usepackage{booktabs}`.
"""
import math
import re

import pandas as pd

from ebedge.config.settings import ONLY_WHEN_SET
from ebedge.report.runs import _ratio_rank

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
METRICS = (("acc_pct", "Acc.\\ (\\%)", "{:.2f}"), ("energy_kj", "Energy (kJ)", "{:.3g}"),
           ("pflops", "FLOPs (P)", "{:.3g}"))


def tex(text) -> str:
    """`text` with LaTeX's special characters escaped (run names and settings are data)."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _SPECIAL[m.group(0)], str(text))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value(row, metric, ratio, fmt, modelled) -> str:
    mean, ci = row.get("{}_mean[p={}]".format(metric, ratio)), row.get("{}_ci95[p={}]".format(metric, ratio))
    if _missing(mean):
        return "--"
    text = fmt.format(mean) + ("" if _missing(ci) else " \\pm " + fmt.format(ci))
    return "${}{}$".format(text, "^{\\dagger}" if metric == "energy_kj" and modelled else "")


def latex_table(table_df: pd.DataFrame) -> str:
    """The tabular for table.csv's frame (ebedge.report.tables.pivot_cells)."""
    ratios = sorted({c.split("[p=")[1].rstrip("]") for c in table_df.columns if c.startswith("acc_pct_mean[p=")},
                    key=_ratio_rank)
    width = 3 + len(METRICS) * len(ratios)
    lines = ["% ebedge report: accuracy, training energy (search + prune + retrain) and training FLOPs;",
             "% mean \\pm 95% interval half-width over repeats. Needs \\usepackage{booktabs}.",
             "\\begin{tabular}{lll" + "r" * (width - 3) + "}", "\\toprule"]
    lines.append(" & & & " + " & ".join("\\multicolumn{{{}}}{{c}}{{{}}}".format(
        len(METRICS), "dense" if r == "-" else "$p={}$".format(r)) for r in ratios) + " \\\\")
    lines.append(" ".join("\\cmidrule(lr){{{}-{}}}".format(4 + i * len(METRICS), 3 + (i + 1) * len(METRICS))
                          for i in range(len(ratios))))
    lines.append("Model & Dataset & Method & " + " & ".join(h for _ in ratios for _, h, _ in METRICS) + " \\\\")
    lines.append("\\midrule")
    labels = set()
    for row in table_df.to_dict("records"):
        label = str(row.get("energy_label") or "none")
        labels.update(label.split("+"))
        modelled = "modelled" in label
        differ = ", ".join(p for p in str(row.get("settings") or "").split(", ")
                           if p and not p.startswith(ONLY_WHEN_SET))  # the recorded mode says it
        method = row["method"] + (" ({})".format(differ) if differ else "")
        mode = row.get("power_mode")
        if isinstance(mode, str) and mode and mode != "unknown":
            method += ", " + mode
        cells = [tex(row["model"]), tex(row["dataset"]), tex(method)]
        cells += [_value(row, metric, r, fmt, modelled) for r in ratios for metric, _, fmt in METRICS]
        lines.append(" & ".join(cells) + " \\\\")
    lines.append("\\bottomrule")
    measured = sorted(l for l in labels if l.startswith("measured"))
    modelled = sorted(l for l in labels if l.startswith("modelled"))
    note = []
    if measured:
        note.append("energy " + ", ".join(measured))
    if modelled:
        note.append("$^{\\dagger}$energy " + ", ".join(modelled) + ", not measured")
    if "none" in labels:
        note.append("-- not measured")
    if note:
        lines.append("\\multicolumn{{{}}}{{l}}{{\\footnotesize {}.}} \\\\".format(width, tex_note("; ".join(note))))
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"


def tex_note(text: str) -> str:
    """Escape a note that already holds the dagger's math: everything but `$^{\\dagger}$`."""
    parts = text.split("$^{\\dagger}$")
    return "$^{\\dagger}$".join(tex(p) for p in parts)
