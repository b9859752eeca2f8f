"""Energy of Hugging Face Trainer runs: `EnergyCallback(meters=["auto"]).attach(trainer)`.

Windows: `train` (the whole `trainer.train()`), `epoch` (each epoch) and `evaluation` (each
`trainer.evaluate()`, also those the Trainer runs by itself). Each window's
`energy/<window>/joules`, `.../watts`, `.../seconds`, `.../rail/<rail>_joules` and `.../measured`
(1 measured, 0 modelled) are logged through `trainer.log`, so they land in `state.log_history` and
reach every `report_to` target. `attach` adds the callback and keeps the trainer (a callback
alone cannot log: callbacks get no trainer, and the reporters see a log before later callbacks
could add to it). The meters stay open after training, for the usual `trainer.evaluate()` after
it, until `close()` or exit: then (after a crash too) `log_dir` and the trackers get everything
measured. `log_dir` and `log_to` as ebedge.Monitor; CUDA work is finished at window edges.
"""
import functools

from transformers import TrainerCallback

from ebedge.errors import EbedgeError
from ebedge.integrations.session import EnergySession


class EnergyCallback(TrainerCallback):
    """Measures training, epochs and evaluation with ebedge meters (see the module doc)."""

    def __init__(self, meters=("auto",), meter_options=None, interval_s=None, log_dir=None,
                 log_to=None, run_id=None):
        self.session = EnergySession(meters, meter_options, interval_s, log_dir, log_to, run_id)
        self.trainer = None

    @property
    def measurements(self):
        return self.session.measurements

    def attach(self, trainer):
        """Add this callback to `trainer`, and measure its evaluations; returns the trainer."""
        self.trainer = trainer
        trainer.add_callback(self)
        evaluate = trainer.evaluate

        @functools.wraps(evaluate)
        def measured_evaluate(*args, **kwargs):
            self.session.begin("evaluation")
            try:
                return evaluate(*args, **kwargs)
            finally:
                self._end("evaluation")
        trainer.evaluate = measured_evaluate
        return trainer

    def _end(self, name):
        if self.session.is_open(name):
            _, metrics = self.session.end(name)
            self.trainer.log(metrics)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.trainer is None:
            raise EbedgeError("add the energy callback with EnergyCallback(...).attach(trainer), "
                              "not Trainer(callbacks=[...]): it logs through the trainer")
        self.session.begin("train")

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.session.begin("epoch")

    def on_epoch_end(self, args, state, control, **kwargs):
        self._end("epoch")

    def on_train_end(self, args, state, control, **kwargs):
        self._end("train")

    def close(self):
        """Stop the meters and write `log_dir` and the trackers (also done at exit)."""
        self.session.close()
