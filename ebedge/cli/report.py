"""`ebedge report`: run directories in, CSVs and plots out (the lead attaches report_command to the main group)."""
import os

import click


@click.command("report")
@click.argument("results_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Directory for runs.csv, table.csv, phases.csv and plots/.")
@click.option("--allow-mixed-power-modes", is_flag=True,
              help="Average (and compare) runs recorded at different power modes instead of refusing.")
def report_command(results_dirs, out_dir, allow_mixed_power_modes):
    """Report on run directories: RESULTS_DIRS may be run directories or trees of them (results/, a suite's output)."""
    # pandas and matplotlib load only when a report is asked for: the board's `ebedge` has neither.
    from ebedge.report.build import ReportError, build_report

    try:
        result = build_report(results_dirs, out_dir, allow_mixed_power_modes=allow_mixed_power_modes)
    except ReportError as exc:
        raise click.ClickException(str(exc))
    for line in result.warnings:
        click.echo("warning: " + line, err=True)
    for line in result.notes:
        click.echo("note: " + line, err=True)
    complete = sum(1 for r in result.runs if r.complete)
    click.echo("{} runs ({} complete, {} not) -> {}".format(len(result.runs), complete, len(result.runs) - complete,
                                                           os.path.abspath(out_dir)))
    plots = [f for f in result.files if f.endswith(".png")]
    click.echo("wrote runs.csv, table.csv, phases.csv and {} plots (PNG + SVG)".format(len(plots)))
