"""Tracker sinks: energy figures of windows and runs sent to TensorBoard, MLflow or W&B.

One small base class (`Sink`) with one record per window (`WindowRecord`) and one summary per
run, so Monitor, the runner and the framework callbacks send the same figures everywhere. A sink
is named by a spec, `tensorboard:DIR`, `mlflow:URI` or `wandb:PROJECT`; its package is imported
only when that spec is opened. Tags: `energy/<window>/joules`, `.../watts`, `.../seconds`,
`.../net_joules`, `.../rail/<rail>_joules`, `.../measured` (1 measured, 0 modelled), stepped by
how often the window name occurred; meter, label and flags go as text (TensorBoard) or tags.
Device side: Python 3.6 syntax.
"""
import importlib
import math

from ebedge.errors import EbedgeError
from meters.base import MEASURED

KINDS = ("tensorboard", "mlflow", "wandb")


class WindowRecord(object):
    """One measured window or phase as trackers see it (figures of the headline meter's total)."""

    def __init__(self, name, seconds, meter, method, energy_j, power_w, net_energy_j=None,
                 rails=None, flags=()):
        self.name = name
        self.seconds = seconds
        self.meter = meter
        self.method = method
        self.energy_j = energy_j
        self.power_w = power_w
        self.net_energy_j = net_energy_j
        self.rails = dict(rails or {})
        self.flags = list(flags)

    @classmethod
    def of(cls, measurement):
        """From a Monitor Measurement."""
        m = measurement
        return cls(m.name, m.seconds, m.meter, m.method, m.energy_j, m.power_w, m.net_energy_j,
                   m.per_rail, m.flags)

    def metrics(self):
        """{tag: number} of what is known (a number that is None is left out, never zero)."""
        prefix = "energy/%s/" % self.name
        out = {prefix + "joules": self.energy_j, prefix + "watts": self.power_w,
               prefix + "seconds": self.seconds, prefix + "net_joules": self.net_energy_j,
               prefix + "measured": 1.0 if self.method == MEASURED else 0.0}
        for rail, joules in self.rails.items():
            out["%srail/%s_joules" % (prefix, rail)] = joules
        return dict((k, float(v)) for k, v in out.items() if _number(v))

    def text(self):
        """The labels: meter, measured/modelled and flags, as one line."""
        return "%s by %s%s" % (self.method, self.meter,
                               "; flags: " + "; ".join(self.flags) if self.flags else "")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summary_metrics(summary):
    """A run's or Monitor's headline numbers as {`summary/<key>`: number}: its top-level numbers
    and the energy block's kJ per phase, labelled by meter and method in `summary_text`."""
    out = dict(("summary/" + k, float(v)) for k, v in summary.items() if _number(v))
    energy = summary.get("energy") or {}
    for phase, kj in sorted((energy.get("kj") or {}).items()):
        if _number(kj):
            out["summary/energy_kj/" + phase] = float(kj)
    return out


def summary_text(summary):
    energy = summary.get("energy") or {}
    parts = ["status %s" % summary.get("status")]
    if energy:
        parts.append("energy %s by %s/%s" % (energy.get("method"), energy.get("meter"),
                                             energy.get("rail")))
    if summary.get("flags"):
        parts.append("flags: " + "; ".join(summary["flags"]))
    return ", ".join(parts)


def _need(module, spec):
    """Import `module` for tracker `spec`, or say in one line what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EbedgeError("%s needs the %s package (pip install ebedge[trackers]): %s"
                          % (spec, module.split(".")[0], exc))


class Sink(object):
    """Where figures go besides the files. `window` once per measured window, `summary` once at
    the end, then `close`. Subclasses implement `_scalars(metrics, step)` and `_text(tag, text)`."""

    def __init__(self):
        self._seen = {}  # window name -> how many were sent (the step of the next)

    def window(self, record):
        step = self._seen.get(record.name, 0)
        self._seen[record.name] = step + 1
        self._scalars(record.metrics(), step)
        self._text("energy/%s/label" % record.name, record.text(), step)

    def summary(self, summary):
        self._scalars(summary_metrics(summary), 0)
        self._text("summary/label", summary_text(summary), 0)

    def close(self):
        pass


class TensorBoardSink(Sink):
    """Event files in DIR, written by torch.utils.tensorboard (needs the `tensorboard` package)."""

    def __init__(self, log_dir):
        Sink.__init__(self)
        _need("tensorboard", "tensorboard:" + log_dir)  # torch's writer needs it
        writer = _need("torch.utils.tensorboard", "tensorboard:" + log_dir).SummaryWriter
        self.writer = writer(log_dir=log_dir)

    def _scalars(self, metrics, step):
        for tag, value in sorted(metrics.items()):
            self.writer.add_scalar(tag, value, step)

    def _text(self, tag, text, step):
        self.writer.add_text(tag, text, step)

    def close(self):
        self.writer.close()


class MlflowSink(Sink):
    """One MLflow run (experiment `ebedge`) on the tracking URI, through MLflow's client."""

    def __init__(self, uri, run_name):
        Sink.__init__(self)
        self.client = _need("mlflow.tracking", "mlflow:" + uri).MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name("ebedge")
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment("ebedge"))
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id

    def _scalars(self, metrics, step):
        for key, value in sorted(metrics.items()):
            self.client.log_metric(self.run_id, key, value, step=step)

    def _text(self, tag, text, step):
        self.client.set_tag(self.run_id, tag, text)

    def close(self):
        self.client.set_terminated(self.run_id)


class WandbSink(Sink):
    """One Weights & Biases run in PROJECT (offline with WANDB_MODE=offline)."""

    def __init__(self, project, run_name):
        Sink.__init__(self)
        self.run = _need("wandb", "wandb:" + project).init(project=project, name=run_name)

    def _scalars(self, metrics, step):
        if metrics:
            self.run.log(metrics)

    def _text(self, tag, text, step):
        self.run.summary[tag] = text

    def summary(self, summary):
        self.run.summary.update(summary_metrics(summary))
        self._text("summary/label", summary_text(summary), 0)

    def close(self):
        self.run.finish()


def parse_spec(spec):
    """(kind, target) of `kind:TARGET`, or a one-line error."""
    kind, sep, target = spec.partition(":")
    if not sep or not target or kind not in KINDS:
        raise EbedgeError("--log-to wants tensorboard:DIR, mlflow:URI or wandb:PROJECT, got %r"
                          % (spec,))
    return kind, target


def open_sink(spec, run_name):
    """A Sink from `kind:TARGET`, or one already made (anything with window/summary/close)."""
    if not isinstance(spec, str):
        return spec
    kind, target = parse_spec(spec)
    if kind == "tensorboard":
        return TensorBoardSink(target)
    if kind == "mlflow":
        return MlflowSink(target, run_name)
    return WandbSink(target, run_name)


class Sinks(object):
    """The sinks of one run or Monitor; a sink that fails is dropped with a flag, so a tracker
    never ends the training it reports on."""

    def __init__(self, specs, run_name):
        for spec in specs or ():
            if isinstance(spec, str):
                parse_spec(spec)  # every spec checked before any is opened
        self.sinks = []
        self.flags = []
        for spec in specs or ():
            try:
                self.sinks.append(open_sink(spec, run_name))
            except Exception as exc:
                self.close()
                if isinstance(exc, EbedgeError):
                    raise
                raise EbedgeError("cannot open tracker %s: %s: %s"
                                  % (spec, type(exc).__name__, str(exc).splitlines()[0]))

    def _each(self, call):
        for sink in list(self.sinks):
            try:
                call(sink)
            except Exception as exc:  # a tracker's failure is reported, not raised mid-training
                self.sinks.remove(sink)
                self.flags.append("tracker %s dropped: %s: %s" % (type(sink).__name__,
                                                                   type(exc).__name__, exc))

    def window(self, record):
        self._each(lambda s: s.window(record))

    def summary(self, summary):
        self._each(lambda s: s.summary(summary))

    def close(self):
        self._each(lambda s: s.close())
        self.sinks = []
