"""build_report: run directories in; report CSVs, plots, index.html and report.json out (host side:
Python 3.8+, pandas, matplotlib).

The report reads run directories only through their files (the run-directory contract), so it can
report runs written by another ebedge version, on any board, and runs that crashed half way.

Outputs of `build_report`:
  runs.csv    one row per run: status, board, power mode, summary numbers, energy with its label, settings
  table.csv   the paper's Table 2 shape: one row per (model, dataset, method), columns per prune ratio
  draws.csv   Tables 1 and 4 shape, where runs drew tickets at fixed epochs: rows = draw epochs and "final",
              columns = schedules (lr schedules or initial learning rates)
  phases.csv  energy (gross and net kJ) and seconds per phase, per run, meter and rail
  plots/      mask-distance matrices, the paper's Figs. 1/2, 3 and 5 where the runs are those experiments,
              accuracy and FLOPs against the detector's EB epoch where runs drew it at several epochs,
              energy and FLOPs bars per method, power traces with phases shaded; each as PNG and SVG
  index.html  all of it on one self-contained page (ebedge.report.page), with every meter qualification
              (qualification.json, `ebedge meters qualify`) found under the inputs
  report.json the same numbers, machine-readable
  emissions.csv  with formats=("codecarbon",): CodeCarbon's columns, and emissions_ebedge.csv: which
                 meter, measured/modelled (ebedge.report.codecarbon)
  tradeoff.csv energy / training time / accuracy per model across power modes, Pareto front marked
              (ebedge.report.tradeoff; drawn as plots/tradeoff_* where runs span several modes)
  table.tex   with "latex": Table 2 as a booktabs tabular for \\input (ebedge.report.latex)
  model-card.md  with "model-card": a model card's Energy section (ebedge.report.modelcard)
The answer comes first: `answers`, one sentence per comparison (ebedge.report.answer), tops the page.
"""
import json
import os
import time
from dataclasses import dataclass, field  # novermin: the 3.6 backport is a declared dependency
from typing import Dict, List, Optional, Sequence  # noqa: F401

import pandas as pd

from ebedge.report.runs import ReportError, Run, find_run_dirs, load_run
from ebedge.report.answer import sentences
from ebedge.report.tables import (accuracy_columns, cell_stats, draw_frame, draw_table, phases_frame, pivot_cells,
                                  runs_frame)
from ebedge.report.tradeoff import BOARD_SETTINGS, plot_tradeoff, tradeoff_frame

FORMATS = ("codecarbon", "latex", "model-card")


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
    cells_df: pd.DataFrame
    table_df: pd.DataFrame
    phases_df: pd.DataFrame
    draws_df: pd.DataFrame
    files: List[str]
    warnings: List[str]
    notes: List[str]
    qualifications: List[tuple] = ()  # (path, qualification.json) pairs, ebedge.report.qualification
    answers: List[str] = field(default_factory=list)
    tradeoff_df: pd.DataFrame = field(default_factory=pd.DataFrame)


def answers(runs: Sequence[Run], cells_df: pd.DataFrame) -> List[str]:
    """The answer-first sentences over the complete runs, compared only inside one table group
    (model, dataset, recorded power mode, and the settings the table's rows differ in)."""
    differ = {}
    for cell in cells_df.to_dict("records"):
        kept = ", ".join(p for p in str(cell["settings"] or "").split(", ")
                         if p and not p.startswith(BOARD_SETTINGS))
        for run_id in str(cell["run_ids"]).split(";"):
            differ[run_id] = kept
    summaries = [dict(r.summary, _group="{}/{}{}{}".format(
        r.get("model"), r.get("dataset"), " at {}".format(r.get("power_mode")) if r.get("power_mode") else "",
        " ({})".format(differ[r.run_id]) if differ.get(r.run_id) else ""))
        for r in runs if r.complete and r.run_id in differ]
    return sentences(summaries, group_of=lambda s: s["_group"])


def _records(frame: pd.DataFrame) -> list:
    """Rows as JSON-ready dicts (NaN -> null, numpy scalars -> numbers)."""
    return json.loads(frame.to_json(orient="records", double_precision=15))


def _write_text(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_report_json(result: "ReportResult", path: str, inputs: Sequence[str], generated: float) -> None:
    """report.json: the numbers of runs.csv, the table (long and Table 2 shape) and phases.csv, and what was read."""
    from ebedge import __version__
    doc = {"ebedge_version": __version__, "generated_wall": generated,
           "inputs": [os.path.abspath(p) for p in inputs], "warnings": result.warnings, "notes": result.notes,
           "answers": result.answers, "tradeoff": _records(result.tradeoff_df),
           "cells": _records(result.cells_df), "table": _records(result.table_df),
           "runs": _records(result.runs_df), "phases": _records(result.phases_df), "draws": _records(result.draws_df),
           "qualifications": [dict(q, path=os.path.abspath(p)) for p, q in result.qualifications]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, allow_nan=False)


def build_report(paths: Sequence[str], out_dir: str, allow_mixed_power_modes: bool = False,
                 now: Optional[float] = None, allow_mixed_energy_methods: bool = False,
                 formats: Sequence[str] = (), carbon_intensity_g_per_kwh: Optional[float] = None,
                 accuracy: str = "final") -> ReportResult:
    """Read every run directory under `paths` and write runs.csv, table.csv, phases.csv, plots/, index.html,
    report.json (and, per `formats`, emissions.csv) to out_dir.

    Raises ReportError for a path that is not a directory, an unknown format, or (unless the matching allow_*)
    when a table cell would average, or an improvement would compare, runs at different power modes, or a
    cell would mix measured, modelled and unmeasured energy; nothing is written then. Foreign files and
    incomplete runs become warnings, never errors. `accuracy`: "final" (each run's last epoch, the default)
    or "best" (the best epoch of the retrain, as the paper's official code reports); every table says which.
    Emissions are filled only from carbon_intensity_g_per_kwh
    (g CO2eq/kWh; a negative one is a ReportError before anything is written).
    Long on purpose: every refusal is checked before the first file is written, in the order a
    reader of the code can follow, and only then is each output written in turn.
    """
    accuracy_columns(accuracy)  # a bad choice fails before anything is read or written
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ReportError("unknown report format(s): {}; known: {}".format(", ".join(unknown), ", ".join(FORMATS)))
    if carbon_intensity_g_per_kwh is not None and not carbon_intensity_g_per_kwh >= 0:
        raise ReportError("carbon intensity must be >= 0 g CO2eq/kWh, got {}".format(carbon_intensity_g_per_kwh))
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
    cells_df = cell_stats(runs_df, allow_mixed_power_modes, allow_mixed_energy_methods, accuracy)
    table_df = pivot_cells(cells_df, allow_mixed_power_modes)
    phases_df = phases_frame(runs)
    trade_df = tradeoff_frame(runs_df)
    draws_df = draw_table(draw_frame(runs), accuracy)
    notes = []
    os.makedirs(out_dir, exist_ok=True)
    files = []
    frames = [("runs.csv", runs_df), ("table.csv", table_df), ("phases.csv", phases_df), ("tradeoff.csv", trade_df)]
    for name, frame in frames + ([("draws.csv", draws_df)] if not draws_df.empty else []):
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
    files += draw.plot_method_bars(runs_df, plots, allow_mixed_power_modes, allow_mixed_energy_methods)
    files += plot_tradeoff(trade_df, plots)
    warnings = ["not a run directory, ignored: {}".format(f) for f in foreign] + duplicates
    warnings += ["run {} drew no Early-Bird ticket: its last searched network was pruned (eb_epoch null)"
                 .format(run.run_id) for run in runs if (run.summary or {}).get("no_ticket")]
    for run in runs:
        if not run.complete:
            warnings.append("run {} is {}: listed in runs.csv, left out of the table".format(run.run_id, run.status))
        warnings += ["run {}: {}".format(run.run_id, n) for n in run.notes]
    from ebedge.report import qualification
    qualifications, bad = qualification.find(paths, skip=[out_dir])
    warnings += bad
    result = ReportResult(runs=runs, runs_df=runs_df, cells_df=cells_df, table_df=table_df, phases_df=phases_df,
                          draws_df=draws_df, files=files, warnings=warnings, notes=notes, qualifications=qualifications,
                          answers=answers(runs, cells_df), tradeoff_df=trade_df)
    generated = time.time()
    json_path = os.path.join(out_dir, "report.json")
    tables = [os.path.join(out_dir, n) for n in ("table.csv", "runs.csv", "phases.csv", "tradeoff.csv")] + [json_path]
    tables += [os.path.join(out_dir, "draws.csv")] if not draws_df.empty else []
    if "latex" in formats:
        from ebedge.report.latex import latex_table
        tables.append(_write_text(os.path.join(out_dir, "table.tex"), latex_table(table_df)))
        files.append(tables[-1])
    if "model-card" in formats:
        from ebedge.report.modelcard import model_card
        tables.append(_write_text(os.path.join(out_dir, "model-card.md"), model_card(cells_df, phases_df, runs)))
        files.append(tables[-1])
    if "codecarbon" in formats:
        from ebedge.report.codecarbon import emissions_frame, write_emissions
        written = write_emissions(emissions_frame(runs, runs_df, phases_df, carbon_intensity_g_per_kwh), out_dir)
        files.extend(written)
        tables.extend(written)
    write_report_json(result, json_path, paths, generated)
    files.append(json_path)
    from ebedge.report.page import render
    index = os.path.join(out_dir, "index.html")
    with open(index, "w", encoding="utf-8") as f:
        f.write(render(result, out_dir, tables, generated))
    files.append(index)
    return result
