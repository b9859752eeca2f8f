"""What `ebedge meters qualify` and `ebedge remote qualify` share: the protocol's options and the
printed result (kept below both command groups, so neither imports the other)."""
import click

from ebedge.measure import qualify


def protocol_options(fn):
    """The two meters' options and rails; --quick, --windows, --window-s, --settle-s,
    --tolerance: the protocol's shape."""
    for option in reversed([
            click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                         help="Option of the meter, e.g. root=/tmp/sys."),
            click.option("--reference-option", "ref_options", multiple=True, metavar="KEY=VALUE",
                         help="Option of the reference, e.g. port=/dev/ttyUSB0."),
            click.option("--rail", default=None, help="The meter's rail (default: its total)."),
            click.option("--reference-rail", default=None,
                         help="The reference's rail (default: total)."),
            click.option("--quick", is_flag=True, help="5 windows of 10 s per level."),
            click.option("--windows", type=int, default=qualify.DEFAULT_WINDOWS,
                         show_default=True, help="Windows per load level."),
            click.option("--window-s", type=float, default=None,
                         help="Seconds per window (default 60, 10 with --quick)."),
            click.option("--settle-s", type=float, default=None,
                         help="Seconds a level settles before its first window "
                              "(default: half a window, at most 5)."),
            click.option("--tolerance", type=float, default=qualify.DEFAULT_TOLERANCE_PCT,
                         show_default=True, help="Verdict tolerance, percent.")]):
        fn = option(fn)
    return fn


def window_seconds(quick, window_s):
    """--window-s, or the default for --quick or not."""
    return window_s or (qualify.QUICK_WINDOW_S if quick else qualify.DEFAULT_WINDOW_S)


def _pct(x):
    return "-" if x is None else "%+.2f%%" % x


def print_qualification(result, clean=lambda text: text):
    """The per-window table, the fit, the rates, the warnings and the verdict; every line goes
    through `clean` (a board's text is made printable by `ebedge remote`)."""
    def say(text, err=False):
        click.echo(clean(text), err=err)

    say("%-8s %3s %12s %12s %8s %9s %9s" % (
        "level", "win", "meter J", "reference J", "ratio", "error", "cal.err"))
    for w in result["windows"]:
        say("%-8s %3d %12.3f %12.3f %8s %9s %9s" % (
            w["level"], w["window"], w["meter_j"], w["reference_j"],
            "-" if w["ratio"] is None else "%.4f" % w["ratio"], _pct(w["error_pct"]),
            _pct(w["calibrated_error_pct"])))
    fit = result["fit"]
    say("fit: P_ref = %.4f (+/- %.4f) x P_meter %+.3f (+/- %.3f) W; residual %.4f W"
        % (fit["gain"], fit["gain_ci95"], fit["offset_w"], fit["offset_w_ci95"],
           fit["residual_w"]))
    for name, r in sorted(result["rates"].items()):
        say("%s/%s: %s samples/s, %s distinct readings/s" % (
            name, r["rail"], _rate(r["sample_hz"]), _rate(r["update_hz"])))
    sim = result.get("simulated")
    if sim:
        say("simulated gain %.4f, offset %.3f W: recovered gain off by %s, offset by %s"
            % (sim["gain"], sim["offset_w"], _pct(sim["gain_error_pct"]),
               _pct(sim["offset_error_pct"])))
    for w in result["warnings"]:
        say(w, err=True)
    say("verdict: %s (tolerance %.2f%%, worst steady |error| %s raw, %s calibrated)" % (
        result["verdict"], result["tolerance_pct"], _abs_pct(result["max_error_pct"]),
        _abs_pct(result["max_calibrated_error_pct"])))


def _abs_pct(x):
    return "-" if x is None else "%.2f%%" % x


def _rate(x):
    return "-" if x is None else "%.3g" % x
