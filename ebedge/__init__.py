"""ebedge: energy benchmarking of Early-Bird ticket training on edge devices."""

__version__ = "0.1.0"

from ebedge.measure.monitor import Measurement, Monitor  # noqa: E402 (needs __version__ above)
from ebedge import methods  # noqa: E402,F401 (registers every method in the catalog)

__all__ = ["Measurement", "Monitor", "__version__"]
