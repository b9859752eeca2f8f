"""`ebedge remote qualify`: qualify a board's meter against a reference on the laptop.

The board runs the protocol's loads and samples its own meter (`ebedge agent qualify`); the laptop
records the reference and measures the clock offset over the same connection, exactly as for a
run with `--meter-local` (ebedge.remote.run.LaptopRecorder). Afterwards the board's samples and
windows are pulled (checked like a collected run: regular files only, a size cap), the laptop's
samples are placed on the board's clocks (ebedge.remote.align.on_board_clock), and both meters are
integrated per window by the same analysis as a local qualification; the reference appears as
`<name>@laptop`. What the board sends is data: its samples of any other meter are dropped, its
windows are checked, and an answer that is no qualification is refused in one line.

The connection must last the protocol: the board's command is not detached (it ends by itself,
loads stopped, when its time is up).
"""
import json
import os
import threading
import time

from ebedge.errors import EbedgeError
from ebedge.measure import accounting, calibration, qualify
from ebedge.remote import align
from ebedge.remote.run import MAX_BYTES, STALL_S, LaptopRecorder, LocalMeterSpec, check_tree
from ebedge.remote.clock import FLAG as CLOCK_FLAG

BOARD_DIR = "board"  # the board's files, as pulled
CLOCK_PERIOD_S = 10.0
ANSWER_MARGIN_S = 300.0
PROGRESS_S = 30.0  # how often the laptop says the board is still at it  # beyond the protocol's length: meters starting, files written


def qualify_remote(board, meter, reference, out_dir, windows=qualify.DEFAULT_WINDOWS,
                   window_s=qualify.DEFAULT_WINDOW_S, settle_s=None, meter_options=None,
                   reference_port=None, reference_options=None, meter_rail=None,
                   reference_rail=None, tolerance_pct=qualify.DEFAULT_TOLERANCE_PCT,
                   progress=None, max_bytes=MAX_BYTES, stall_s=STALL_S,
                   clock_period_s=CLOCK_PERIOD_S):
    """Qualify `meter` on `board` (a remote.board.Board) against the laptop meter `reference`;
    the board chooses its load levels (its cores, its GPU if any). Returns the result
    dict (see ebedge.measure.qualify.analyse) with "host", "clock" and "board" added, also
    written to `out_dir`/qualification.json."""
    progress = progress or (lambda text: None)
    if os.path.exists(os.path.join(out_dir, "qualification.json")):
        raise EbedgeError("%s already holds a qualification; choose another --out" % out_dir)
    # the longest the board's protocol can be (with a GPU level); also checks the numbers
    longest = qualify.Protocol(qualify.default_levels(2, True), windows, window_s, settle_s)
    board.conn.connect()
    qid = time.strftime("%Y%m%d-%H%M%S-") + meter
    recorder = LaptopRecorder(board, out_dir, LocalMeterSpec(reference, reference_port,
                                                             reference_options),
                              clock_period_s, progress)
    answer = None
    recorder.start()
    ticker = _Ticker(lambda s: progress("%s: qualification running, %.0f of at most %.0f s"
                                        % (board.host, s, longest.duration_s())))
    try:
        progress("%s: qualifying %s against %s on this laptop, at most %.0f s"
                 % (board.host, meter, reference, longest.duration_s()))
        answer = board.agent(["qualify", "--meter", meter, "--windows", str(longest.windows),
                              "--window-s", repr(longest.window_s), "--settle-s",
                              repr(longest.settle_s), "--id", qid],
                             input_text=json.dumps(meter_options or {}),
                             timeout=longest.duration_s() + ANSWER_MARGIN_S)
    finally:
        ticker.stop()
        recorder.stop(answer is not None)
    answer = _checked(answer, board.host)
    stage = os.path.join(out_dir, BOARD_DIR)
    what = "%s sent for qualification %s" % (board.host, qid)
    notes = board.conn.pull(answer["out"], stage, max_file_bytes=max_bytes, stall_s=stall_s)
    check_tree(stage, max_bytes, what)
    phases = os.path.join(stage, "phases.csv")
    windows = qualify.read_windows(phases)
    model = align.clock_model(_read_json(os.path.join(out_dir, align.LAPTOP, "clock.json")))
    shift = align.board_wall_minus_mono(phases)
    if model is None or shift is None:
        raise EbedgeError("%s: the clock offset to %s was never measured (or its windows carry "
                          "no wall time): the laptop's reference cannot be placed on the board's "
                          "windows" % (what, board.host))
    samples = [s for s in accounting.read_samples(os.path.join(stage, "samples.csv"))
               if s.meter == meter]
    samples += align.on_board_clock(
        accounting.read_samples(os.path.join(out_dir, align.LAPTOP, "samples.csv")), model, shift)
    result = qualify.analyse(samples, windows, meter, reference + align.SUFFIX, meter_rail,
                             reference_rail, tolerance_pct, out_dir=out_dir)
    result.update(host=board.host, clock=model.as_dict(), board=answer["board"],
                  protocol=answer["protocol"], meters=answer["meters"] + [recorder.meter.describe()])
    result["warnings"] += ["meter error: %s" % e for e in answer["errors"]]
    result["warnings"] += ["%s: %s" % (board.host, n) for n in notes]
    if model.bound_s > result["clock"]["bound_limit_s"]:
        result["warnings"].append(CLOCK_FLAG)
    qualify.write_result(out_dir, result)
    return result


class _Ticker(object):
    """Calls `say(seconds elapsed)` every `period_s` from a thread until stopped: the board's
    side says nothing until its protocol ends, minutes later."""

    def __init__(self, say, period_s=PROGRESS_S):
        self._done = threading.Event()
        started = time.monotonic()

        def loop():
            while not self._done.wait(period_s):
                say(time.monotonic() - started)
        self._thread = threading.Thread(target=loop, name="qualify-progress")
        self._thread.daemon = True
        self._thread.start()

    def stop(self):
        self._done.set()
        self._thread.join()


def _checked(answer, host):
    """The agent's answer when it has the shape of one; EbedgeError (one line) otherwise."""
    ok = (isinstance(answer, dict) and isinstance(answer.get("out"), str)
          and answer["out"].startswith("/") and isinstance(answer.get("protocol"), dict)
          and isinstance(answer.get("meters"), list)
          and all(isinstance(m, dict) for m in answer["meters"])
          and isinstance(answer.get("errors"), list)
          and all(isinstance(e, str) for e in answer["errors"])
          and isinstance(answer.get("board"), dict)
          and all(isinstance(v, (str, type(None))) for v in answer["board"].values()))
    if not ok:
        raise EbedgeError("%s answered the qualification with something that is not one; refused"
                          % host)
    return answer


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_on_board(board, result):
    """Store the fit as the board's calibration profile (where its runs look); the path there."""
    calibration.check_saveable(result)
    answer = board.agent(["calibrate"], input_text=json.dumps(
        calibration.make_profile(result, result["board"])), root=False)
    if not isinstance(answer, dict) or not isinstance(answer.get("path"), str):
        raise EbedgeError("%s answered the calibration with something that is no path"
                          % board.host)
    return answer["path"]
