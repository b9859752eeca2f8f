"""The built-in default run (`ebedge run`): the shipped `quick` suite, each method into its own
directory, EB Train beside dense training on the synthetic dataset that ships with the code.

The suite file (ebedge/suites/quick.toml) says what runs and why it is sized as it is; this
module only places its cells where `ebedge run` has always written them (<out>/<method>).
"""
import os

from ebedge.run.runner import execute
from ebedge.run.suite import load_suite

QUICK_SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suites",
                           "quick.toml")


def run_quick(out_root, overwrite=False, quiet=False):
    """Run every cell of the quick suite into `out_root/<method>`; [(directory, summary)]."""
    summaries = []
    for cell in load_suite(QUICK_SUITE).cells():
        out = os.path.join(out_root, cell.settings.method)
        summaries.append((out, execute(cell.settings, out=out, overwrite=overwrite, quiet=quiet)))
    return summaries
