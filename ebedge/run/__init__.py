"""A run on the device: start, resume, run directory, locks, ids, suites."""
