"""Energy of Lightning training: `Trainer(callbacks=[EnergyCallback(meters=["auto"])])`.

Windows: `fit` (the whole fit), `train_epoch` (each training epoch; Lightning runs the epoch-end
validation inside it) and `validation` (each validation run of the fit, the sanity check
excepted; `trainer.validate()` after the fit is not measured: the meters close with the fit). Each
window's `energy/<window>/joules`, `.../watts`, `.../seconds`, `.../rail/<rail>_joules` and
`.../measured` (1 measured, 0 modelled) go to every logger of the Trainer (`log_metrics`, at the
global step), the meter's name to their hyperparameters as `energy_meter`; the Measurements stay
on the callback (`measurements`). `log_dir` and `log_to` as ebedge.Monitor. Queued CUDA work is
finished at window edges; on an exception (and at exit) what was measured so far is written.
Lightning 2.x: `lightning.pytorch`, or `pytorch_lightning` when only that is installed.
"""
try:
    from lightning.pytorch.callbacks import Callback
except ImportError:
    from pytorch_lightning.callbacks import Callback

from ebedge.integrations.session import EnergySession


class EnergyCallback(Callback):
    """Measures fit, training epochs and validation with ebedge meters (see the module doc)."""

    def __init__(self, meters=("auto",), meter_options=None, interval_s=None, log_dir=None,
                 log_to=None, run_id=None):
        Callback.__init__(self)
        self.session = EnergySession(meters, meter_options, interval_s, log_dir, log_to, run_id)

    @property
    def measurements(self):
        return self.session.measurements

    def _end(self, trainer, name):
        if self.session.is_open(name):
            _, metrics = self.session.end(name)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def on_fit_start(self, trainer, pl_module):
        self.session.begin("fit")
        for logger in trainer.loggers:
            logger.log_hyperparams({"energy_meter": self.session.monitor.meter})

    def on_train_epoch_start(self, trainer, pl_module):
        self.session.begin("train_epoch")

    def on_train_epoch_end(self, trainer, pl_module):
        self._end(trainer, "train_epoch")

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking and not self.session.closed:  # closed: after the fit
            self.session.begin("validation")

    def on_validation_end(self, trainer, pl_module):
        self._end(trainer, "validation")

    def on_fit_end(self, trainer, pl_module):
        self._end(trainer, "fit")
        self.session.close()

    def on_exception(self, trainer, pl_module, exception):
        self.session.close()
