"""A meter on the laptop, and folding its samples into the board's run directory.

While a remote run goes, the laptop records a local meter into `<local run>/laptop/samples.csv`
(laptop clocks) and the clock estimates into `laptop/clock.json`. After every pull from the board
`merge_laptop` rebuilds the run's files from those two plus what the board wrote, so collecting
again (the board's files replace ours) is harmless:

- samples.csv gets the laptop samples as meter `<name>@laptop`, their times mapped onto the
  BOARD's clocks: t_wall = the board's wall time at that instant (clock model), and t_mono = that
  minus the board's wall-minus-monotonic difference read from its own phases.csv. So both meters
  share one time axis and the ordinary accounting integrates both per phase;
- energy.csv is recomputed for every meter with ebedge.measure.accounting (ebedge.measure.energy.by_phase);
- config.json gets "clock": {offset_s, bound_s, drift, ...} and the laptop meter's description;
- summary.json gets "energy_compare" (board meter and laptop meter per phase, with their ratio
  and each meter's covered fraction; the ratio is null, and a flag says why, where either meter
  covered less than COVERAGE_MIN of the phase), the laptop meter as the headline when the board
  had none, the bound flag, and board_id = the host alias the run was started on (the board's
  own hostname stays in board_hostname).

Every file written here goes through a fresh temporary file (ebedge.util.safeio: O_EXCL|O_NOFOLLOW),
since the directory holds what a board sent.
"""
import csv
import math
import os

from ebedge.config.flags import Flag, add, restore, store, without
from ebedge.measure import accounting
from ebedge.util import safeio
from ebedge.errors import EbedgeError
from ebedge.remote import tree
from ebedge.remote.clock import FLAG, ClockModel
from ebedge.util.safeio import CsvLog, read_json
from ebedge.measure.sampling import MeterSampler
from meters.base import SAMPLE_COLUMNS, TOTAL, Sample

LAPTOP = "laptop"
SUFFIX = "@laptop"
COVERAGE_MIN = 0.95  # below this covered fraction of a phase a meter's joules are not compared
COVERAGE_FLAG = "laptop_meter_partial_coverage"
CLOCK_UNKNOWN_FLAG = "clock_offset_unknown"


class LaptopMeter(object):
    """Records one local meter into a CSV file (flushed every drain) for the life of a run."""

    def __init__(self, name, path, port=None, options=None):
        self.name = name
        self.options = dict(options or {})
        if port:
            self.options["port"] = port
        self.path = path
        self.meter = None
        self._sampler = None
        self._log = None

    def start(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._log = CsvLog(self.path, SAMPLE_COLUMNS)
        try:
            self._sampler = MeterSampler([self.name], self._write, {self.name: self.options})
        except EbedgeError as exc:
            self._log.close()
            raise EbedgeError("laptop meter %s: %s" % (self.name, exc))
        self.meter = self._sampler.meters[0]
        self._sampler.start()
        return self

    def _write(self, samples):
        self._log.write([["" if v is None else v for v in s.as_row()] for s in samples])

    @property
    def tail_s(self):
        """How long to keep recording after the run ends: two sample periods and a margin."""
        return 2.0 * self.meter.interval_s + 0.5

    def describe(self):
        facts = self.meter.describe()
        facts.update(name=self.meter.name + SUFFIX, driver=self.meter.name, where=LAPTOP)
        return facts

    def stop(self):
        """Stop and flush; returns the reader's error (or None)."""
        errors = self._sampler.stop()
        self._log.close()
        return "; ".join(errors) or None


def write_clock(local_dir, estimates, meter_facts=None):
    path = os.path.join(local_dir, LAPTOP, "clock.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    safeio.write_json(path, {"estimates": list(estimates), "meter": meter_facts})


def board_wall_minus_mono(path):
    """The board's wall - monotonic difference, from its phase marks (median over marks)."""
    diffs = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                diffs.append(float(row["t_start_wall"]) - float(row["t_start_mono"]))
            except (KeyError, TypeError, ValueError):
                continue
    if not diffs:
        return None
    diffs.sort()
    return diffs[len(diffs) // 2]


def _rewrite_samples(path, run_id, mapped):
    """samples.csv = the board's rows (earlier merges' laptop rows dropped) + `mapped`."""
    from ebedge.config.formats import SAMPLE_COLUMNS as RUN_COLUMNS
    kept = []
    if os.path.exists(path):
        with open(path, newline="") as f:
            kept = [r for r in csv.DictReader(f) if not (r.get("meter") or "").endswith(SUFFIX)]
    with safeio.atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RUN_COLUMNS)
        writer.writerows([r.get(c, "") for c in RUN_COLUMNS] for r in kept)
        writer.writerows([run_id] + ["" if v is None else v for v in s.as_row()] for s in mapped)


def clock_model(clock_doc):
    """The clock model from the laptop's estimates, or None when there is none with finite
    numbers (a board that answered the probe with `nan`)."""
    estimates = [e for e in clock_doc.get("estimates") or [] if isinstance(e, dict) and all(
        isinstance(e.get(k), (int, float)) and math.isfinite(e[k])
        for k in ("t_mono", "offset_mono_s", "bound_s", "laptop_wall_minus_mono"))]
    if not estimates:
        return None
    model = ClockModel(estimates)
    return model if all(math.isfinite(x) for x in (model.offset_ref, model.drift,
                                                     model.bound_s)) else None


def on_board_clock(laptop_samples, model, wall_minus_mono):
    """The laptop's samples as meter `<name>@laptop` on the board's clocks (see the module
    docstring): `model` maps laptop monotonic time to board wall time, `wall_minus_mono` is the
    board's own wall - monotonic difference."""
    mapped = []
    for s in laptop_samples:
        wall = model.board_wall(s.t_mono)
        mapped.append(Sample(wall - wall_minus_mono, wall, s.meter + SUFFIX, s.rail, s.power_w,
                             s.voltage_v, s.current_a, s.meter_energy_j, s.flags))
    return mapped


def refuse_laptop_files(stage):
    """Remove what the board sent in the laptop's own places (`laptop/`, `@laptop` sample rows);
    [warning naming each]. Called before the laptop's own recordings are put back."""
    notes = []
    top = os.path.join(stage, LAPTOP)
    if os.path.lexists(top):
        sent = sorted(rel for rel, _ in tree.walk(top)) if os.path.isdir(top) else []
        notes.append("refused %s: the laptop's own recordings are written by the laptop only"
                     % (", ".join(os.path.join(LAPTOP, r) for r in sent[:5]) or LAPTOP)
                     + (" (and %d more)" % (len(sent) - 5) if len(sent) > 5 else ""))
        tree.remove(top)
    path = os.path.join(stage, "samples.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            forged = any((r.get("meter") or "").endswith(SUFFIX) for r in csv.DictReader(f))
        if forged:
            with open(path, newline="") as f, safeio.atomic_write(path, newline="") as out:
                reader = csv.reader(f)
                header = next(reader, [])
                column = header.index("meter") if "meter" in header else None
                writer = csv.writer(out)
                writer.writerow(header)
                writer.writerows(r for r in reader if column is None or len(r) <= column
                                 or not r[column].endswith(SUFFIX))
            notes.append("refused samples.csv rows of meters named *%s: only the laptop "
                         "records those" % SUFFIX)
    return notes


def merge_laptop(local_dir, host_alias=None):
    """Fold laptop samples and the clock into the collected run; returns the summary (or None)."""
    config_path = os.path.join(local_dir, "config.json")
    summary_path = os.path.join(local_dir, "summary.json")
    clock_path = os.path.join(local_dir, LAPTOP, "clock.json")
    if not os.path.exists(config_path):
        return None
    config = read_json(config_path)
    summary = read_json(summary_path) if os.path.exists(summary_path) else {}
    run_id = config.get("run_id") or os.path.basename(os.path.normpath(local_dir))
    if host_alias:
        if summary.get("board_id") != host_alias:
            summary.setdefault("board_hostname", summary.get("board_id"))
        summary["board_id"] = host_alias
    laptop_csv = os.path.join(local_dir, LAPTOP, "samples.csv")
    phases_path = os.path.join(local_dir, "phases.csv")
    if os.path.exists(clock_path) and os.path.exists(laptop_csv) and os.path.exists(phases_path):
        clock_doc = read_json(clock_path)
        model = clock_model(clock_doc)
        shift = board_wall_minus_mono(phases_path)
        flags = without(restore(summary), ("clock_unknown",))
        if model is None:
            flags.append(Flag("clock_unknown", "%s: the board's clock offset was never measured "
                              "as a finite number; the laptop meter is not aligned to this run"
                              % CLOCK_UNKNOWN_FLAG))
        store(summary, flags)
        if model is not None and shift is not None:
            mapped = on_board_clock(accounting.read_samples(laptop_csv), model, shift)
            _rewrite_samples(os.path.join(local_dir, "samples.csv"), run_id, mapped)
            config["clock"] = model.as_dict()
            facts = clock_doc.get("meter")
            if facts and facts["name"] not in [m.get("name") for m in config.get("meters", [])]:
                config.setdefault("meters", []).append(facts)
            safeio.write_json(config_path, config)
            summary = _energy(local_dir, config, summary, run_id)
            if model.bound_s > config["clock"]["bound_limit_s"]:
                flags = restore(summary)
                add(flags, Flag("clock_bound", FLAG, value=model.bound_s))
                store(summary, flags)
    if summary:
        safeio.write_json(summary_path, summary)
    return summary


def _energy(local_dir, config, summary, run_id):
    """energy.csv for every meter (board and laptop) and the side-by-side comparison."""
    settings = config.get("settings", {})
    phases = accounting.read_phases(os.path.join(local_dir, "phases.csv"))
    samples = accounting.read_samples(os.path.join(local_dir, "samples.csv"))
    rows = accounting.energy_rows(run_id, phases, samples,
                                  include_eval=settings.get("include_eval_in_total", False),
                                  calibration=config.get("calibration_profiles"))
    accounting.write_energy_csv(os.path.join(local_dir, "energy.csv"), rows)
    totals = {}
    for r in rows:
        if r["rail"] == TOTAL:
            totals.setdefault(r["meter"], {})[r["phase"]] = r
    laptop = sorted(m for m in totals if m.endswith(SUFFIX))
    board = sorted(m for m in totals if not m.endswith(SUFFIX))
    flags = without(restore(summary), ("laptop_coverage",))
    if laptop and board:
        compare = compare_meters(totals[board[0]], totals[laptop[0]])
        summary["energy_compare"] = {"board_meter": board[0], "laptop_meter": laptop[0],
                                     "coverage_min": COVERAGE_MIN, "phases": compare}
        partial = ["%s %.0f%%" % (p, 100 * c["laptop_covered_frac"])
                   for p, c in sorted(compare.items()) if c["laptop_covered_frac"] < COVERAGE_MIN]
        if partial:
            flags.append(Flag("laptop_coverage", "%s: %s covered under %.0f%% of %s; those ratios "
                              "are null" % (COVERAGE_FLAG, laptop[0], 100 * COVERAGE_MIN,
                                            ", ".join(partial)), meter=laptop[0]))
    store(summary, flags)
    if laptop and not summary.get("energy"):
        summary["energy"] = accounting.headline(rows, laptop, summary.get("train_flops_total"))
    return summary


def compare_meters(board_rows, laptop_rows):
    """{phase: board_kj, laptop_kj, their covered fractions, ratio_laptop_to_board}; kJ is null
    where a meter saw nothing of the phase, the ratio null unless both covered COVERAGE_MIN."""
    out = {}
    for phase in sorted(set(board_rows) | set(laptop_rows)):
        b, l = board_rows.get(phase), laptop_rows.get(phase)
        b_cov = b["covered_frac"] if b else 0.0
        l_cov = l["covered_frac"] if l else 0.0
        b_kj = b["energy_kj"] if b and b_cov > 0 else None
        l_kj = l["energy_kj"] if l and l_cov > 0 else None
        ok = b_cov >= COVERAGE_MIN and l_cov >= COVERAGE_MIN and b_kj
        out[phase] = {"board_kj": b_kj, "laptop_kj": l_kj, "board_covered_frac": b_cov,
                      "laptop_covered_frac": l_cov,
                      "ratio_laptop_to_board": l_kj / b_kj if ok and l_kj is not None else None}
    return out
