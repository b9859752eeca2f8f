"""ebedge: energy benchmarking of Early-Bird ticket training on edge devices."""

__version__ = "0.1.0"
