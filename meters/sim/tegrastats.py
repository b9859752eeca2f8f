"""A fake `tegrastats --interval MS` whose board total follows a PowerProfile.

Run through `meters/sim/bin/tegrastats`. Settings come from the environment, because the meter
starts it exactly as it would start the real one:
  EBEDGE_SIM_PROFILE  profile spec (see meters/sim/profile.py); default: PowerProfile.default()
  EBEDGE_SIM_T0       host CLOCK_MONOTONIC at sim time 0 (system-wide on Linux, so the test that
                      set it knows the truth); default: when this process started
  EBEDGE_SIM_BOARD    tx2 (JetPack 4, L4T 32 lines), orin-nano or agx-orin / orin (JetPack 6,
                      date prefix, mW units); default tx2
  EBEDGE_SIM_DROP     fraction of lines silently not printed (lost records)
  EBEDGE_SIM_GARBAGE  fraction of lines replaced by garbage
  EBEDGE_SIM_SEED     random seed for the two faults (default 1)
  EBEDGE_SIM_FREEZE   sim seconds after which every line repeats the last readings, as when
                      the sensors hang while tegrastats goes on printing (default: never)
Readings carry one mW of alternating noise, as a real sensor's last digit does, so a steady
load never reads as a frozen sensor.
Runs on Python 3.6 with the standard library only.
"""
import os
import random
import sys
import time

from meters.sim import registry
from meters.sim.profile import PowerProfile

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "tegrastats")

# board -> (date prefix?, unit suffix, head text, temperatures, [(rail, share of P)]).
# The shares of the rails forming the board's total (meters.boards) add up to 1.
_BOARDS = {
    "tx2": (False, "",
            "RAM 2344/7852MB (lfb 1154x4MB) SWAP 0/3926MB (cached 0MB) "
            "CPU [1%@345,off,off,1%@345,0%@345,2%@345] EMC_FREQ 4%@1600 GR3D_FREQ 0%@624 APE 150",
            "PLL@37.5C MCPU@37.5C PMIC@100C Tboard@32C GPU@35C BCPU@37.5C thermal@36.5C "
            "Tdiode@34.25C",
            [("VDD_SYS_GPU", 0.05), ("VDD_SYS_SOC", 0.22), ("VDD_4V0_WIFI", 0.0), ("VDD_IN", 1.0),
             ("VDD_SYS_CPU", 0.05), ("VDD_SYS_DDR", 0.29)]),
    "orin-nano": (True, "mW",
                  "RAM 775/7620MB (lfb 3x4MB) SWAP 0/3810MB (cached 0MB) "
                  "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729] GR3D_FREQ 0%",
                  "cpu@48.468C soc2@47.531C soc0@48.062C gpu@48.562C tj@49.156C soc1@49.156C",
                  [("VDD_IN", 1.0), ("VDD_CPU_GPU_CV", 0.11), ("VDD_SOC", 0.3)]),
    "agx-orin": (True, "mW",
                 "RAM 1282/62795MB (lfb 15152x4MB) SWAP 0/31398MB (cached 0MB) "
                 "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
                 "EMC_FREQ 0%@2133 GR3D_FREQ 0%@0 VIC_FREQ 729 APE 174",
                 "CPU@42.593C Tboard@32C SOC2@39.343C Tdiode@33.25C SOC0@39.375C tj@42.593C",
                 [("VDD_GPU_SOC", 0.35), ("VDD_CPU_CV", 0.15), ("VIN_SYS_5V0", 0.5),
                  ("VDDQ_VDD2_1V8AO", 0.05)]),
}
_BOARDS["orin"] = _BOARDS["agx-orin"]
BOARDS = sorted(_BOARDS)

USAGE = ("Usage: tegrastats [-option]\nOptions:\n  --help\n  --interval <millisec>\n"
         "  --verbose\n(ebedge simulator: --start/--stop/--logfile are not simulated)\n")


class LineMaker(object):
    """Formats one board's lines, keeping tegrastats' since-start averages for realism."""

    def __init__(self, board, profile):
        if board not in _BOARDS:
            raise ValueError("unknown EBEDGE_SIM_BOARD %r; choose from %s"
                             % (board, ", ".join(BOARDS)))
        self.dated, self.unit, self.head, self.temps, self.rails = _BOARDS[board]
        self.profile = profile
        self._sums = [0] * len(self.rails)
        self._count = 0

    def line(self, t, wall=None):
        p_mw = self.profile.power(t) * 1000.0
        self._count += 1
        lsb = 1 if self._count % 2 else -1
        tokens = []
        for i, (rail, share) in enumerate(self.rails):
            cur = max(0, int(round(share * p_mw)) + lsb)
            self._sums[i] += cur
            avg = self._sums[i] // self._count
            tokens.append("%s %d%s/%d%s" % (rail, cur, self.unit, avg, self.unit))
        text = "%s %s %s" % (self.head, self.temps, " ".join(tokens))
        if self.dated:
            text = time.strftime("%m-%d-%Y %H:%M:%S ", time.localtime(wall or time.time())) + text
        return text


def parse_args(argv):
    """Interval in seconds from `--interval MS`; SystemExit(1) with usage otherwise."""
    interval_ms = 1000
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--interval" and args:
            try:
                interval_ms = int(args.pop(0))
            except ValueError:
                interval_ms = 0
            if interval_ms <= 0:
                sys.stderr.write("tegrastats: bad interval\n" + USAGE)
                raise SystemExit(1)
        elif a == "--verbose":
            continue
        elif a == "--help":
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        else:
            sys.stderr.write("tegrastats: unknown option %s\n%s" % (a, USAGE))
            raise SystemExit(1)
    return interval_ms / 1000.0


def main(argv=None, env=None):
    env = os.environ if env is None else env
    interval = parse_args(sys.argv[1:] if argv is None else argv)
    spec = env.get("EBEDGE_SIM_PROFILE")
    profile = PowerProfile.parse(spec) if spec else PowerProfile.default()
    t0 = float(env.get("EBEDGE_SIM_T0") or time.monotonic())
    maker = LineMaker(env.get("EBEDGE_SIM_BOARD", "tx2"), profile)
    drop = float(env.get("EBEDGE_SIM_DROP") or 0)
    garbage = float(env.get("EBEDGE_SIM_GARBAGE") or 0)
    rng = random.Random(int(env.get("EBEDGE_SIM_SEED") or 1))
    freeze = float(env.get("EBEDGE_SIM_FREEZE") or "inf")
    last = None
    out = sys.stdout
    next_t = time.monotonic() + interval  # the first line comes one interval after launch
    try:
        while True:
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            next_t += interval
            r = rng.random()
            if r < drop:
                continue
            if r < drop + garbage:
                out.write("@@ garbled \x7f%d\n" % rng.randint(0, 10 ** 6))
            else:
                if last is None or now - t0 < freeze:
                    last = maker.line(now - t0)
                out.write(last + "\n")
            out.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


def profile_spec(profile):
    """The spec string of a PowerProfile (exact floats), for EBEDGE_SIM_PROFILE."""
    return ",".join("%r-%r:%r" % seg for seg in profile.segments)


def sim_env(profile, board="tx2", t0=None, drop=0.0, garbage=0.0, seed=1, freeze=None):
    """Environment variables that make `BIN` follow `profile` from host monotonic time t0
    (until sim second `freeze`, when given)."""
    if board not in _BOARDS:
        raise ValueError("unknown tegrastats sim board %r; choose from %s"
                         % (board, ", ".join(BOARDS)))
    return {"EBEDGE_SIM_PROFILE": profile_spec(profile), "EBEDGE_SIM_BOARD": board,
            "EBEDGE_SIM_T0": repr(time.monotonic() if t0 is None else float(t0)),
            "EBEDGE_SIM_DROP": repr(float(drop)), "EBEDGE_SIM_GARBAGE": repr(float(garbage)),
            "EBEDGE_SIM_SEED": str(int(seed)),
            "EBEDGE_SIM_FREEZE": repr(float(freeze)) if freeze is not None else ""}


class _Instructions(object):
    """What `meters simulate tegrastats` hands out: the executable and its environment."""

    runs = False

    def __init__(self, env):
        self.info = [("executable", BIN)] + sorted(env.items()) + [
            ("use", "env %s ebedge meters record --meter tegrastats --option executable=%s" % (
                " ".join("%s=%s" % kv for kv in sorted(env.items())), BIN))]

    def stop(self):
        pass


@registry.starter("tegrastats")
def _start(profile, board="tx2", drop=0.0, garbage=0.0, seed=1):
    return _Instructions(sim_env(profile, board, drop=drop, garbage=garbage, seed=seed))
