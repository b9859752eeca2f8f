"""Before a run resumes: decide what its files say was committed, and what was lost.

The last checkpoint is the commit point. Phase rows (and epochs.csv rows) written after it
describe work that the resumed run does again, so they are relabelled `lost` (their energy is real and is reported
apart, never inside `train_total`); the time between the last row and the killed process's last
sign of life (heartbeat, last sample) becomes one more `lost` row. The killed process's runtime
is counted from its heartbeat, on its own boot's monotonic clock.
"""
import csv
import io
import os

from ebedge.config.flags import Flag
from ebedge.config.formats import EPOCH_COLUMNS, IDLE_PHASES, LOST, PHASE_COLUMNS
from ebedge.run.rundir import read_heartbeat, read_phase_rows
from ebedge.util.safeio import csv_bytes, write_atomic

SAMPLE_TAIL_BYTES = 1 << 16  # the killed process's last samples are at the end of samples.csv


def lost_flag(phases):
    """The summary flag for `lost` rows among phases.csv 5-tuples (None when there are none);
    derived from the file, so every finish states all the work lost so far."""
    lost = [p for p in phases if p[0] == LOST]
    if not lost:
        return None
    epochs = sorted({str(p[1]) for p in lost if p[1] not in ("", None)}, key=int)
    seconds = sum(p[3] - p[2] for p in lost)
    return Flag("lost_work", "lost work: %.2f s (%d phase row(s)%s) done before the run stopped "
                "and redone after the resume; reported as phase `lost`, not in train_total"
                % (seconds, len(lost), (", epoch(s) " + ",".join(epochs)) if epochs else ""),
                phase=LOST, value=seconds)


class Settlement(object):
    """What a resume found beyond the files: the runtime of a killed process, and flags."""

    def __init__(self, killed_runtime_s, flags):
        self.killed_runtime_s = killed_runtime_s
        self.flags = flags


def _float(row, key):
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def committed_rows(rows, checkpoint):
    """How many leading rows of phases.csv the checkpoint accounts for."""
    if checkpoint is None:
        return 0
    n = int(checkpoint.get("phase_rows", len(rows)))
    own = checkpoint.get("own_phase_start")
    if own is not None and n < len(rows):  # the row of the phase that saved the checkpoint
        row = rows[n]
        start = _float(row, "t_start_mono")
        if (row.get("boot_id") or "") == (checkpoint.get("boot_id") or "") \
                and start is not None and abs(start - own) < 5e-6:
            n += 1
    return min(n, len(rows))


def _last_sample_mono(path, boot):
    """t_mono of the newest sample of `boot` in the tail of samples.csv (None if none)."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace")
        size = os.fstat(f.fileno()).st_size
        f.seek(max(f.tell(), size - SAMPLE_TAIL_BYTES))
        tail = f.read().decode("utf-8", "replace")
    lines = tail.split("\n")[1:] if size > SAMPLE_TAIL_BYTES else tail.split("\n")
    newest = None
    for row in csv.DictReader(io.StringIO(header + "\n".join(lines))):
        t = _float(row, "t_mono")
        if t is not None and (row.get("boot_id") or "") == boot:
            newest = t if newest is None else max(newest, t)
    return newest


def settle(run_path, checkpoint, previous_status):
    """Relabel lost work in `run_path`/phases.csv (rewritten atomically) and return a
    Settlement. `previous_status`: the summary's status ("running" means the process died
    without finishing its files: killed, or the power went)."""
    phases_path = os.path.join(run_path, "phases.csv")
    rows = read_phase_rows(phases_path)
    keep = committed_rows(rows, checkpoint)
    lost = []
    for row in rows[keep:]:
        if row.get("phase") not in IDLE_PHASES and row.get("phase") != LOST:
            row["phase"] = LOST
            lost.append(row)
    flags = []
    killed_runtime = 0.0
    if previous_status == "running":
        tail, killed_runtime, flag = _killed_tail(run_path, rows, checkpoint)
        if tail is not None:
            rows.append(tail)
            lost.append(tail)
        if flag:
            flags.append(Flag("resume", flag))
    if lost:
        write_atomic(phases_path, lambda f: f.write(csv_bytes(PHASE_COLUMNS, rows)))
    _relabel_lost_epochs(os.path.join(run_path, "epochs.csv"), checkpoint)
    return Settlement(killed_runtime, flags)


def _relabel_lost_epochs(path, checkpoint):
    """epochs.csv rows after the checkpoint (an epoch trained, but its checkpoint never
    written) get phase `lost`: the resumed run trains that epoch again."""
    if checkpoint is not None and "epoch_rows" not in checkpoint:
        return  # written by an older ebedge: it did not count
    rows = read_phase_rows(path)
    keep = checkpoint["epoch_rows"] if checkpoint is not None else 0
    changed = [r for r in rows[keep:] if r.get("phase") != LOST]
    for row in changed:
        row["phase"] = LOST
    if changed:
        write_atomic(path, lambda f: f.write(csv_bytes(EPOCH_COLUMNS, rows)))


def _killed_tail(run_path, rows, checkpoint):
    """(lost row or None, runtime of the killed process, flag or None) from its last signs of
    life, all on the killed process's own boot."""
    beat = read_heartbeat(os.path.join(run_path, "heartbeat"))
    if beat is None:
        return None, 0.0, ("runtime before the crash unknown (no heartbeat); runtime_s "
                           "counts only the time after it")
    beat_wall, beat_mono, boot, started = beat
    same_boot = [r for r in rows if (r.get("boot_id") or "") == boot]
    ends = [_float(r, "t_end_mono") for r in same_boot]
    ends = [t for t in ends if t is not None and t >= started]
    last_row_end = max(ends) if ends else started
    if checkpoint is not None and (checkpoint.get("boot_id") or "") == boot:
        last_row_end = max(last_row_end, checkpoint.get("own_phase_start") or started)
    sample = _last_sample_mono(os.path.join(run_path, "samples.csv"), boot)
    last_seen = max(t for t in (beat_mono, sample, last_row_end) if t is not None)
    tail = None
    if last_seen > last_row_end:
        shift = beat_wall - beat_mono
        tail = {"run_id": os.path.basename(os.path.normpath(run_path)), "phase": LOST, "epoch": "",
                "t_start_mono": "%.6f" % last_row_end, "t_end_mono": "%.6f" % last_seen,
                "t_start_wall": "%.6f" % (last_row_end + shift),
                "t_end_wall": "%.6f" % (last_seen + shift), "boot_id": boot}
    return tail, last_seen - started, None
