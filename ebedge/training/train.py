"""The one training/evaluation loop every method uses.

Network-slimming training as the paper and its code do it: SGD (momentum 0.9, weight decay 1e-4
on every parameter, BN included), a step learning-rate schedule, and the L1 penalty on BN scales
applied as `s * sign(gamma)` added to their gradients between backward and step.
"""
import contextlib
import random

import numpy as np
import torch
import torch.nn as nn

from ebedge.errors import EbedgeError


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


class Compute(object):
    """How the loop runs on the device: mixed precision, memory format, cuDNN autotuning.

    `amp`: CUDA autocast (fp16, tensor cores on Xavier/Orin) with a gradient scaler; refused on the
    CPU, whose autocast is bfloat16 and would measure something else. `channels_last`: NHWC
    weights and inputs. `cudnn_benchmark`: cuDNN picks the fastest kernels per shape (CUDA only).
    """

    def __init__(self, device, amp=False, channels_last=False, cudnn_benchmark=True):
        if amp and device.type != "cuda":
            raise EbedgeError("--amp needs a CUDA device (CPU autocast is bfloat16, not what a "
                              "Jetson's tensor cores run); drop --amp or use --device cuda")
        self.device = device
        self.amp = bool(amp)
        self.channels_last = bool(channels_last)
        self.cudnn_benchmark = bool(cudnn_benchmark) if device.type == "cuda" else None
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        self.scaler = _grad_scaler() if self.amp else None
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        if not self.amp:
            return _full_precision()
        if hasattr(torch, "autocast"):  # torch >= 1.10
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.cuda.amp.autocast()

    def prepare(self, model):
        """Put `model` in the loop's memory format (a no-op when it already is)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def inputs(self, images):
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=self.memory_format) if self.channels_last else images

    def describe(self):
        return {"amp": self.amp, "channels_last": self.channels_last,
                "cudnn_benchmark": self.cudnn_benchmark}


@contextlib.contextmanager
def _full_precision():
    yield


def _grad_scaler():
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):  # newer torch: torch.cuda.amp is deprecated
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


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
    """Loss and exact counts of one pass; `correct5` (top-5 hits) only from `evaluate`."""

    def __init__(self, loss, correct, total, correct5=None):
        self.loss = loss
        self.correct = correct
        self.total = total
        self.correct5 = correct5

    @property
    def accuracy(self):
        return self.correct / float(self.total) if self.total else 0.0

    @property
    def accuracy_top5(self):
        """Top-5 accuracy (Table 3 reports it); with fewer than 5 classes, top-k over all of them."""
        if self.correct5 is None:
            return None
        return self.correct5 / float(self.total) if self.total else 0.0


def train_epoch(model, loader, optimizer, device, sparsity=0.0, after_backward=None,
                after_step=None, progress=None, compute=None):
    """One pass over `loader`. Hooks let methods act between backward and step (SFP, low precision).

    With AMP the gradients are unscaled before the sparsity term and the hooks see them.
    """
    compute = compute or Compute(device, cudnn_benchmark=torch.backends.cudnn.benchmark)
    compute.prepare(model).train()
    criterion = nn.CrossEntropyLoss()
    scaler = compute.scaler
    loss_sum, correct, total = 0.0, 0, 0
    for images, labels in loader:
        images, labels = compute.inputs(images), labels.to(device, non_blocking=True)
        optimizer.zero_grad()
        with compute.autocast():
            output = model(images)
            loss = criterion(output, labels)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        add_bn_sparsity_grad(model, sparsity)
        if after_backward is not None:
            after_backward(model)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if after_step is not None:
            after_step(model)
        loss_sum += float(loss.item()) * labels.size(0)
        correct += int((output.argmax(1) == labels).sum().item())
        total += labels.size(0)
        if progress is not None:
            progress(1)
    return EpochResult(loss_sum / max(total, 1), correct, total)


def evaluate(model, loader, device, compute=None):
    """Exact-count top-1 and top-5 accuracy over the whole loader (not an average of per-batch
    accuracies)."""
    compute = compute or Compute(device, cudnn_benchmark=torch.backends.cudnn.benchmark)
    compute.prepare(model).eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, correct5, total = 0.0, 0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = compute.inputs(images), labels.to(device, non_blocking=True)
            with compute.autocast():
                output = model(images)
            loss_sum += float(criterion(output.float(), labels).item())
            correct += int((output.argmax(1) == labels).sum().item())
            top5 = output.topk(min(5, output.size(1)), dim=1)[1]
            correct5 += int((top5 == labels.unsqueeze(1)).any(dim=1).sum().item())
            total += labels.size(0)
    return EpochResult(loss_sum / max(total, 1), correct, total, correct5)
