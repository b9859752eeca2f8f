"""`ebedge meters ...`: list, record, replay and simulate power meters (thin over the library)."""
import csv
import multiprocessing
import os
import sys
import time

import click

import meters
from ebedge.cli.options import parse_key_values
from ebedge.cli.qualification import print_qualification, protocol_options, window_seconds
from ebedge.errors import EbedgeError
from ebedge.measure import board, calibration, loads, qualify, qualify_sim, recording
from meters import tegrastats
from meters.base import TOTAL
from meters.sim import registry
from meters.sim.profile import PowerProfile


def _print_total(rows, out=None):
    total = [r for r in rows if r["rail"] == TOTAL]
    for r in total or rows:
        click.echo("%s %s/%s: %.3f J %s over %.3f s (%s W avg, covered %.1f%%, max gap %.3f s)" % (
            r["phase"], r["meter"], r["rail"], r["energy_j"], r["method"], r["duration_s"],
            "%.3f" % r["avg_power_w"] if r["avg_power_w"] is not None else "-",
            100 * r["covered_frac"], r["max_gap_s"]), file=out)


@click.group("meters")
def meters_group():
    """Power meters: what this machine has, recording, replaying logs, simulators."""


@meters_group.command("list")
def list_cmd():
    """Every known meter, whether this machine has it, and why not."""
    for name, ok, reason in meters.detect():
        click.echo("%-12s %-13s %s" % (name, "available" if ok else "unavailable", reason))


@meters_group.command("record", context_settings={"ignore_unknown_options": True})
@click.option("--meter", "meter_name", default=None, help="Driver name (default: best available).")
@click.option("--port", default=None, help="Serial device for external meters.")
@click.option("--interval", type=float, default=None, help="Sampling interval in seconds.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Driver option, e.g. root=/tmp/sys or executable=/path/tegrastats.")
@click.option("--duration", type=float, default=None, help="Record for this many seconds.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for samples.csv and energy.csv.")
@click.option("--run-id", default=None, help="run_id column (default: the --out folder name).")
@click.option("--prometheus-port", metavar="[ADDR:]PORT", default=None,
              help="Serve ebedge_power_watts and ebedge_energy_joules_total (Prometheus text "
                   "format) while recording; address 127.0.0.1 unless given.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def record_cmd(meter_name, port, interval, options, duration, out_dir, run_id, prometheus_port,
               command):
    """Sample a meter for --duration seconds or while COMMAND runs (after --)."""
    if (duration is None) == (not command):
        raise click.UsageError("give either --duration S or -- COMMAND ...")
    exporter = None
    if prometheus_port is not None:
        from ebedge.export.prometheus import PowerExporter
        exporter = PowerExporter(prometheus_port)
        click.echo("prometheus: http://%s:%d/metrics" % (exporter.host, exporter.port), err=True)
    try:
        rec = _record(meter_name, port, interval, options, duration, out_dir, run_id, command,
                      exporter)
    finally:
        if exporter is not None:
            exporter.close()
    if rec.meter_error:
        click.echo("warning: %s" % rec.meter_error, err=True)
    if rec.total_row() is None and rec.meter_info.get("total_error"):
        click.echo("warning: no total rail: %s" % rec.meter_info["total_error"], err=True)
    _print_total(rec.rows)
    sys.exit(rec.exit_code or 0)


def _record(meter_name, port, interval, options, duration, out_dir, run_id, command, exporter):
    """The recording itself; driver and option errors become one line."""
    name = meter_name or meters.best_available()
    kwargs = parse_key_values(options)
    if port is not None:
        kwargs["port"] = port
    if interval is not None:
        kwargs["interval_s"] = interval
    try:
        meter = meters.create(name, **kwargs)
        return recording.record(meter, out_dir, duration_s=duration,
                                command=list(command) or None, run_id=run_id,
                                also=exporter.feed if exporter is not None else None)
    except (meters.MeterError, ValueError) as exc:
        raise click.ClickException(str(exc))
    except TypeError as exc:  # an option the driver does not take
        raise click.ClickException("meter %s: %s" % (name, exc))


@meters_group.command("replay")
@click.argument("kind", type=click.Choice(["tegrastats"]))
@click.argument("log", type=click.File("rb"))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Write samples.csv and energy.csv here.")
@click.option("--interval", type=float, default=None,
              help="Seconds between lines (tegrastats' --interval / 1000); needed only for a log "
                   "without date stamps, else checked against them.")
@click.option("--csv", "csv_out", default=None, type=click.File("w"),
              help="Write line,rail,power_w rows here ('-' for stdout).")
@click.option("--run-id", default=None, help="run_id column (default: the --out folder name).")
def replay_cmd(kind, log, out_dir, interval, csv_out, run_id):
    """Turn a recorded tegrastats log into samples and energy; bad lines go to stderr."""
    if out_dir is None and csv_out is None:
        raise click.UsageError("give --out DIR and/or --csv FILE")
    if interval is not None and not interval > 0:
        raise click.BadParameter("must be a positive number of seconds", param_hint="--interval")

    def on_error(exc):
        click.echo("%s: %s" % (log.name, exc), err=True)

    try:
        rep = tegrastats.replay_log(log, interval_s=interval, on_error=on_error,
                                    require_timing=out_dir is not None)
    except meters.MeterError as exc:
        raise click.ClickException("%s: %s" % (log.name, exc))
    samples = rep.samples()
    info = sys.stderr if csv_out is not None and csv_out.name == "<stdout>" else None
    if csv_out is not None:
        w = csv.writer(csv_out, lineterminator="\n")
        w.writerow(("line", "rail", "power_w"))
        for lineno, line_samples in rep.records:
            for s in line_samples:
                w.writerow((lineno, s.rail, s.power_w))
    if out_dir is not None:
        if not samples:
            raise click.ClickException("%s: no usable tegrastats lines" % log.name)
        if not os.path.isdir(out_dir):
            os.makedirs(out_dir)
        rid = run_id or os.path.basename(os.path.normpath(os.path.abspath(out_dir)))
        writer = recording.SampleWriter(os.path.join(out_dir, "samples.csv"), rid)
        writer.write(samples)
        writer.close()
        t0 = min(s.t_mono for s in samples)
        t1 = max(s.t_mono for s in samples)
        rows = recording.write_energy(out_dir, samples, [("replay", 0, t0, t1, None, None)], rid,
                                      nominal_interval_s=rep.interval_s)
        click.echo("%d line(s) timed by %s, %.4g s apart" % (
            len(rep.records), rep.timed_by, rep.interval_s), file=info, err=info is None)
        _print_total(rows, out=info)
    if rep.bad_lines:
        click.echo("%d bad line(s) skipped" % rep.bad_lines, err=True)
    if rep.undecodable_lines:
        click.echo("%d undecodable (non-UTF-8) line(s) skipped" % rep.undecodable_lines, err=True)


@meters_group.command("simulate")
@click.argument("kind")
@click.option("--power-profile", "spec", default=None,
              help="W:S or A-B:S segments, comma-separated (default: 20 s of steps and ramps).")
@click.option("--duration", type=float, default=None,
              help="Seconds to keep the simulator running (default: until Ctrl-C).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Simulator option, e.g. board=orin or root=/tmp/sys.")
@click.option("--update-interval-ms", type=float, default=None,
              help="sysfs kinds: update the sensor values only this often, each time to the mean "
                   "power of the interval just ended, as an INA3221 does (default: continuous).")
@click.option("--gain", type=float, default=1.0, show_default=True,
              help="The simulated rail reads (P - OFFSET) / GAIN of the profile's (wall) power P.")
@click.option("--offset-w", type=float, default=0.0, show_default=True,
              help="Watts the simulated rail leaves out (carrier board, supply losses).")
def simulate_cmd(kind, spec, duration, options, update_interval_ms, gain, offset_w):
    """Start simulator KIND and print how to point a meter at it."""
    try:
        profile = PowerProfile.parse(spec) if spec else PowerProfile.default()
        profile = profile.onboard(gain, offset_w)
        options = parse_key_values(options)
        if update_interval_ms is not None:
            options["update_interval_ms"] = update_interval_ms
        handle = registry.start(kind, profile, **options)
    except (ValueError, meters.MeterError) as exc:
        raise click.ClickException(str(exc))
    except TypeError as exc:
        raise click.ClickException("simulator %s: %s" % (kind, exc))
    for key, value in handle.info:
        click.echo("%s=%s" % (key, value))
    sys.stdout.flush()
    if not getattr(handle, "runs", True):
        return
    try:
        end = time.monotonic() + duration if duration is not None else None
        while end is None or time.monotonic() < end:
            time.sleep(0.2 if end is None else max(0.0, min(0.2, end - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()



@meters_group.command("qualify")
@click.option("--meter", "meter_name", default=None, help="The meter to qualify.")
@click.option("--reference", default=None, help="The meter it is checked against.")
@protocol_options
@click.option("--simulate", is_flag=True,
              help="A simulated board (fake INA3221 tree) against a simulated WT310E.")
@click.option("--board", "sim_board", default="tx2", show_default=True,
              help="The simulated board (with --simulate).")
@click.option("--gain", type=float, default=1.05, show_default=True,
              help="The simulated rail's gain error (with --simulate).")
@click.option("--offset-w", type=float, default=1.2, show_default=True,
              help="The simulated rail's offset in watts (with --simulate).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for qualification.json, samples.csv, phases.csv, energy.csv.")
@click.option("--save", is_flag=True, help="Store the fit as this board's calibration profile.")
def qualify_cmd(meter_name, reference, options, ref_options, rail, reference_rail, quick, windows,
                window_s, settle_s, tolerance, simulate, sim_board, gain, offset_w, out_dir, save):
    """Check a meter against a reference under loads ebedge makes; fit gain and offset."""
    window_s = window_seconds(quick, window_s)
    try:
        if simulate:
            protocol = qualify.Protocol(qualify.default_levels(qualify_sim.SIM_CORES, False),
                                        windows, window_s, settle_s)
            result = qualify_sim.simulate(protocol, gain, offset_w, sim_board, out_dir, tolerance)
            ident = qualify_sim.identity(sim_board)
        else:
            if not meter_name or not reference:
                raise click.UsageError("give --meter and --reference (or --simulate)")
            protocol = qualify.Protocol(qualify.default_levels(
                multiprocessing.cpu_count(), loads.cuda_available()), windows, window_s, settle_s)
            click.echo("qualifying %s against %s: %d levels, about %.0f s"
                       % (meter_name, reference, len(protocol.levels), protocol.duration_s()))
            ident = calibration.identity(board.snapshot())
            result = qualify.qualify(
                meter_name, reference, protocol,
                {meter_name: parse_key_values(options), reference: parse_key_values(ref_options)},
                rail, reference_rail, tolerance, out_dir)
        result["board"] = ident
        qualify.write_result(out_dir, result)
        print_qualification(result)
        if save:
            calibration.check_saveable(result)
            click.echo("saved calibration profile %s" % calibration.save(
                calibration.make_profile(result, ident)))
    except (EbedgeError, ValueError, meters.MeterError) as exc:
        raise click.ClickException(str(exc))
    sys.exit(0 if result["verdict"] != "fail" else 1)


@meters_group.command("calibrate")
@click.argument("qualification", type=click.Path(dir_okay=False, exists=True))
def calibrate_cmd(qualification):
    """Store a qualification.json's fit as its board's calibration profile."""
    try:
        result = qualify.read_result(qualification)
        calibration.check_saveable(result)
        path = calibration.save(calibration.make_profile(result, result.get("board") or
                                                         calibration.identity(board.snapshot())))
    except (EbedgeError, KeyError, TypeError) as exc:
        raise click.ClickException(str(exc))
    click.echo("saved calibration profile %s" % path)


if __name__ == "__main__":
    meters_group()
