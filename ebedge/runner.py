"""`ebedge.runner`, the run API's documented import path; the code lives in `ebedge.run.runner`
and `ebedge.run.repeats`."""
from ebedge.run.repeats import execute_repeats  # noqa: F401
from ebedge.run.runner import default_out, execute  # noqa: F401
