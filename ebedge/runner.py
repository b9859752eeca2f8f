"""`ebedge.runner`, the run API's documented import path; the code lives in `ebedge.run.runner`."""
from ebedge.run.runner import default_out, execute, execute_repeats  # noqa: F401
