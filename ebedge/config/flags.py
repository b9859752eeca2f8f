"""Run flags as data: each says what kind of thing it reports, where (phase, meter) and the
figure it is about (value), and reads as its sentence.

A `Flag` is a str, its sentence, so summaries, tables and terminals show it unchanged; it also
carries `kind`, `phase`, `meter` and `value`, so code that drops, replaces or counts flags decides
by kind, never by matching words. summary.json keeps the sentences under `flags` and the records
under `flag_records` (`store`); `restore` reads them back, and the sentences of a summary written
without records (or with records that do not match them) come back as kind `note`.
"""

# kind -> what it reports
KINDS = {
    "low_coverage": "a meter saw less than min_coverage of a phase",
    "idle_missing": "no idle window on a boot, so net energy is left empty",
    "lost_work": "work done before a crash and redone after the resume",
    "short_window": "a phase window shorter than 20 sample periods: its energy is coarse",
    "no_ticket": "no Early-Bird ticket within the schedule",
    "no_energy": "no meter: no energy measured",
    "energy_not_written": "energy.csv could not be written",
    "meter_error": "a meter failed during the run",
    "board_changed": "power mode or clocks changed mid-run",
    "throttled": "thermal throttling seen at phase marks",
    "board_not_restored": "the power mode or clocks could not be put back",
    "board_warning": "a board condition that may skew the run (clocks, boot id, cooldown)",
    "calibration": "a calibration profile that was not applied",
    "power_mode": "what switching the power mode did",
    "tracker_dropped": "an experiment tracker failed and was dropped",
    "resume": "what a resume found (a killed run, an unreadable summary)",
    "clock_unknown": "the board's clock offset was never measured",
    "clock_bound": "the board's clock offset is known only loosely",
    "laptop_coverage": "the laptop meter covered too little of a phase for a ratio",
    "board_value_refused": "a value the board sent was refused at collect",
    "note": "anything else a reader must know",
}
# computed from the run's files at every finish: dropped and computed again
DERIVED = frozenset(("low_coverage", "idle_missing", "lost_work", "short_window"))


class Flag(str):
    """A flag: its sentence, with `kind` (one of KINDS), `phase`, `meter` and `value`."""

    def __new__(cls, kind, text, phase=None, meter=None, value=None):
        if kind not in KINDS:
            raise ValueError("unknown flag kind %r; known: %s" % (kind, ", ".join(sorted(KINDS))))
        self = str.__new__(cls, text)
        self.kind, self.phase, self.meter, self.value = kind, phase, meter, value
        return self

    def __reduce__(self):  # copies and pickles keep the record
        return (Flag, (self.kind, str(self), self.phase, self.meter, self.value))

    def record(self):
        return {"kind": self.kind, "text": str(self), "phase": self.phase, "meter": self.meter,
                "value": self.value}


def kind_of(flag):
    """The kind of `flag` (a plain sentence is a `note`)."""
    return getattr(flag, "kind", "note")


def add(flags, flag):
    """Append `flag` to the list `flags` unless its sentence is there already."""
    if flag not in flags:
        flags.append(flag)


def without(flags, kinds):
    """`flags` less those of the given kinds."""
    return [f for f in flags if kind_of(f) not in kinds]


def store(summary, flags):
    """Put `flags` in `summary`: sentences under `flags`, records under `flag_records`."""
    summary["flags"] = [str(f) for f in flags]
    summary["flag_records"] = [f.record() if isinstance(f, Flag) else Flag("note", f).record()
                               for f in flags]
    return summary


def restore(summary):
    """The Flags of a summary (a list; empty where it has none)."""
    texts = summary.get("flags") if isinstance(summary, dict) else None
    texts = [t for t in texts if isinstance(t, str)] if isinstance(texts, list) else []
    records = summary.get("flag_records") if isinstance(summary, dict) else None
    if isinstance(records, list) and len(records) == len(texts):
        try:
            out = [Flag(r["kind"] if r["kind"] in KINDS else "note", r["text"], r.get("phase"),
                        r.get("meter"), r.get("value")) for r in records]
        except (TypeError, KeyError, AttributeError):
            out = None
        if out is not None and [str(f) for f in out] == texts:
            return out
    return [Flag("note", t) for t in texts]
