"""Power-meter drivers and their simulators, usable without the rest of ebedge.

    import meters
    with meters.create("tegrastats", interval_s=0.1) as m:
        ...
        samples = m.samples()
"""
from meters.base import (GAP, MEASURED, MODELLED, NAN, OVERRANGE, RESYNC, SAMPLE_COLUMNS, TOTAL,
                         Meter, MeterError, Sample, best_available, create, detect, get, names,
                         register)

__all__ = ["GAP", "MEASURED", "MODELLED", "NAN", "OVERRANGE", "RESYNC", "SAMPLE_COLUMNS", "TOTAL",
           "Meter", "MeterError", "Sample", "best_available", "create", "detect", "get", "names",
           "register"]
