"""Measure a Hugging Face Trainer run with ebedge's EnergyCallback (a tiny BERT built from a
config, random tokens, CPU, seconds; nothing is downloaded).

    python examples/transformers_energy.py                           # the best meter present
    python examples/transformers_energy.py --meter model --log-dir results/hf
    ebedge report results/hf

The energy/... entries land in trainer.state.log_history and in every `report_to` target.
"""
import argparse
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from ebedge.integrations.transformers import EnergyCallback


class RandomTokens(torch.utils.data.Dataset):
    """Sequences of random token ids labelled by whether token 1 appears more than token 2."""

    def __init__(self, n, seed, vocab=64, length=16):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)
        self.labels = ((self.ids == 1).sum(1) > (self.ids == 2).sum(1)).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meter", default="auto", help="meter name, or auto [default: auto]")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--log-dir", help="ebedge's run-directory files, for `ebedge report`")
    args = parser.parse_args()

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    with tempfile.TemporaryDirectory() as scratch:
        training = TrainingArguments(output_dir=scratch, num_train_epochs=args.epochs,
                                     per_device_train_batch_size=32, eval_strategy="epoch",
                                     logging_strategy="epoch", save_strategy="no", report_to=[],
                                     use_cpu=True, disable_tqdm=True)
        trainer = Trainer(model=BertForSequenceClassification(config), args=training,
                          train_dataset=RandomTokens(256, 0), eval_dataset=RandomTokens(64, 1))
        energy = EnergyCallback(meters=[args.meter], log_dir=args.log_dir)
        energy.attach(trainer)
        trainer.train()
        energy.close()
    for entry in trainer.state.log_history:
        joules = {k: v for k, v in entry.items() if k.endswith("/joules")}
        if joules:
            print("step %d: %s" % (entry["step"], ", ".join("%s %.3f J" % kv
                                                            for kv in sorted(joules.items()))))
    for m in energy.measurements:
        print("%s: %.3f s, %.3f J (%.3f W avg), %s by %s" % (
            m.name, m.seconds, m.energy_j, m.power_w, m.method, m.meter))


if __name__ == "__main__":
    main()
