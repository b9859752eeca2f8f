"""Phase accounting that matches the paper: energy of training = search + prune + retrain.

Reads a run directory's `phases.csv` and `samples.csv` (so a resumed run counts the samples
written before it was interrupted), integrates every meter and rail per phase with
`ebedge.measure.energy`, subtracts idle power, and writes `energy.csv`. Evaluation passes are their
own phase, `eval`, excluded from `train_total` unless the settings ask otherwise. Work lost to a
crash (phase `lost`, see ebedge.run.resume) is its own row too, never inside `train_total`.
Monotonic time is per boot: every window is integrated over its own boot's samples, and idle
power comes from the idle windows of the same boot.
"""
import csv
import math
import os

from ebedge.measure import calibration as calibrated, energy
from ebedge.config.formats import ENERGY_COLUMNS, IDLE_PHASES, TRAIN_PHASES
from ebedge.util.safeio import csv_bytes, write_atomic
from meters.base import TOTAL, Sample

MIN_PERIODS_PER_WINDOW = 20  # a window shorter than this many sample periods has coarse energy


def _float(value):
    return float(value) if value not in ("", None) else None


def _boot(row):
    return row.get("boot_id") or ""


def read_phases(path):
    """(phase, epoch, t_start_mono, t_end_mono, boot_id) per row of phases.csv (boot_id "" for
    runs written before it was recorded)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows.append((row["phase"], row["epoch"], float(row["t_start_mono"]),
                             float(row["t_end_mono"]), _boot(row)))
            except (KeyError, TypeError, ValueError):
                continue  # a row cut short by a crash
    return rows


def read_samples(path, by_boot=False):
    """The samples of samples.csv: a list, or with `by_boot` {boot_id: [Sample]}."""
    samples = {}
    if not os.path.exists(path):
        return samples if by_boot else []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                sample = Sample(float(row["t_mono"]), float(row["t_wall"]), row["meter"],
                                row["rail"], _float(row["power_w"]), _float(row["voltage_v"]),
                                _float(row["current_a"]), _float(row["meter_energy_j"]),
                                [x for x in row["flags"].split("|") if x])
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if not (math.isfinite(sample.t_mono) and math.isfinite(sample.t_wall)):
                continue  # a time that is no time (a corrupt or hostile file) places nothing
            samples.setdefault(_boot(row), []).append(sample)
    if by_boot:
        return samples
    return [s for boot in samples for s in samples[boot]]


def _idle_power(samples, phases):
    """{(meter, rail, boot): watts} averaged over each boot's own idle windows."""
    idle = [(a, b, boot) for name, _, a, b, boot in phases if name in IDLE_PHASES]
    out = {}
    for boot in sorted({w[2] for w in idle}):
        windows = [("idle", None, a, b, boot) for a, b, bt in idle if bt == boot]
        for r in energy.by_phase(samples, windows):
            if r["avg_power_w"] is not None:
                out[(r["meter"], r["rail"], boot)] = r["avg_power_w"]
    return out or None


def _with_boots(phases, samples):
    """Phases as 5-tuples and samples as {boot: [Sample]}. Samples without a boot id (a list,
    or rows written before it was recorded) belong to the run's boot when it had only one."""
    phases = [tuple(p) + ("",) * (5 - len(p)) for p in phases]
    if not isinstance(samples, dict):
        samples = {"": list(samples)}
    boots = {p[4] for p in phases}
    if "" in samples and len(boots) == 1 and "" not in boots:
        only = boots.pop()
        samples = dict(samples)
        samples[only] = samples.get(only, []) + samples.pop("")
    return phases, samples


def energy_rows(run_id, phases, samples, include_eval=False, meter_methods=None, calibration=None):
    """energy.csv rows: every phase, plus `train_total` and `run_total` (per boot, from its
    first to its last mark). `samples`: a list, or {boot_id: [Sample]} (read_samples).
    `calibration`: config.json's `calibration_profiles`, for `calibrated_energy_j`."""
    phases, samples = _with_boots(phases, samples)
    counted = TRAIN_PHASES + (("eval",) if include_eval else ())
    windows = list(phases)
    windows += [("train_total", e, a, b, boot) for name, e, a, b, boot in phases
                if name in counted]
    for boot in sorted({p[4] for p in phases}):
        marks = [p for p in phases if p[4] == boot]
        windows.append(("run_total", None, min(p[2] for p in marks), max(p[3] for p in marks),
                        boot))
    rows = energy.by_phase(samples, windows, idle_power_w=_idle_power(samples, phases),
                           run_id=run_id, method=meter_methods)
    return calibrated.apply(rows, calibration)


def write_energy_csv(path, rows):
    write_atomic(path, lambda f: f.write(csv_bytes(ENERGY_COLUMNS, rows)))


def headline(rows, meter_order, train_flops_total):
    """The summary's energy block: one meter (the first that produced a total), kJ per phase (raw;
    `calibrated_kj` beside it where a calibration profile applied, else None)."""
    by_meter = {}
    for r in rows:
        by_meter.setdefault(r["meter"], {}).setdefault(r["rail"], {})[r["phase"]] = r
    for meter in meter_order:
        rails = by_meter.get(meter)
        if not rails:
            continue
        rail = TOTAL if TOTAL in rails else sorted(rails)[0]
        phases = rails[rail]
        first = next(iter(phases.values()))
        kj = {p: r["energy_kj"] for p, r in phases.items()}
        net = {p: (r["net_energy_j"] / 1000.0 if r["net_energy_j"] is not None else None)
               for p, r in phases.items()}
        train_j = phases["train_total"]["energy_j"] if "train_total" in phases else None
        cal = {p: r["calibrated_energy_j"] / 1000.0 for p, r in phases.items()
               if r.get("calibrated_energy_j") is not None}
        return {"meter": meter, "rail": rail, "method": first["method"], "kj": kj, "net_kj": net,
                "calibrated_kj": cal or None,
                "idle_power_w": first["idle_power_w"],
                "covered_frac": {p: r["covered_frac"] for p, r in phases.items()},
                "j_per_train_gflop": (train_j / (train_flops_total / 1e9)
                                      if train_j is not None and train_flops_total else None)}
    return None


def short_window_warning(name, duration_s, meter, period_s):
    """A warning when window `name` spans fewer than 20 periods of `meter`, else None."""
    if period_s and duration_s < MIN_PERIODS_PER_WINDOW * period_s:
        return "warning: %s lasted %.2fs, under %d periods of %s (%.2fs)" % (
            name, duration_s, MIN_PERIODS_PER_WINDOW, meter, period_s)
    return None
