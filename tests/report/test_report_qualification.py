"""The report's meter-qualification page: found under the inputs, shown per window with the fit and
verdict, hostile files escaped or skipped with a warning."""
import json
import os

import pytest

from ebedge.measure import qualify
from meters.base import Sample, TOTAL

pytestmark = pytest.mark.host  # the report is host side (pandas)


def _qualification(out_dir, meter="onboard"):
    windows = []
    t = 1.0
    for level in ("idle", "cpu_1", "cpu_all"):
        for k in range(3):
            windows.append(qualify.Window(level, k, t, t + 1.0))
            t += 1.5
    watts = {"idle": 3.0, "cpu_1": 4.5, "cpu_all": 9.0}

    def wall(x):
        return next((watts[w.level] for w in windows if w.t_start - 0.25 <= x <= w.t_end + 0.25), 3.0)
    samples = [Sample(i / 20.0, 0.0, "ref", TOTAL, wall(i / 20.0)) for i in range(int(t * 20) + 20)]
    samples += [Sample(i / 20.0, 0.0, meter, TOTAL, (wall(i / 20.0) - 1.0) / 1.1)
                for i in range(int(t * 20) + 20)]
    os.makedirs(out_dir)
    result = qualify.analyse(samples, windows, meter, "ref", out_dir=out_dir)
    qualify.write_result(out_dir, result)
    return result


def test_report_shows_each_qualification_with_fit_and_verdict(tmp_path):
    from ebedge.report.build import build_report
    _qualification(str(tmp_path / "in" / "q1"), meter="<b>onboard</b>")
    bad = tmp_path / "in" / "q2"
    bad.mkdir()
    (bad / "qualification.json").write_text('{"meter": "x", "fit": {}}')
    result = build_report([str(tmp_path / "in")], str(tmp_path / "report"))
    page = open(str(tmp_path / "report" / "index.html"), encoding="utf-8").read()
    assert "Meter qualification" in page and "pass after calibration" in page
    assert "&lt;b&gt;onboard&lt;/b&gt;" in page and "<b>onboard</b>" not in page
    assert "1.10000" in page  # the fitted gain
    assert page.count("<td>cpu_all</td>") == 3
    assert any("q2" in w and "skipped" in w for w in result.warnings)
    assert not any("not a run directory" in w and "q1" in w for w in result.warnings)
    doc = json.load(open(str(tmp_path / "report" / "report.json")))
    (q,) = doc["qualifications"]
    assert q["fit"]["gain"] == pytest.approx(1.1)


def test_a_runs_expected_notes_are_shown_apart_from_its_red_flags(tmp_path):
    from ebedge.report.build import build_report
    run = tmp_path / "in" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run_id": "r1", "settings": {"method": "eb"},
                                                 "calibration": {"ina3221": "tx2-a-ina3221"}}))
    (run / "summary.json").write_text(json.dumps({
        "status": "complete", "method": "eb", "flags": ["low coverage: x"],
        "notes": ["note: prune lasted 0.02s, under 20 periods of model (0.20s): expected"]}))
    build_report([str(tmp_path / "in")], str(tmp_path / "report"))
    page = open(str(tmp_path / "report" / "index.html"), encoding="utf-8").read()
    flags = page.split('<ul class="flags">')[1].split("</ul>")[0]
    notes = page.split('<ul class="notes">')[1].split("</ul>")[0]
    assert "low coverage" in flags and "prune lasted" not in flags
    assert "prune lasted 0.02s" in notes
    assert "tx2-a-ina3221" in page  # the run names its calibration
