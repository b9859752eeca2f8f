"""evaluate(): exact top-1 and top-5 counts from known logits."""
import torch
from torch import nn

from ebedge.training.train import evaluate


class Fixed(nn.Module):
    """Returns the logits stored for each input index (the input is the index)."""

    def __init__(self, logits):
        super(Fixed, self).__init__()
        self.logits = logits
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.logits[x.long().view(-1)]


def test_top1_and_top5_are_exact_counts():
    ranks = torch.arange(10, dtype=torch.float32)  # class 9 scores highest, class 0 lowest
    logits = ranks.repeat(6, 1)
    labels = torch.tensor([9, 5, 4, 3, 0, 9])  # top-1 hits: 2; top-5 (classes 5..9) hits: 3
    batches = [(torch.tensor([0, 1, 2]), labels[:3]), (torch.tensor([3, 4, 5]), labels[3:])]
    result = evaluate(Fixed(logits), batches, torch.device("cpu"))
    assert (result.correct, result.correct5, result.total) == (2, 3, 6)
    assert result.accuracy == 2 / 6.0 and result.accuracy_top5 == 3 / 6.0


def test_fewer_than_five_classes_count_every_class_as_top5():
    logits = torch.tensor([[0.0, 1.0, 2.0]] * 2)
    result = evaluate(Fixed(logits), [(torch.tensor([0, 1]), torch.tensor([0, 2]))], torch.device("cpu"))
    assert result.accuracy == 0.5 and result.accuracy_top5 == 1.0
