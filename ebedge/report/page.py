"""index.html: the whole report on one self-contained page a reviewer can open anywhere.

Inline CSS, every figure an inline SVG (a data: image, so figures cannot clash or run anything), no
script, and a Content-Security-Policy that forbids the page any request at all. Everything a run
directory says is data: it is escaped, never trusted as markup. Numbers come from the report's frames
(table_df, runs_df, phases_df), so the page shows what table.csv and report.json hold.
"""
import base64
import html
import json
import math
import os
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import pandas as pd

from ebedge import __version__
from ebedge.report import qualification
from ebedge.report.runs import RUN_FILES, Run, _ratio_rank
from ebedge.report.tables import ACCURACY_TEXT, IMPROV

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin:1.4em 0 .4em} table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.3em .55em;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.t2 td{min-width:9em} .t2 .acc{font-weight:600} .muted{color:#777} .small{font-size:.85em}
.tag{display:inline-block;border-radius:3px;padding:0 .35em;font-size:.75em;font-weight:600;margin-left:.3em}
.measured .tag{background:#dff0d8;color:#2b6a2b} .modelled .tag{background:#fcf1d6;color:#8a5a00}
.modelled{font-style:italic} .none .tag{background:#eee;color:#666}
.flag,.flags li,.bad{color:#c00} .flag{font-weight:600}
figure{margin:1em 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
details{margin:.3em 0} summary{cursor:pointer;font-weight:600}
.kv td:first-child{color:#555;white-space:nowrap} code{font-size:.9em}
section.run{border-top:1px solid #ddd;margin-top:1.5em}
"""
FIGURE_TITLES = {
    "mask_distance": "Pairwise mask distance (paper Fig. 3)",
    "ticket_epoch": "Accuracy and training FLOPs against the ticket epoch (paper Figs. 1 and 5)",
    "methods": "Energy and training FLOPs per method",
    "power": "Power trace, phases shaded",
    "tradeoff": "Energy, training time and accuracy across power modes (Pareto front dashed)",
}


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value, spec="{:.4g}") -> str:
    if _missing(value):
        return "&ndash;"
    try:
        return _e(spec.format(float(value)))
    except (TypeError, ValueError):
        return _e(value)


def _pm(mean, ci, spec="{:.4g}") -> str:
    """'mean ± ci' (the 95% interval half-width), or the mean alone where no interval exists (n = 1)."""
    if _missing(ci):
        return _fmt(mean, spec)
    return "{} &plusmn; {}".format(_fmt(mean, spec), _fmt(ci, spec))


def _href(out_dir: str, target: str) -> str:
    """A relative link from the page to `target`, percent-encoded (a path never becomes a URL scheme)."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(out_dir)).replace(os.sep, "/")
    return _e(quote(rel, safe="/"))


def _svg_img(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return '<img src="data:image/svg+xml;base64,{}" alt="{}">'.format(data, _e(alt))


def _safe(text) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text))


def group_plots(svgs: Sequence[str], runs: Sequence[Run], names: Sequence[str]
                ) -> Tuple[Dict[str, List[str]], Dict[str, Dict[str, List[str]]]]:
    """Sort the SVGs the build drew into figure groups, without knowing the plot functions.

    A file whose stem holds a run id after its group name belongs to that run ('power_<run>',
    'mask_distance_<run>_p0.5'); otherwise the group is the stem before its first model or dataset
    name ('methods_vgg16_cifar10' -> 'methods'), else the whole stem. Returns (figures, per_run)."""
    figures, per_run = {}, {}  # type: Dict[str, List[str]], Dict[str, Dict[str, List[str]]]
    ids = sorted(((_safe(r.run_id), r.run_id) for r in runs), key=lambda x: -len(x[0]))
    tokens = {_safe(n) for n in names if n}
    for path in sorted(svgs):
        stem = os.path.splitext(os.path.basename(path))[0]
        owner = None
        for safe_id, run_id in ids:
            m = re.match(r"(.+?)_{}(?:_|$)".format(re.escape(safe_id)), stem)
            if m:
                owner, group = run_id, m.group(1)
                break
        if owner is not None:
            per_run.setdefault(owner, {}).setdefault(group, []).append(path)
            continue
        parts = stem.split("_")
        cut = next((i for i, p in enumerate(parts) if i > 0 and p in tokens), len(parts))
        figures.setdefault("_".join(parts[:cut]), []).append(path)
    return figures, per_run


def _title(group: str) -> str:
    return FIGURE_TITLES.get(group, group.replace("_", " "))


def _figures(groups: Dict[str, List[str]], level: str = "h3") -> str:
    out = []
    for group in sorted(groups):
        out.append("<{0}>{1}</{0}>".format(level, _e(_title(group))))
        for path in groups[group]:
            name = os.path.basename(path)
            out.append('<figure>{}<figcaption>{}</figcaption></figure>'.format(
                _svg_img(path, "{}: {}".format(_title(group), name)), _e(name)))
    return "\n".join(out)


def _energy_class(label: str) -> str:
    label = str(label)
    if "modelled" in label and "measured" in label:
        return "measured modelled"
    return "modelled" if "modelled" in label else ("measured" if "measured" in label else "none")


def _cell(row: dict, r: str, energy_label: str) -> str:
    def col(metric):
        return row.get("{}[p={}]".format(metric, r))

    n = col("n")
    if _missing(n) or not n:
        return '<td class="muted">&ndash;</td>'
    kind = _energy_class(energy_label)
    tag = "measured and modelled" if kind == "measured modelled" else kind
    top5 = col("acc5_pct_mean")
    parts = ['<div class="acc">{} %{}</div>'.format(
                 _pm(col("acc_pct_mean"), col("acc_pct_ci95"), "{:.2f}"),
                 "" if _missing(top5) else ' <span class="small">(top-5 {} %)</span>'.format(_fmt(top5, "{:.2f}"))),
             '<div class="{}">{} kJ<span class="tag">{}</span></div>'.format(
                 kind, _pm(col("energy_kj_mean"), col("energy_kj_ci95")), _e(tag)),
             '<div>{} PFLOPs</div>'.format(_pm(col("pflops_mean"), col("pflops_ci95"))),
             '<div class="muted small">n = {}</div>'.format(_e(int(n)))]
    if not _missing(col("acc_gain_pct")):
        parts.append('<div class="small">{:+.2f} vs unpruned</div>'.format(col("acc_gain_pct")))
    flagged = col("n_flagged")
    if not _missing(flagged) and flagged:
        parts.append('<div class="flag" title="{}">&#9873; {} run(s) flagged: {}</div>'.format(
            _e(col("flags")), _e(int(flagged)), _e(col("flags"))))
    return "<td>{}</td>".format("".join(parts))


def _improv_cell(row: dict, r: str) -> str:
    """The paper's "EB Train Improv." cell: accuracy gain over the best competitor, energy and FLOPs
    of the cheapest competitor over EB Train's (see ebedge.report.tables.improvements)."""
    def col(metric):
        return row.get("{}[p={}]".format(metric, r))

    if _missing(col("flops_x")):
        return '<td class="muted">&ndash;</td>'
    acc = col("improv_acc_pct")
    return '<td class="small">{} vs {}<br>&times;{} energy vs {}<br>&times;{} FLOPs vs {}<br>(cost of {})</td>'.format(
        "&ndash;" if _missing(acc) else "{:+.2f}".format(acc), _e(col("acc_vs")),
        _fmt(col("energy_x"), "{:.1f}"), _e(col("energy_vs")), _fmt(col("flops_x"), "{:.1f}"), _e(col("flops_vs")),
        _e(col("cost_of")))


def _table2(table_df: pd.DataFrame) -> str:
    if table_df.empty:
        return '<p class="muted">No complete runs: nothing to average.</p>'
    ratios = sorted({c.split("[p=")[1][:-1] for c in table_df.columns if c.startswith("n[p=")}, key=_ratio_rank)
    out = []
    for (model, dataset), g in table_df.groupby(["model", "dataset"], sort=False):
        head = "".join("<th>p = {}</th>".format(_e(r)) if r != "-" else "<th>no pruning</th>" for r in ratios)
        records = g.to_dict("records")
        differ = any(not _missing(r.get("settings")) and r.get("settings") for r in records)
        rows = []
        for row in records:
            settings = row.get("settings")
            rows.append('<tr><th>{}</th>{}{}<td class="small">{}<br>{}<br>{}</td></tr>'.format(
                _e(row["method"]),
                '<td class="small">{}</td>'.format(_e(settings) if not _missing(settings) else "") if differ else "",
                "".join(_improv_cell(row, r) if row["method"] == IMPROV else _cell(row, r, row.get("energy_label", ""))
                        for r in ratios),
                _e(row.get("power_mode")), _e(row.get("energy_label")), _e(row.get("boards") or "")))
        out.append('<h3>{} / {}</h3><table class="t2"><tr><th>method</th>{}{}'
                   '<th>power mode, energy meter, boards</th></tr>{}</table>'
                   .format(_e(model), _e(dataset), "<th>settings</th>" if differ else "", head, "".join(rows)))
    accuracy = table_df["accuracy"].dropna()
    out.append('<p><strong>Accuracy shown: {}.</strong></p>'.format(
        _e(ACCURACY_TEXT.get(accuracy.iloc[0], accuracy.iloc[0]) if not accuracy.empty else "none")))
    out.append('<p class="small muted">Each cell: retrain test accuracy, training energy (search + prune + '
               'retrain, gross, from the meter named at the row\'s end) and training FLOPs, as mean &plusmn; '
               '95% t-interval over the n repeats (the mean alone when n = 1). <em>measured</em>: read from a '
               'power meter; <em>modelled</em>: an estimate. Runs are averaged only when all their result '
               'settings agree; the settings column names what differs between rows. Flags are in red. '
               '"vs unpruned": the gain over the dense row (Table 3). ' + _e(IMPROV) + ': as the paper, EB Train '
               '(eb) accuracy minus the most accurate competitor\'s, and the cheapest competitor\'s energy and '
               'FLOPs over EB Train (LL)\'s (eb-ll; eb where no eb-ll ran).</p>')
    return "\n".join(out)


def _draws(draws_df: pd.DataFrame) -> str:
    """Tables 1 and 4 as the paper lays them out (ebedge.report.tables.draw_table)."""
    if draws_df.empty:
        return ""
    schedules = [c[len("acc_pct["):-1] for c in draws_df.columns if c.startswith("acc_pct[")]
    out = ['<h2 id="draws">Tickets drawn at fixed epochs (paper Tables 1 and 4 shape)</h2>',
           '<p><strong>Accuracy shown: {}.</strong> Rows: the epoch the ticket was drawn at; "final": network '
           'slimming\'s ticket, drawn after the whole schedule. Columns: the search schedules (lr schedule or '
           'initial learning rate). Each cell: mean retrain accuracy (%) over n runs.</p>'
           .format(_e(ACCURACY_TEXT.get(draws_df["accuracy"].iloc[0], ""))),]
    for (model, dataset, method, ratio), g in draws_df.groupby(["model", "dataset", "method", "ratio"], sort=False):
        head = "".join("<th>{}</th>".format(_e(s)) for s in schedules)
        rows = "".join("<tr><th>{}</th>{}</tr>".format(_e(r["drawn_at"]), "".join(
            "<td>{} <span class=\"muted small\">n={}</span></td>".format(
                _fmt(r["acc_pct[{}]".format(s)], "{:.2f}"), _e(int(r["n[{}]".format(s)]))) for s in schedules))
            for r in g.to_dict("records"))
        out.append('<h3>{} / {}, {} p = {}</h3><table class="t2"><tr><th>drawn at</th>{}</tr>{}</table>'
                   .format(_e(model), _e(dataset), _e(method), _e(ratio), head, rows))
    return "\n".join(out)


def _tradeoff(trade: pd.DataFrame) -> str:
    """tradeoff.csv as a table: per model and board state, each method's means and intervals; Pareto marked."""
    head = ("model", "dataset", "power mode", "method", "p", "n", "energy kJ", "train s", "accuracy %", "Pareto")
    rows = []
    for r in trade.to_dict("records"):
        rows.append('<tr class="{}">{}<td class="num">{}</td><td class="num">{}<span class="tag">{}</span></td>'
                    '<td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>'.format(
                        _energy_class(r["energy_label"]),
                        "".join("<td>{}</td>".format(_e(r[k])) for k in ("model", "dataset", "state", "method", "ratio")),
                        r["n"], _pm(r["energy_kj_mean"], r["energy_kj_ci95"]), _e(r["energy_label"]),
                        _pm(r["train_s_mean"], r["train_s_ci95"], "{:.1f}"),
                        _pm(r["acc_pct_mean"], r["acc_pct_ci95"], "{:.2f}"), "yes" if r["pareto"] else ""))
    return "<table><tr>{}</tr>{}</table>".format("".join("<th>{}</th>".format(h) for h in head), "".join(rows))


def _kv(items) -> str:
    rows = []
    for key, value in items:
        if isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, float):
            value = "{:.6g}".format(value)
        rows.append("<tr><td>{}</td><td><code>{}</code></td></tr>".format(_e(key), _e(value)))
    return '<table class="kv">{}</table>'.format("".join(rows)) if rows else '<p class="muted">none recorded</p>'


PHASE_COLUMNS = (("phase", None), ("meter", None), ("rail", None), ("method", None), ("seconds", "{:.4g}"),
                 ("energy_kj", "{:.4g}"), ("energy_1hz_kj", "{:.4g}"), ("calibrated_energy_kj", "{:.4g}"),
                 ("net_energy_kj", "{:.4g}"), ("avg_power_w", "{:.4g}"),
                 ("rate_hz", "{:.3g}"), ("sensor_update_hz", "{:.3g}"),
                 ("covered_frac", "{:.3f}"), ("max_gap_s", "{:.3g}"))

PHASE_NOTE = ('<p class="small muted">energy_kj is raw (as the meter reported it, integrated at its full rate); '
              'energy_1hz_kj is the same window re-integrated from one reading a second (where the two differ, '
              'the sampling rate matters); calibrated_energy_kj applies the calibration profile named above '
              '(empty when uncalibrated). Calibrated and raw figures are never averaged together.</p>')


def _phase_table(phases: pd.DataFrame) -> str:
    if phases.empty:
        return '<p class="muted">no phases or energy recorded</p>'
    head = "".join("<th>{}</th>".format(_e(c)) for c, _ in PHASE_COLUMNS)
    body = []
    for row in phases.to_dict("records"):
        body.append("<tr>{}</tr>".format("".join(
            '<td class="num">{}</td>'.format(_fmt(row.get(c), spec)) if spec else
            "<td>{}</td>".format("" if _missing(row.get(c)) else _e(row.get(c))) for c, spec in PHASE_COLUMNS)))
    return "<table><tr>{}</tr>{}</table>".format(head, "".join(body))


def _run_section(run: Run, info: dict, phases: pd.DataFrame, plots: Dict[str, List[str]], out_dir: str) -> str:
    status = '<span class="{}">{}</span>'.format("" if run.complete else "bad", _e(run.status))
    head = '<section class="run" id="run-{}"><h3>{} &mdash; {}</h3>'.format(_e(_safe(run.run_id)), _e(run.run_id),
                                                                           status)
    facts = [("method", info.get("method")), ("model", info.get("model")), ("dataset", info.get("dataset")),
             ("prune ratio", info.get("ratio")), ("test accuracy", info.get("test_acc")),
             ("training PFLOPs", info.get("train_pflops_total")),
             ("training energy (kJ)", info.get("energy_kj_train_total")), ("energy", info.get("energy_label")),
             ("board", info.get("board_id")), ("power mode", info.get("power_mode")),
             ("calibration", run.config.get("calibration") or "uncalibrated"),
             ("settings key", info.get("settings_key")), ("directory", run.path)]
    parts = [head, _kv((k, "" if _missing(v) else v) for k, v in facts)]
    flags = (run.summary or {}).get("flags") or []
    flags = (flags if isinstance(flags, list) else [flags]) + list(run.notes)
    if run.missing:
        flags.append("missing files: " + ", ".join(run.missing))
    if flags:
        parts.append('<ul class="flags">{}</ul>'.format("".join("<li>{}</li>".format(_e(f)) for f in flags)))
    notes = (run.summary or {}).get("notes") or []
    if isinstance(notes, list) and notes:  # expected, not a weaker number: not in red
        parts.append('<ul class="notes">{}</ul>'.format("".join("<li>{}</li>".format(_e(n)) for n in notes)))
    files = [name for name in RUN_FILES + ("masks.npz",) if os.path.isfile(run.file(name))]
    parts.append('<p>Files: {}</p>'.format(", ".join(
        '<a href="{}">{}</a>'.format(_href(out_dir, run.file(n)), _e(n)) for n in files) or "none"))
    parts.append(_figures(plots, "h4"))
    parts.append("<details open><summary>Energy per phase, meter and rail</summary>{}{}</details>"
                 .format(_phase_table(phases), PHASE_NOTE))
    parts.append("<details><summary>Settings</summary>{}</details>".format(_kv(sorted(run.settings.items()))))
    board = run.config.get("board") or {}
    parts.append("<details><summary>Board state</summary>{}</details>".format(
        _kv(sorted(board.items()) if isinstance(board, dict) else [("board", board)])))
    meters = run.config.get("meters") or []
    parts.append("<details><summary>Meters</summary>{}</details>".format(
        _kv(enumerate(meters) if isinstance(meters, list) else [("meters", meters)])))
    versions = run.config.get("versions") or {}
    parts.append("<details><summary>Versions</summary>{}</details>".format(
        _kv(sorted(versions.items()) if isinstance(versions, dict) else [("versions", versions)])))
    return "\n".join(parts) + "</section>"


def render(result, out_dir: str, report_files: Sequence[str], generated: Optional[float] = None) -> str:
    """The page for a ReportResult whose CSVs and plots are already in out_dir."""
    svgs = [f for f in result.files if f.endswith(".svg")]
    names = set(result.runs_df.get("model", [])) | set(result.runs_df.get("dataset", []))
    figures, per_run = group_plots(svgs, result.runs, [str(n) for n in names])
    complete = sum(1 for r in result.runs if r.complete)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() if generated is None else generated))
    links = ", ".join('<a href="{}">{}</a>'.format(_href(out_dir, f), _e(os.path.basename(f))) for f in report_files)
    infos = {r["run_id"]: r for r in result.runs_df.to_dict("records")} if not result.runs_df.empty else {}
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="{}">'.format(CSP),
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>ebedge report</title><style>{}</style></head><body>".format(CSS),
             "<h1>ebedge report</h1>",
             '<p>{} runs ({} complete, {} not), written {} by ebedge {}. Tables: {}.</p>'.format(
                 len(result.runs), complete, len(result.runs) - complete, _e(when), _e(__version__), links)]
    if result.answers:  # the answer first: what the runs show, one sentence per comparison
        parts.append('<ul id="answer">{}</ul>'.format("".join("<li>{}</li>".format(_e(a)) for a in result.answers)))
    if result.warnings:
        parts.append('<ul class="flags">{}</ul>'.format("".join("<li>{}</li>".format(_e(w)) for w in result.warnings)))
    if result.notes:
        parts.append("<ul>{}</ul>".format("".join("<li>{}</li>".format(_e(n)) for n in result.notes)))
    parts += ['<h2 id="table">Accuracy, energy and FLOPs (paper Table 2 shape)</h2>', _table2(result.table_df), _draws(result.draws_df)]
    if "state" in result.tradeoff_df and result.tradeoff_df["state"].nunique() > 1:
        parts += ['<h2 id="tradeoff">Energy, time and accuracy across power modes</h2>', _tradeoff(result.tradeoff_df)]
    parts += [
              '<h2 id="figures">Figures</h2>', _figures(figures) or '<p class="muted">none drawn</p>',
              '<h2 id="runs">Runs</h2>']
    if result.runs:
        parts.append("<p>{}</p>".format(" ".join('<a href="#run-{}">{}</a>'.format(_e(_safe(r.run_id)), _e(r.run_id))
                                                   for r in result.runs)))
    for run in result.runs:
        phases = result.phases_df[result.phases_df["run_id"] == run.run_id]
        parts.append(_run_section(run, infos.get(run.run_id, {}), phases, per_run.get(run.run_id, {}), out_dir))
    parts.append(qualification.render(result.qualifications))
    parts.append("</body></html>")
    return "\n".join(parts)
