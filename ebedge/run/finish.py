"""After the method: energy per phase (energy.csv) and the final summary, from what the run's
files hold (also after an interruption or a crash), with the flags derived from them, and the
same figures to the trackers."""
import os

from ebedge.config.flags import DERIVED, Flag, add, without
from ebedge.config.formats import IDLE_PHASES, LOST
from ebedge.errors import EbedgeError
from ebedge.measure import accounting
from ebedge.run import resume as resuming
from ebedge.run.rundir import disk_full, read_json
from ebedge.training import lowp
from ebedge.run.nodes import node_energy
from meters.base import TOTAL

NO_ENERGY_NOTE = "no energy measured: meters set to none (--meter none)"


def finish(rundir, settings, summary, sampler, nodes=(), sinks=None):
    """energy.csv and the final summary, from what the files hold (also after an interruption),
    and the same figures to the trackers in `sinks`.

    A full disk may stop energy.csv; the summary (small) is still attempted, so the run ends
    `failed: disk full (...)` instead of `running`. A run that failed before it wrote its
    config.json (data that cannot load, a refused power mode) gets its summary alone, saying why."""
    flags = summary["flags"]
    if os.path.exists(rundir.file("config.json")):
        try:
            rundir.close()
            rows = _energy_summary(rundir, settings, summary, sampler, nodes)
            if sinks is not None:
                _send(sinks, rows, summary)
        except (OSError, EbedgeError) as exc:
            full = disk_full(exc) or (exc if isinstance(exc, EbedgeError) else None)
            if full is None:
                raise
            if summary["status"] in ("running", "complete"):
                summary["status"] = "failed: %s" % full
            add(flags, Flag("energy_not_written", "energy.csv not written: %s" % full))
    rundir.write_summary(summary)  # also for a start that failed before its config.json: why
    if sinks is not None:
        sinks.close()
    rundir.close()
    if rundir.write_error is not None and summary["status"] == "complete":
        summary["status"] = "failed: %s" % rundir.write_error
        rundir.write_summary(summary)


def _energy_summary(rundir, settings, summary, sampler, nodes=()):
    phases = accounting.read_phases(rundir.file("phases.csv"))
    samples = accounting.read_samples(rundir.file("samples.csv"), by_boot=True)
    rows = accounting.energy_rows(rundir.run_id, phases, samples,
                                  include_eval=settings.include_eval_in_total,
                                  calibration=_applied_calibration(rundir))
    names = [m.name for m in sampler.meters] if sampler is not None else []
    rows += node_energy(rundir, nodes, rows, names, settings.include_eval_in_total)
    accounting.write_energy_csv(rundir.file("energy.csv"), rows)
    summary["phase_seconds"] = _phase_seconds(phases)
    summary["energy"] = accounting.headline(rows, names, summary.get("train_flops_total"))
    if not settings.meters:
        add(summary["flags"], Flag("no_energy", NO_ENERGY_NOTE))
    if summary.get("lowp_bits"):  # eb-lf / eb-ll: the 8-bit estimate, labelled modelled
        summary["modelled_energy"] = lowp.modelled_energy(summary)
    # derived from the files: recomputed each time, so an earlier process's view goes away
    summary["flags"][:] = without(summary["flags"], DERIVED)
    short, summary["notes"] = _short_windows(rows, sampler)
    for message in ([resuming.lost_flag(phases)] + short
                    + _coverage_flags(rows, settings.min_coverage)
                    + _idle_flags(rows, phases)):
        if message is None:
            continue
        add(summary["flags"], message)
    return rows


def _send(sinks, rows, summary):
    """Each phase's energy on the headline meter (its total rail and every rail), then the
    summary; a tracker that failed is named in the flags."""
    from ebedge.export.trackers import WindowRecord
    headline = summary.get("energy") or {}
    meter, rail = headline.get("meter"), headline.get("rail")
    for r in rows:
        if r["meter"] == meter and r["rail"] == rail:
            rails = dict((x["rail"], x["energy_j"]) for x in rows
                         if x["meter"] == meter and x["phase"] == r["phase"])
            sinks.window(WindowRecord(r["phase"], r["duration_s"], meter, r["method"],
                                      r["energy_j"], r["avg_power_w"], r["net_energy_j"], rails,
                                      [f for f in (r["flags"] or "").split("|") if f]))
    sinks.summary(summary)
    for message in sinks.flags:
        add(summary["flags"], Flag("tracker_dropped", message))


def _applied_calibration(rundir):
    """config.json's `calibration_profiles` (None where the file or the key is missing)."""
    path = rundir.file("config.json")
    return read_json(path).get("calibration_profiles") if os.path.exists(path) else None


def _phase_seconds(phases):
    """Seconds per phase name from the rows energy.csv integrates (`lost` among them)."""
    out = {}
    for name, _, a, b, _ in phases:
        out[name] = out.get(name, 0.0) + (b - a)
    return out


def _coverage_flags(rows, min_coverage):
    """A meter's total that saw less than `min_coverage` of a phase (gaps, read errors)."""
    return [Flag("low_coverage", "low coverage: %s covered %.1f%% of %s (below %.0f%%; see "
                 "energy.csv covered_frac)" % (r["meter"], 100 * r["covered_frac"], r["phase"],
                                               100 * min_coverage),
                 phase=r["phase"], meter=r["meter"], value=r["covered_frac"])
            for r in rows if r["rail"] == TOTAL and r["duration_s"] > 0
            and r["covered_frac"] < min_coverage]


def _idle_flags(rows, phases):
    """Net energy that could not be computed because a boot had no idle window of its own."""
    if not any(name in IDLE_PHASES for name, _, _, _, _ in phases):
        return []
    return [Flag("idle_missing", "idle power missing for part of %s (%s): no idle window on its "
                 "boot; net energy left empty" % (r["phase"], r["meter"]),
                 phase=r["phase"], meter=r["meter"])
            for r in rows if r["rail"] == TOTAL and r["net_energy_j"] is None
            and r["phase"] != LOST and r["duration_s"] > 0 and r["covered_frac"] > 0]


# Phases that take a moment by nature: a short window there is expected, a note, not a warning.
INSTANT_PHASES = {"prune": "pruning takes a moment"}


def _short_windows(rows, sampler):
    """(warnings, notes) where a phase window holds fewer than 20 sample periods (its energy is
    coarse): a note for a phase that is short by nature, a warning for any other."""
    if sampler is None:
        return [], []
    periods = {m.name: m.interval_s for m in sampler.meters}
    warnings, notes = [], []
    for row in rows:
        if row["rail"] == "total" and row["phase"] not in ("train_total", "run_total"):
            warning = accounting.short_window_warning(row["phase"], row["duration_s"],
                                                      row["meter"], periods.get(row["meter"]))
            if warning and row["phase"] in INSTANT_PHASES:
                notes.append("note: %s: expected, %s; its energy is coarse (compare energy_1hz_j)"
                             % (warning[len("warning: "):], INSTANT_PHASES[row["phase"]]))
            elif warning:
                warnings.append(Flag("short_window", warning, phase=row["phase"],
                                     meter=row["meter"], value=row["duration_s"]))
    return warnings, notes
