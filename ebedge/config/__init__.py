"""Settings, schedules and run-file formats: what a run is asked to do."""
