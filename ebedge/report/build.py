"""build_report: run directories in, report CSVs and plots out (host side: Python 3.8+, pandas, matplotlib).

The report reads run directories only through their files (the run-directory contract), so it can
report runs written by another ebedge version, on any board, and runs that crashed half way.

Outputs of `build_report`:
  runs.csv    one row per run: status, board, power mode, summary numbers, energy with its label, settings
  table.csv   the paper's Table 2 shape: one row per (model, dataset, method), columns per prune ratio
  phases.csv  energy (gross and net kJ) and seconds per phase, per run, meter and rail
  plots/      mask-distance matrices, the paper's Figs. 1/2, 3 and 5 where the runs are those experiments,
              accuracy and FLOPs against the detector's EB epoch where runs drew it at several epochs,
              energy and FLOPs bars per method, power traces with phases shaded; each as PNG and SVG
"""
import os
from dataclasses import dataclass  # novermin: the 3.6 backport is a declared dependency
from typing import Dict, List, Optional, Sequence  # noqa: F401

import pandas as pd

from ebedge.report.runs import (ReportError, Run, find_run_dirs, load_run,  # noqa: F401 (public names)
                                ratio_label, t_quantile_975)
from ebedge.report.tables import phases_frame, runs_frame, table_frame


# ---------------------------------------------------------------- the whole report

def paper_figures(runs, plots, notes):
    """The paper's Figs. 1 (and 2), 3 and 5 where the runs are those experiments."""
    from ebedge.report import plots as draw
    files = draw.plot_fig1(runs, plots) + draw.plot_fig5(runs, plots)
    if not files:
        notes.append("Figs. 1, 2, 5 skipped: no runs with a fixed draw epoch (--draw-at)")
    for run in runs:
        files += draw.plot_fig3(run, plots)
    return files


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
    from ebedge.report import plots as draw  # matplotlib loads only when a report is drawn

    plots = os.path.join(out_dir, "plots")
    for run in runs:
        files += draw.plot_mask_distance(run, plots)
        files += draw.plot_power_trace(run, plots)
    files += draw.plot_ticket_epoch(runs_df, plots)
    files += paper_figures(runs, plots, notes)
    files += draw.plot_method_bars(runs_df, plots, allow_mixed_power_modes)
    warnings = ["not a run directory, ignored: {}".format(f) for f in foreign] + duplicates
    warnings += ["run {} drew no Early-Bird ticket: its last searched network was pruned (eb_epoch null)"
                 .format(run.run_id) for run in runs if (run.summary or {}).get("no_ticket")]
    for run in runs:
        if not run.complete:
            warnings.append("run {} is {}: listed in runs.csv, left out of the table".format(run.run_id, run.status))
        warnings += ["run {}: {}".format(run.run_id, n) for n in run.notes]
    return ReportResult(runs=runs, runs_df=runs_df, table_df=table_df, phases_df=phases_df, files=files,
                        warnings=warnings, notes=notes)
