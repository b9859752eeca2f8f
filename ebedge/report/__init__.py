"""The report: run directories in; tables, plots and pages out (host side: pandas, matplotlib).

`build_report` (ebedge.report.build) is the entry point. Importing this package loads nothing
heavy, so the device side may use `ebedge.report.summary_table` without pandas; the report's
public names are loaded on first use.
"""
import importlib

from ebedge.errors import EbedgeError

_PUBLIC = {
    "build_report": "build", "ReportResult": "build",
    "ReportError": "runs", "Run": "runs", "load_run": "runs", "find_run_dirs": "runs",
    "ratio_label": "runs", "t_quantile_975": "runs", "mean_ci95": "runs",
    "runs_frame": "tables", "table_frame": "tables", "phases_frame": "tables",
    "cell_stats": "tables", "improvements": "tables", "pivot_cells": "tables",
    "settings_key": "runs", "result_settings": "runs", "emissions_frame": "codecarbon",
}
HOST_DEPENDENCIES = ("pandas", "matplotlib")  # setup.cfg installs them where Python >= 3.7
INSTALL_COMMAND = "pip install pandas matplotlib"


def missing_host_dependencies():
    """The report's packages that do not import here (a board's Python 3.6 has none of them)."""
    missing = []
    for name in HOST_DEPENDENCIES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def __getattr__(name):  # PEP 562 (Python 3.7+, the host side); a no-op definition on 3.6
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError("module 'ebedge.report' has no attribute %r" % name)
    return getattr(importlib.import_module("ebedge.report." + module), name)


class MissingHostDependencies(EbedgeError):
    """pandas or matplotlib is not installed (the message names the install command)."""


def build_report_checked(paths, out_dir, **options):
    """build_report, or MissingHostDependencies (one line naming the install command) instead of an ImportError."""
    missing = missing_host_dependencies()
    if missing:
        raise MissingHostDependencies("the report needs %s, not installed here: %s (or `pip install ebedge` "
                                      "on Python 3.7+)" % (" and ".join(missing), INSTALL_COMMAND))
    from ebedge.report.build import build_report
    return build_report(paths, out_dir, **options)
