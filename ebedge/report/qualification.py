"""The report's page on meter qualifications: every `qualification.json` under the report's
inputs (written by `ebedge meters qualify`), as a table per window, the fit and the verdict.

A qualification file is data from wherever it came: read with a size bound, checked for the
fields the page shows, escaped on the way out; a file that fails is a warning, not an error."""
import html
import json
import os
from typing import List, Sequence, Tuple

MARKER = "qualification.json"
MAX_BYTES = 4 * 1024 * 1024


def find(paths: Sequence[str], skip: Sequence[str] = ()) -> Tuple[List[Tuple[str, dict]], List[str]]:
    """([(path, result)], [warning]) for every qualification.json under `paths`."""
    found, warnings = [], []
    skipped = {os.path.realpath(p) for p in skip}
    for top in paths:
        for directory, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(directory, d)) not in skipped)
            if MARKER in files:
                path = os.path.join(directory, MARKER)
                try:
                    found.append((path, _load(path)))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    warnings.append("qualification {} skipped: {}".format(path, exc))
    return found, warnings


def _load(path: str) -> dict:
    if os.path.getsize(path) > MAX_BYTES:
        raise ValueError("larger than {} bytes".format(MAX_BYTES))
    with open(path) as f:
        result = json.load(f)
    for key in ("meter", "reference", "verdict"):
        str(result[key])
    for key in ("gain", "offset_w", "gain_ci95", "offset_w_ci95", "residual_w"):
        float(result["fit"][key])
    for w in result["windows"]:
        str(w["level"]), int(w["window"])
    return result


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _n(value, spec="{:.4g}") -> str:
    try:
        return _e(spec.format(float(value)))
    except (TypeError, ValueError):
        return "&ndash;"


def render(found: Sequence[Tuple[str, dict]]) -> str:
    """The report section: one block per qualification."""
    if not found:
        return ""
    parts = ['<h2 id="qualification">Meter qualification</h2>',
             '<p class="small muted">Each meter against its reference under loads ebedge makes '
             '(idle, one core, all cores, GPU where present, a step), integrated per window by the '
             'same code as a run\'s phases. Error = meter / reference &minus; 1; calibrated error '
             'applies the fitted map P_ref = gain &times; P_meter + offset. The verdict uses the '
             'steady windows.</p>']
    for path, r in found:
        fit = r["fit"]
        bad = r["verdict"] == "fail"
        parts.append('<h3>{} against {}: <span class="{}">{}</span></h3>'.format(
            _e(r["meter"]), _e(r["reference"]), "bad" if bad else "", _e(r["verdict"])))
        parts.append("<p>P_ref = {} (&plusmn; {}) &times; P_meter {} {} (&plusmn; {}) W; residual {} W; "
                     "tolerance {} %; worst steady error {} % raw, {} % calibrated; step {} % calibrated."
                     " <code>{}</code></p>".format(
                         _n(fit["gain"], "{:.5f}"), _n(fit["gain_ci95"], "{:.2g}"),
                         "+" if float(fit["offset_w"]) >= 0 else "&minus;",
                         _n(abs(float(fit["offset_w"])), "{:.4f}"), _n(fit["offset_w_ci95"], "{:.2g}"),
                         _n(fit["residual_w"], "{:.3g}"), _n(r.get("tolerance_pct")),
                         _n(r.get("max_error_pct"), "{:.3f}"), _n(r.get("max_calibrated_error_pct"), "{:.3f}"),
                         _n(r.get("step_max_calibrated_error_pct"), "{:.3f}"), _e(path)))
        sim = r.get("simulated")
        if isinstance(sim, dict):
            parts.append("<p>Simulated board {}: true gain {}, offset {} W; recovered gain off by {} %, "
                         "offset by {} W.</p>".format(_e(sim.get("board")), _n(sim.get("gain")),
                                                     _n(sim.get("offset_w")), _n(sim.get("gain_error_pct"), "{:.3f}"),
                                                     _n(sim.get("offset_error_w"), "{:.3g}")))
        rates = r.get("rates") if isinstance(r.get("rates"), dict) else {}
        parts.append("<p>{}</p>".format("; ".join(
            "{} / {}: {} samples/s, {} distinct readings/s".format(
                _e(name), _e(v.get("rail")), _n(v.get("sample_hz"), "{:.3g}"), _n(v.get("update_hz"), "{:.3g}"))
            for name, v in sorted(rates.items()) if isinstance(v, dict))))
        rows = "".join("<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td>"
                       "<td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>".format(
                           _e(w["level"]), _e(int(w["window"])), _n(w.get("meter_j")), _n(w.get("reference_j")),
                           _n(w.get("ratio"), "{:.4f}"), _n(w.get("error_pct"), "{:+.3f}"),
                           _n(w.get("calibrated_error_pct"), "{:+.3f}")) for w in r["windows"])
        parts.append("<table><tr><th>level</th><th>window</th><th>meter J</th><th>reference J</th>"
                     "<th>ratio</th><th>error %</th><th>calibrated error %</th></tr>{}</table>".format(rows))
        warnings = r.get("warnings") if isinstance(r.get("warnings"), list) else []
        if warnings:
            parts.append('<ul class="flags">{}</ul>'.format("".join("<li>{}</li>".format(_e(w)) for w in warnings)))
    return "\n".join(parts)
