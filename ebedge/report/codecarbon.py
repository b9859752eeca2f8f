"""`emissions.csv` in CodeCarbon's columns, so dashboards that read CodeCarbon's output read ebedge runs.

One row per run with energy. CodeCarbon's units: duration in s, energy in kWh, emissions in kg CO2eq,
emissions_rate in kg/s. What ebedge does not know stays empty (CPU/GPU/RAM split, location, cloud);
emissions are filled only from a carbon intensity the user states, never from a guess. The energy is the
run's `run_total` window (idle windows included, as CodeCarbon tracks a whole process) on the run's
headline meter and rail. emissions.csv holds exactly CodeCarbon's columns: CodeCarbon's own FileOutput
backs up and replaces a file whose header differs from its EmissionsData. Which meter and rail, and
whether the energy was measured or modelled, is in `emissions_ebedge.csv` beside it (`run_id` + the
`ebedge_*` columns), one row per emissions.csv row.
"""
import datetime
import math
import os
from typing import List, Optional

import pandas as pd

from ebedge.report.runs import Run, _read_csv

CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue")
EBEDGE_COLUMNS = ("ebedge_energy_method", "ebedge_meter", "ebedge_rail", "ebedge_energy_window",
                  "ebedge_carbon_intensity_g_per_kwh")
J_PER_KWH = 3.6e6
WINDOWS = ("run_total", "train_total")


def _end_time(run: Run) -> Optional[str]:
    """The run's last phase end (wall clock, UTC) in CodeCarbon's timestamp format."""
    phases = _read_csv(run, "phases.csv")
    if phases is None or "t_end_wall" not in phases:
        return None
    end = pd.to_numeric(phases["t_end_wall"], errors="coerce").max()
    if not isinstance(end, float) or math.isnan(end):
        return None
    return datetime.datetime.fromtimestamp(end, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _window(phases_df: pd.DataFrame, run_id: str, meter, rail):
    """The energy.csv row of the run's widest window on its headline meter and rail, or None."""
    mine = phases_df[(phases_df["run_id"] == run_id) & (phases_df["meter"].astype(str) == str(meter))
                     & (phases_df["rail"].astype(str) == str(rail))]
    for window in WINDOWS:
        rows = mine[mine["phase"] == window]
        if not rows.empty and pd.notna(rows["energy_kj"].iloc[0]):
            return rows.iloc[0]
    return None


def emissions_frame(runs: List[Run], runs_df: pd.DataFrame, phases_df: pd.DataFrame,
                    carbon_intensity_g_per_kwh: Optional[float] = None) -> pd.DataFrame:
    """One CodeCarbon row per run that has a headline energy; emissions only with a stated intensity
    (g CO2eq/kWh, >= 0: build_report checks it before writing anything)."""
    by_id = {r.run_id: r for r in runs}
    rows = []
    for _, info in runs_df.iterrows():
        if info["energy_method"] in ("none", None):
            continue
        window = _window(phases_df, info["run_id"], info["energy_meter"], info["energy_rail"])
        if window is None:
            continue
        run = by_id[info["run_id"]]
        kwh = float(window["energy_kj"]) * 1e3 / J_PER_KWH
        duration = float(window["duration_s"])
        row = {c: None for c in CODECARBON_COLUMNS + EBEDGE_COLUMNS}
        row.update(timestamp=_end_time(run), project_name="ebedge", run_id=info["run_id"],
                   experiment_id=info["settings_key"], duration=duration, energy_consumed=kwh,
                   python_version=(run.config.get("versions") or {}).get("python"),
                   ebedge_energy_method=info["energy_method"], ebedge_meter=info["energy_meter"],
                   ebedge_rail=info["energy_rail"], ebedge_energy_window=window["phase"],
                   ebedge_carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh)
        if carbon_intensity_g_per_kwh is not None:
            row["emissions"] = kwh * carbon_intensity_g_per_kwh / 1e3
            row["emissions_rate"] = row["emissions"] / duration if duration > 0 else None
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CODECARBON_COLUMNS + EBEDGE_COLUMNS))


def write_emissions(frame: pd.DataFrame, out_dir: str) -> List[str]:
    """emissions.csv (CodeCarbon's columns only) and emissions_ebedge.csv (the labels); their paths."""
    paths = [os.path.join(out_dir, "emissions.csv"), os.path.join(out_dir, "emissions_ebedge.csv")]
    frame[list(CODECARBON_COLUMNS)].to_csv(paths[0], index=False, float_format="%.10g")
    frame[["run_id"] + list(EBEDGE_COLUMNS)].to_csv(paths[1], index=False, float_format="%.10g")
    return paths
