"""Learning-rate schedules as the paper writes them, parsed without torch (settings use them).

A schedule is a list of (epoch, lr) steps: lr holds from its epoch until the next step. The paper
writes its schedules as [80LR0.01, 120LR0.001] (lr 0.1, then 0.01 from epoch 80, 0.001 from 120)
and [0LR0.01, 100LR0.001] (0.01 from the start, 0.001 from epoch 100); ebedge takes them as
`--lr-schedule 0:0.1,80:0.01,120:0.001` and `--lr-schedule 0:0.01,100:0.001`. Without one, the
schedule is `lr`, multiplied by `lr_gamma` at each of `milestones`, whose default is the paper's
per dataset: 50% and 75% of the epochs on CIFAR (80, 120 of 160), one and two thirds on ImageNet
(30, 60 of 90, the official ResNet scripts).
"""
from ebedge.config import catalog
from ebedge.errors import EbedgeError

IMAGENET_MODELS = ("resnet18", "resnet50")


def _items(value, what):
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise EbedgeError("%s must be a comma-separated string or a list, got %r" % (what, value))


def parse_milestones(value):
    """'30,60' or [30, 60] -> [30, 60]: strictly increasing whole epochs >= 1."""
    out = []
    for item in _items(value, "milestones"):
        try:
            epoch = int(item)
        except (TypeError, ValueError):
            raise EbedgeError("milestones must be whole epochs, got %r" % (item,))
        if isinstance(item, bool) or isinstance(item, float) or epoch < 1:
            raise EbedgeError("milestones must be whole epochs of at least 1, got %r" % (item,))
        if out and epoch <= out[-1]:
            raise EbedgeError("milestones must increase, got %r after %r" % (epoch, out[-1]))
        out.append(epoch)
    return out


def parse_lr_schedule(value):
    """'0:0.01,100:0.001' (or [[0, 0.01], [100, 0.001]]) -> [(0, 0.01), (100, 0.001)].

    The first step must be at epoch 0, epochs must increase and every lr must be positive.
    """
    steps = []
    for item in _items(value, "lr_schedule"):
        try:
            if isinstance(item, str):
                epoch_text, lr_text = item.split(":")
                epoch, lr = int(epoch_text), float(lr_text)
            else:
                epoch, lr = item
                if isinstance(epoch, bool) or int(epoch) != epoch:
                    raise ValueError(epoch)
                epoch, lr = int(epoch), float(lr)
        except (TypeError, ValueError):
            raise EbedgeError("lr_schedule steps are EPOCH:LR, e.g. 0:0.1,80:0.01; got %r" % (item,))
        if not lr > 0 or lr != lr or lr == float("inf"):
            raise EbedgeError("lr_schedule learning rates must be positive, got %r" % (item,))
        if steps and epoch <= steps[-1][0]:
            raise EbedgeError("lr_schedule epochs must increase, got %r" % (item,))
        steps.append((epoch, lr))
    if not steps or steps[0][0] != 0:
        raise EbedgeError("lr_schedule must start at epoch 0, e.g. 0:0.1,80:0.01,120:0.001")
    return steps


def format_lr_schedule(steps):
    """[(0, 0.01), (100, 0.001)] -> '0:0.01,100:0.001' (the settings' JSON-friendly form)."""
    return ",".join("%d:%r" % (epoch, lr) for epoch, lr in steps)


def default_milestones(model, epochs):
    """The paper's decay epochs for a schedule of `epochs`: ImageNet models 1/3 and 2/3 (30, 60 of
    90), CIFAR models 50% and 75% (80, 120 of 160)."""
    if model in IMAGENET_MODELS:
        marks = [epochs // 3, 2 * epochs // 3]
    else:
        marks = [int(epochs * 0.5), int(epochs * 0.75)]
    return [m for m in marks if m >= 1]  # a 1-epoch schedule keeps its lr


class StepSchedule(object):
    """lr per absolute epoch index from (epoch, lr) steps."""

    def __init__(self, epochs, steps):
        if epochs < 1:
            raise EbedgeError("epochs must be at least 1, got %d" % epochs)
        self.epochs = int(epochs)
        self.steps = [(int(e), float(lr)) for e, lr in steps]

    @property
    def lr(self):
        """The initial learning rate (what the optimizer is built with)."""
        return self.steps[0][1]

    def lr_at(self, epoch):
        lr = self.steps[0][1]
        for start, value in self.steps:
            if epoch >= start:
                lr = value
        return lr

    def as_dict(self):
        return {"epochs": self.epochs, "steps": [list(s) for s in self.steps]}


def steps_for(settings, epochs):
    """The (epoch, lr) steps of a schedule of `epochs` epochs under `settings`."""
    if settings.lr_schedule:
        return parse_lr_schedule(settings.lr_schedule)
    milestones = settings.milestones
    if milestones is None:
        milestones = default_milestones(settings.model, epochs)
    lr, gamma = float(settings.lr), float(settings.lr_gamma)
    return [(0, lr)] + [(m, lr * gamma ** (i + 1)) for i, m in enumerate(milestones)]


def schedule_for(settings, epochs=None):
    """The run's StepSchedule over `epochs` (default settings.epochs)."""
    epochs = settings.epochs if epochs is None else epochs
    return StepSchedule(epochs, steps_for(settings, epochs))


def retrain_schedule_for(settings, epochs=None):
    """The schedule tickets are retrained with: settings.retrain_lr_schedule where a suite asks
    for one (Table 1 searches under [0LR0.01, 100LR0.001] and retrains under the standard one),
    else the run's own schedule."""
    epochs = settings.epochs if epochs is None else epochs
    if settings.retrain_lr_schedule:
        return StepSchedule(epochs, parse_lr_schedule(settings.retrain_lr_schedule))
    return schedule_for(settings, epochs)


def method_epochs(method, epochs, eb_epoch=None):
    """(dense epochs, pruned epochs, structure) of `method` over an `epochs`-long schedule: the
    cost structure the paper's Table 2 prices, as the method registered it (ebedge.config.catalog).
    Training FLOPs (ebedge.training.flops) and a suite's time left (ebedge.run.suite) use it.

    Raises ValueError for an unknown method, or an EB method without an EB epoch in 1..epochs."""
    chosen = catalog.known(method)
    if chosen is None:
        raise ValueError("no cost structure for method %r; known: %s"
                         % (method, ", ".join(sorted(catalog.method_names()))))
    return chosen.epochs(epochs, eb_epoch)