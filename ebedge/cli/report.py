"""`ebedge report`: run directories in; CSVs, plots, index.html and report.json out."""
import os

import click

from ebedge.errors import EbedgeError
from ebedge.util.printable import printable


def echo_result(result, out_dir):
    for line in result.warnings:
        click.echo("warning: " + printable(line, one_line=True), err=True)
    for line in result.notes:
        click.echo("note: " + printable(line, one_line=True), err=True)
    complete = sum(1 for r in result.runs if r.complete)
    click.echo("{} runs ({} complete, {} not) -> {}".format(len(result.runs), complete, len(result.runs) - complete,
                                                           os.path.abspath(out_dir)))
    plots = [f for f in result.files if f.endswith(".png")]
    click.echo("wrote {} and {} plots (PNG + SVG)".format(
        ", ".join(os.path.basename(f) for f in result.files if f.endswith((".csv", ".json"))), len(plots)))
    for path in result.files:
        if path.endswith((".tex", ".md")):
            click.echo("wrote {}".format(path))
    click.echo("report: {}".format(os.path.abspath(os.path.join(out_dir, "index.html"))))
    for line in result.answers:  # the answer, last, where the eye lands
        click.echo(line)


@click.command("report")
@click.argument("results_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Directory for index.html, report.json, runs.csv, table.csv, phases.csv and plots/.")
@click.option("--allow-mixed-power-modes", is_flag=True,
              help="Average (and compare) runs recorded at different power modes instead of refusing.")
@click.option("--allow-mixed-energy-methods", is_flag=True,
              help="Average runs whose energy was measured with runs whose energy was modelled (or not "
                   "measured) instead of refusing.")
@click.option("--format", "formats", multiple=True, type=click.Choice(["codecarbon", "latex", "model-card"]),
              help="Also write emissions.csv in CodeCarbon's columns (codecarbon), table.tex, Table 2 as a booktabs "
                   "tabular for \\input (latex), or model-card.md, a model card's Energy section (model-card); "
                   "repeatable.")
@click.option("--carbon-intensity", type=click.FloatRange(min=0), metavar="G_PER_KWH",
              help="Grid carbon intensity in g CO2eq/kWh; fills CodeCarbon's emissions columns (else empty). "
                   "Implies --format codecarbon.")
@click.option("--accuracy", type=click.Choice(["final", "best"]), default="final", show_default=True,
              help="Accuracy the tables show: the last epoch's, or the best epoch of the retrain (the paper's "
                   "official code); every table says which.")
def report_command(results_dirs, out_dir, allow_mixed_power_modes, allow_mixed_energy_methods, formats,
                   carbon_intensity, accuracy):
    """Report on run directories: RESULTS_DIRS may be run directories or trees of them (results/, a suite's output)."""
    from ebedge.report import build_report_checked
    if carbon_intensity is not None and "codecarbon" not in formats:
        formats += ("codecarbon",)
    try:
        result = build_report_checked(results_dirs, out_dir, allow_mixed_power_modes=allow_mixed_power_modes,
                                      allow_mixed_energy_methods=allow_mixed_energy_methods, formats=formats,
                                      carbon_intensity_g_per_kwh=carbon_intensity, accuracy=accuracy)
    except (EbedgeError, ValueError) as exc:
        raise click.ClickException(str(exc))
    echo_result(result, out_dir)
