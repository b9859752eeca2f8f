"""Run flags are data: a kind, where they apply and a value, shown as their sentence; code
decides by kind, and summary.json keeps both the sentences and the records."""
import json
import os

import pytest

from ebedge.config.flags import DERIVED, Flag, add, kind_of, restore, store, without


def test_a_flag_reads_as_its_sentence_and_carries_its_record():
    f = Flag("low_coverage", "low coverage: ina3221 covered 80.0% of search", phase="search",
             meter="ina3221", value=0.8)
    assert f == "low coverage: ina3221 covered 80.0% of search" and isinstance(f, str)
    assert json.dumps([f]) == json.dumps([str(f)])  # files and terminals see the sentence
    assert f.record() == {"kind": "low_coverage", "text": str(f), "phase": "search",
                          "meter": "ina3221", "value": 0.8}
    assert kind_of(f) == "low_coverage" and kind_of("a plain sentence") == "note"
    with pytest.raises(ValueError):
        Flag("made_up", "x")


def test_summaries_keep_sentences_and_records_and_restore_the_kinds():
    flags = [Flag("no_ticket", "no ticket: ..."), "an older plain flag",
             Flag("lost_work", "lost work: 1.00 s", phase="lost", value=1.0)]
    add(flags, Flag("no_ticket", "no ticket: ..."))  # the same sentence once
    summary = json.loads(json.dumps(store({}, flags)))
    assert summary["flags"] == ["no ticket: ...", "an older plain flag", "lost work: 1.00 s"]
    back = restore(summary)
    assert [kind_of(f) for f in back] == ["no_ticket", "note", "lost_work"]
    assert back[2].value == 1.0
    assert [kind_of(f) for f in without(back, DERIVED)] == ["no_ticket", "note"]


@pytest.mark.parametrize("records", [
    None,  # written before records existed
    [{"kind": "no_ticket", "text": "another sentence"}],  # records that do not match the flags
    [{"kind": ["unhashable"], "text": "x"}],
    ["not a record"],
    [{"kind": "no_such_kind", "text": "x"}],
])
def test_missing_or_foreign_records_make_notes_of_the_sentences(records):
    summary = {"flags": ["x"], "flag_records": records}
    back = restore(summary)
    assert back == ["x"] and kind_of(back[0]) == "note"


def test_a_run_writes_typed_flags(tmp_path, one_thread):
    from ebedge.run.runner import execute
    out = str(tmp_path / "run")
    execute({"model": "vgg11", "width": 0.0625, "epochs": 1, "batch_size": 32, "limit_train": 64,
             "limit_test": 32, "device": "cpu", "method": "dense", "meters": [],
             "idle_seconds": 0}, out=out, quiet=True)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    kinds = {r["kind"]: r["text"] for r in summary["flag_records"]}
    assert "no_energy" in kinds and kinds["no_energy"] in summary["flags"]
    assert len(summary["flag_records"]) == len(summary["flags"])
