"""The `ebedge` command: parses, calls the library, prints; one module per command group."""
import sys

import click

from ebedge import __version__
from ebedge.errors import EbedgeError
from ebedge.util.printable import printable


class Group(click.Group):
    """Turns library errors into one line and exit code 1 instead of a traceback; the message
    may quote a board, so it is printed through the sanitiser."""

    def invoke(self, ctx):
        try:
            return super(Group, self).invoke(ctx)
        except (EbedgeError, ValueError) as exc:
            raise click.ClickException(printable(str(exc), one_line=True))
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM in a run (its exit code then)
            click.echo(str(exc) or "interrupted", err=True)
            sys.exit(getattr(exc, "exit_code", 130))


@click.group(cls=Group)
@click.version_option(__version__, prog_name="ebedge")
def main():
    """Energy benchmarks of Early-Bird ticket training (EB Train) on edge devices."""


def _attach_subcommands():
    """The commands and groups, each from its own module."""
    from ebedge.cli import agent, bench, meters, remote, report, train
    for command in (train.train, train.run, train.flops, meters.meters_group, bench.bench_command,
                    report.report_command, agent.agent_group, remote.remote_group):
        main.add_command(command)


_attach_subcommands()
