"""`ebedge bench`: run a suite file cell by cell (the lead attaches bench_command to the main group)."""
import functools
import os

import click

from ebedge.errors import EbedgeError

# The suites ship inside the package (package_data), so `ebedge bench quick` works after any install.
SUITES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suites")


def shipped_suites():
    """Paths of the suites that ship with ebedge, by name."""
    names = sorted(n for n in os.listdir(SUITES_DIR) if n.endswith(".toml")) if os.path.isdir(SUITES_DIR) else []
    return [os.path.join(SUITES_DIR, n) for n in names]


def suite_path(suite):
    """SUITE as given if it is a file, else the shipped suite of that name (so `ebedge bench quick` works)."""
    if os.path.isfile(suite):
        return suite
    shipped = os.path.join(SUITES_DIR, suite if suite.endswith(".toml") else suite + ".toml")
    if os.path.basename(suite) == suite and os.path.isfile(shipped):  # a plain name, not a path
        return shipped
    raise EbedgeError("suite not found: %s (neither a file nor a shipped suite; `ebedge bench --list` lists those)"
                      % suite)


def _describe(settings):
    ratio = "-" if settings.method == "dense" else ",".join("%g" % p for p in settings.prune_ratio)
    return "%s %s %s p=%s epochs=%d seed=%d" % (settings.model, settings.dataset, settings.method, ratio,
                                                settings.epochs, settings.seed)


def _check_cells(loaded, cells):
    from ebedge.run.precheck import check_cell
    failed = []
    for cell in cells:
        try:
            click.echo("  ok    %-48s %s" % (cell.cell_id, check_cell(cell.settings)))
        except EbedgeError as exc:
            failed.append(cell.cell_id)
            click.echo("  FAIL  %-48s %s" % (cell.cell_id, exc))
    click.echo("suite %s: %d cells checked, %d failed" % (loaded.name, len(cells), len(failed)))
    if failed:
        raise click.ClickException("%d of %d cells fail their pre-run check: %s"
                                   % (len(failed), len(cells), ", ".join(failed)))


@click.command("bench")
@click.argument("suite", default="quick")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Directory for the cells' run directories  [default: results/<suite name>/]")
@click.option("--dry-run", is_flag=True, help="List the cells and exit; nothing runs.")
@click.option("--check", "check_only", is_flag=True,
              help="Run every cell's pre-run check (model, method, pruned shape, on the CPU) "
                   "and exit; nothing trains.")
@click.option("--quiet", is_flag=True, help="Only one line per cell, no per-epoch output.")
@click.option("--list", "list_only", is_flag=True, help="List the suites that ship with ebedge and exit.")
def bench_command(suite, out_dir, dry_run, check_only, quiet, list_only):
    """Run the suite SUITE (a .toml file, or the name of a shipped suite: see --list; default: quick).

    Cells already complete in the output directory are skipped and interrupted ones resumed,
    so running the same command again finishes an interrupted suite.
    """
    from ebedge.run.suite import load_suite, run_suite

    if list_only:
        for path in shipped_suites():
            loaded = load_suite(path)
            click.echo("%-24s %4d cells  %s" % (os.path.basename(path)[:-len(".toml")], len(loaded.cells()),
                                                loaded.description))
        return
    try:
        loaded = load_suite(suite_path(suite))
    except EbedgeError as exc:
        raise click.ClickException(str(exc))
    out_dir = out_dir or os.path.join("results", loaded.name)
    cells = loaded.cells()
    if dry_run:
        click.echo("suite %s: %d cells -> %s" % (loaded.name, len(cells), out_dir))
        for cell in cells:
            click.echo("  %-40s %s" % (cell.cell_id, _describe(cell.settings)))
        return
    if check_only:
        _check_cells(loaded, cells)
        return
    # The runner (and torch) load only when something is to run.
    from ebedge.run.runner import execute

    results = run_suite(loaded, out_dir, functools.partial(execute, quiet=quiet), progress=click.echo)
    failed = [cell_id for cell_id, status in results if status.startswith("failed")]
    click.echo("suite %s: %d cells, %d failed -> %s" % (loaded.name, len(results), len(failed),
                                                        os.path.abspath(out_dir)))
    if failed:
        raise click.ClickException("%d of %d cells failed: %s" % (len(failed), len(results), ", ".join(failed)))
