"""Measure a Lightning training with ebedge's EnergyCallback (tiny model, random data, CPU, seconds).

    python examples/lightning_energy.py                              # the best meter present
    python examples/lightning_energy.py --meter model --log-dir results/pl --logs logs
    ebedge report results/pl

Each window's energy/... metrics go to the Trainer's loggers (a CSVLogger under --logs here).
"""
import argparse

import torch
from torch import nn

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger

from ebedge.integrations.lightning import EnergyCallback


class TinyClassifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)
    y = x[:, :4].argmax(dim=1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meter", default="auto", help="meter name, or auto [default: auto]")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--log-dir", help="ebedge's run-directory files, for `ebedge report`")
    parser.add_argument("--logs", default="lightning_logs", help="the CSVLogger's directory")
    args = parser.parse_args()

    energy = EnergyCallback(meters=[args.meter], log_dir=args.log_dir)
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=CSVLogger(args.logs),
                         callbacks=[energy], enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(TinyClassifier(), loader(512, 0), loader(128, 1))
    for m in energy.measurements:
        print("%s: %.3f s, %.3f J (%.3f W avg), %s by %s" % (
            m.name, m.seconds, m.energy_j, m.power_w, m.method, m.meter))


if __name__ == "__main__":
    main()
