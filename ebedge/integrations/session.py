"""What the framework callbacks share: a Monitor opened on first use, windows by name, the
`energy/...` metrics of a measured window, and a close that also runs if the training crashes
(atexit), so what was measured so far is written to `log_dir` and the trackers."""
import atexit

from ebedge.export.trackers import WindowRecord


class EnergySession(object):
    """Monitor options as `ebedge.Monitor` takes them; `monitor` exists after `open()`."""

    def __init__(self, meters=("auto",), meter_options=None, interval_s=None, log_dir=None,
                 log_to=None, run_id=None):
        self.options = dict(meters=meters, meter_options=meter_options, interval_s=interval_s,
                            log_dir=log_dir, log_to=log_to, run_id=run_id)
        self.monitor = None
        self.closed = False

    @property
    def measurements(self):
        return list(self.monitor.measurements) if self.monitor is not None else []

    def open(self):
        if self.monitor is None:
            from ebedge.measure.monitor import Monitor
            self.monitor = Monitor(**self.options)
            atexit.register(self.close)
        return self.monitor

    def begin(self, name):
        self.open().begin_window(name)

    def end(self, name):
        """The window's Measurement and its `energy/<name>/...` metrics."""
        m = self.monitor.end_window(name)
        return m, WindowRecord.of(m).metrics()

    def is_open(self, name):
        return self.monitor is not None and self.monitor.is_open(name)

    def close(self):
        """End what is still open (flagged by Monitor) and write everything; idempotent."""
        if self.monitor is not None and not self.closed:
            atexit.unregister(self.close)
            self.monitor.close()
        self.closed = True
