"""The one training/evaluation loop every method uses.

Network-slimming training as the paper and its code do it: SGD (momentum 0.9, weight decay 1e-4
on every parameter, BN included), a step learning-rate schedule, and the L1 penalty on BN scales
applied as `s * sign(gamma)` added to their gradients between backward and step.
"""
import random

import numpy as np
import torch
import torch.nn as nn

from ebedge.errors import EbedgeError


class Schedule(object):
    """Step learning-rate schedule over absolute epoch indices.

    Defaults follow the paper: lr 0.1, x0.1 at 50% and 75% of the epochs (80 and 120 of 160).
    """

    def __init__(self, epochs, lr=0.1, milestones=None, gamma=0.1):
        if epochs < 1:
            raise EbedgeError("epochs must be at least 1, got %d" % epochs)
        if lr <= 0:
            raise EbedgeError("learning rate must be positive, got %g" % lr)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.gamma = float(gamma)
        self.milestones = sorted(milestones if milestones is not None
                                 else (int(epochs * 0.5), int(epochs * 0.75)))

    def lr_at(self, epoch):
        return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch >= m)

    def as_dict(self):
        return {"epochs": self.epochs, "lr": self.lr, "milestones": self.milestones,
                "gamma": self.gamma}


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def pick_device(name="auto"):
    """`auto` trains on CUDA where present (a Jetson's GPU) and on the CPU otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EbedgeError("--device cuda asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise EbedgeError("unknown device %r; choose auto, cpu or cuda" % name)
    return torch.device(name)


def synchronize(device):
    """Wait for queued GPU work so that a phase mark charges it to the phase that issued it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_optimizer(model, lr, momentum=0.9, weight_decay=1e-4):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


def add_bn_sparsity_grad(model, strength):
    """Subgradient of strength * |gamma| on every BN scale (network slimming's L1 term)."""
    if strength <= 0:
        return
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and module.weight is not None \
                and module.weight.grad is not None:
            module.weight.grad.add_(strength * torch.sign(module.weight.data))


class EpochResult(object):
    def __init__(self, loss, correct, total):
        self.loss = loss
        self.correct = correct
        self.total = total

    @property
    def accuracy(self):
        return self.correct / float(self.total) if self.total else 0.0


def train_epoch(model, loader, optimizer, device, sparsity=0.0, after_backward=None,
                after_step=None, progress=None):
    """One pass over `loader`. Hooks let methods act between backward and step (SFP, low precision)."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    loss_sum, correct, total = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        output = model(images)
        loss = criterion(output, labels)
        loss.backward()
        add_bn_sparsity_grad(model, sparsity)
        if after_backward is not None:
            after_backward(model)
        optimizer.step()
        if after_step is not None:
            after_step(model)
        loss_sum += float(loss.item()) * labels.size(0)
        correct += int((output.argmax(1) == labels).sum().item())
        total += labels.size(0)
        if progress is not None:
            progress(1)
    return EpochResult(loss_sum / max(total, 1), correct, total)


def evaluate(model, loader, device):
    """Exact-count accuracy over the whole loader (not an average of per-batch accuracies)."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            output = model(images)
            loss_sum += float(criterion(output, labels).item())
            correct += int((output.argmax(1) == labels).sum().item())
            total += labels.size(0)
    return EpochResult(loss_sum / max(total, 1), correct, total)
