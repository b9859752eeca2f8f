"""Phase accounting that matches the paper: energy of training = search + prune + retrain.

Reads a run directory's `phases.csv` and `samples.csv` (so a resumed run counts the samples
written before it was interrupted), integrates every meter and rail per phase with
`ebedge.energy`, subtracts idle power, and writes `energy.csv`. Evaluation passes are their
own phase, `eval`, excluded from `train_total` unless the settings ask otherwise.
"""
import csv
import os

from ebedge import energy, safeio
from meters.base import TOTAL, Sample

TRAIN_PHASES = ("search", "prune", "retrain")
ENERGY_COLUMNS = energy.ENERGY_COLUMNS
MIN_PERIODS_PER_WINDOW = 20  # a window shorter than this many sample periods has coarse energy


def _float(value):
    return float(value) if value not in ("", None) else None


def read_phases(path):
    """(phase, epoch, t_start_mono, t_end_mono) per row of phases.csv."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows.append((row["phase"], row["epoch"], float(row["t_start_mono"]),
                             float(row["t_end_mono"])))
            except (KeyError, TypeError, ValueError):
                continue  # a row cut short by a crash
    return rows


def read_samples(path):
    samples = []
    if not os.path.exists(path):
        return samples
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                samples.append(Sample(float(row["t_mono"]), float(row["t_wall"]), row["meter"],
                                      row["rail"], _float(row["power_w"]), _float(row["voltage_v"]),
                                      _float(row["current_a"]), _float(row["meter_energy_j"]),
                                      [x for x in row["flags"].split("|") if x]))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
    return samples


def _idle_power(samples, phases):
    """{(meter, rail): watts} averaged over the idle windows before and after the run."""
    idle = [(a, b) for name, _, a, b in phases if name in ("idle_before", "idle_after")]
    if not idle:
        return None
    rows = energy.by_phase(samples, [("idle", None, a, b) for a, b in idle])
    return {(r["meter"], r["rail"]): r["avg_power_w"] for r in rows
            if r["avg_power_w"] is not None}


def energy_rows(run_id, phases, samples, include_eval=False, meter_methods=None):
    """energy.csv rows: every phase, plus `train_total` and `run_total`."""
    counted = TRAIN_PHASES + (("eval",) if include_eval else ())
    windows = list(phases)
    windows += [("train_total", e, a, b) for name, e, a, b in phases if name in counted]
    if phases:
        windows.append(("run_total", None, min(p[2] for p in phases), max(p[3] for p in phases)))
    return energy.by_phase(samples, windows, idle_power_w=_idle_power(samples, phases),
                           run_id=run_id, method=meter_methods)


def write_energy_csv(path, rows):
    with safeio.atomic_write(path, newline="") as f:  # a fresh temp file, never a planted link
        writer = csv.DictWriter(f, fieldnames=ENERGY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in ENERGY_COLUMNS})


def headline(rows, meter_order, train_flops_total):
    """The summary's energy block: one meter (the first that produced a total), kJ per phase."""
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
        return {"meter": meter, "rail": rail, "method": first["method"], "kj": kj, "net_kj": net,
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
