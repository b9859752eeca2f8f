"""`ebedge meters qualify --simulate`: the whole protocol on a simulated board (a fake INA3221
sysfs tree) against a simulated reference (a Yokogawa WT310E on a pty), both following one wall
profile built from the protocol's schedule; the board's rail reads it through a known gain and
offset (PowerProfile.onboard), which the fit must recover."""
import shutil
import tempfile

from ebedge.measure import qualify
from meters.sim.profile import PowerProfile
from meters.sim.scpi_sim import YokogawaSimulator
from meters.sim.sysfs import BOARDS, FakeIna3221Tree

SIM_CORES = 4
IDLE_W = 3.0
CORE_W = 1.5
GPU_W = 5.0
REFERENCE_INTERVAL_S = 0.1  # the WT310E's fastest update
TAIL_S = 3600.0  # idle after the schedule, so the periodic profile never wraps during a run


def identity(board):
    """The calibration identity of a simulated board (never one of the real boards')."""
    return {"model": BOARDS[board][1] + " (simulated)", "serial": None,
            "hostname": "simulated-" + board, "l4t": None, "power_mode": None}


def wall_watts(load):
    """The simulated board's wall power under a load: idle plus each spinning core and the GPU."""
    return IDLE_W + CORE_W * load.cpu_cores + (GPU_W if load.gpu else 0.0)


def wall_profile(protocol, lead_in_s):
    """The wall power the simulated board draws while `protocol` runs from sim time lead_in_s."""
    segments = [(IDLE_W, IDLE_W, lead_in_s)]
    for _, seconds, load, _, _ in protocol.stretches():
        w = wall_watts(load)
        segments.append((w, w, seconds))
    segments.append((IDLE_W, IDLE_W, TAIL_S))
    return PowerProfile(segments)


def simulate(protocol, gain=1.0, offset_w=0.0, board="tx2", out_dir=None,
             tolerance_pct=qualify.DEFAULT_TOLERANCE_PCT, lead_in_s=2.0, meter_interval_s=None):
    """Qualify the `ina3221` meter of a simulated `board` against a simulated `scpi` reference;
    the result gains `simulated` (the true gain and offset, and the fit's error against them)."""
    wall = wall_profile(protocol, lead_in_s)
    onboard = wall.onboard(gain, offset_w)  # ValueError for an offset above the idle power
    root = tempfile.mkdtemp(prefix="ebedge-qualify-sim-")
    ref = YokogawaSimulator(wall).start()
    tree = None
    try:
        tree = FakeIna3221Tree(root, board, onboard, t0=ref.t0).start()
        meter_opts = {"root": root}
        if meter_interval_s is not None:
            meter_opts["interval_s"] = meter_interval_s
        options = {"ina3221": meter_opts,
                   "scpi": {"port": ref.path, "profile": "yokogawa",
                            "interval_s": REFERENCE_INTERVAL_S}}
        result = qualify.qualify("ina3221", "scpi", protocol, options,
                                 tolerance_pct=tolerance_pct, out_dir=out_dir,
                                 start_load=lambda spec: None, t0=ref.t0 + lead_in_s)
    finally:
        if tree is not None:
            tree.close()
        ref.stop()
        shutil.rmtree(root, ignore_errors=True)
    fit = result["fit"]
    result["simulated"] = {
        "board": board, "gain": gain, "offset_w": offset_w,
        "gain_error_pct": 100.0 * (fit["gain"] / gain - 1.0),
        "offset_error_pct": (100.0 * (fit["offset_w"] / offset_w - 1.0) if offset_w else None),
        "offset_error_w": fit["offset_w"] - offset_w}
    if out_dir is not None:
        qualify.write_result(out_dir, result)
    return result
