"""The run directory's file formats: CSV columns and phase names every writer and reader shares.

One place, so the runner, Monitor, the recording helper, DDP node directories, resume and the
report agree on what a row holds and what a phase is called.
"""

PHASE_COLUMNS = ("run_id", "phase", "epoch", "t_start_mono", "t_end_mono", "t_start_wall",
                 "t_end_wall", "boot_id")
EPOCH_COLUMNS = ("run_id", "phase", "epoch", "lr", "train_loss", "train_acc", "test_acc",
                 "seconds", "train_flops", "mask_distance")
SAMPLE_COLUMNS = ("run_id", "meter", "rail", "t_mono", "t_wall", "power_w", "voltage_v",
                  "current_a", "meter_energy_j", "flags", "boot_id")
ENERGY_COLUMNS = ("run_id", "phase", "meter", "rail", "method", "duration_s", "energy_j",
                  "energy_kj", "avg_power_w", "idle_power_w", "net_energy_j", "n_samples",
                  "rate_hz", "sensor_update_hz", "max_gap_s", "covered_frac", "uncertainty_pct",
                  "flags", "energy_1hz_j", "calibrated_energy_j")

TRAIN_PHASES = ("search", "prune", "retrain")  # together: training
IDLE_PHASES = ("idle_before", "idle_after")
LOST = "lost"  # phase name of work done before a crash and redone after the resume
