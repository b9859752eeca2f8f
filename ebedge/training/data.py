"""Datasets: CIFAR-10/100 (torchvision), any ImageFolder tree, and a built-in synthetic set.

The synthetic set exists so that the default run and the tests need no files and no network:
ten classes of smooth random colour patterns (one prototype per class, drawn from the seed),
each sample a shifted, partly mixed and noisy copy of its prototype. A small VGG separates them
well above chance in a few epochs but not instantly, so accuracy curves and Early-Bird masks
behave like they do on real data.
"""
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from ebedge.training.devicedata import DeviceBatches
from ebedge.errors import EbedgeError
from ebedge.training.imagecache import cached_decode
from ebedge.config.settings import DATA_PIPELINES as PIPELINES, DATASETS


# Per-dataset normalisation. CIFAR-10 uses the statistics of the official Early-Bird code.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SYNTHETIC_STATS = ((0.5,) * 3, (0.25,) * 3)

SYNTHETIC_TRAIN = 2000
SYNTHETIC_TEST = 500


class DataBundle(object):
    """What training needs to know about a dataset."""

    def __init__(self, name, train, test, num_classes, input_size, stats=CIFAR10_STATS,
                 small=True, augment=True):
        self.name = name
        self.train = train
        self.test = test
        self.num_classes = num_classes
        self.input_size = input_size  # (C, H, W)
        self.stats = stats  # (mean, std) per channel
        self.small = small  # small images: the device-resident pipeline can hold them
        self.augment = augment  # the training split is augmented (crop and flip)


class SyntheticImages(Dataset):
    """Deterministic 10-class 32x32 RGB images; the same seed gives the same images."""

    def __init__(self, size, seed=0, split_offset=0, num_classes=10, transform=None):
        gen = torch.Generator().manual_seed(int(seed))
        coarse = torch.rand(num_classes, 3, 4, 4, generator=gen)
        self.prototypes = F.interpolate(coarse, size=(32, 32), mode="bilinear",
                                        align_corners=False)
        sample_gen = torch.Generator().manual_seed(int(seed) * 1000003 + 7 + split_offset)
        self.labels = torch.randint(0, num_classes, (size,), generator=sample_gen)
        others = torch.randint(0, num_classes, (size,), generator=sample_gen)
        shifts = torch.randint(-4, 5, (size, 2), generator=sample_gen)
        mix = 0.5 * torch.rand(size, 1, 1, 1, generator=sample_gen)
        noise = 0.15 * torch.randn(size, 3, 32, 32, generator=sample_gen)
        images = (1 - mix) * self.prototypes[self.labels] + mix * self.prototypes[others] + noise
        for i in range(size):
            images[i] = torch.roll(images[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])),
                                   dims=(1, 2))
        self.images = images.clamp_(0.0, 1.0)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class SmallImagePrep(object):
    """Any small image -> the model's 32x32 RGB input: RGB conversion, shorter side to 32, centre crop.

    Used by both train and test transforms and by the device pipeline's decoder, so a tree of
    28x28 greyscale or 40x48 RGBA images trains and evaluates like CIFAR.
    """
    name = "rgb-resize32-centercrop32"

    def __init__(self, size=32):
        from torchvision import transforms
        self.size = size
        self.resize = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])

    def __call__(self, image):
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = self.resize(image)
        return image


def _cifar_transforms(stats, augment, tensor_input=False, prep=None):
    from torchvision import transforms
    steps = [prep] if prep is not None else []
    if augment:
        steps += [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    if not tensor_input:
        steps.append(transforms.ToTensor())
    steps.append(transforms.Normalize(*stats))
    return transforms.Compose(steps)


def _imagenet_transforms(train):
    from torchvision import transforms
    if train:
        steps = [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(256), transforms.CenterCrop(224)]
    return transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(*IMAGENET_STATS)])


def _limited(dataset, limit, seed):
    """A seeded random subset of `limit` items (the whole set when limit is None or larger)."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit <= 0:
        raise EbedgeError("limits must be positive, got %d" % limit)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(int(seed)))
    return Subset(dataset, sorted(order[:limit].tolist()))


def _imagefolder(data_dir, augment):
    from torchvision import datasets
    from PIL import Image
    if not data_dir or not os.path.isdir(data_dir):
        raise EbedgeError("data directory not found: %s" % data_dir)
    train_dir = os.path.join(data_dir, "train")
    test_dir = next((os.path.join(data_dir, d) for d in ("test", "val")
                     if os.path.isdir(os.path.join(data_dir, d))), None)
    if not os.path.isdir(train_dir) or test_dir is None:
        raise EbedgeError("%s must hold train/ and test/ (or val/) class-per-folder subtrees"
                          % data_dir)
    probe = _image_folder(datasets, train_dir)
    if not probe.samples:
        raise EbedgeError("no images found under %s" % train_dir)
    try:
        with Image.open(probe.samples[0][0]) as first:
            small = max(first.size) <= 64
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise EbedgeError("%s: not an image (%s)" % (probe.samples[0][0], exc))
    if small:  # CIFAR-like images: CIFAR pipeline at 32x32 RGB
        train_tf = _cifar_transforms(CIFAR10_STATS, augment, prep=SmallImagePrep())
        test_tf = _cifar_transforms(CIFAR10_STATS, False, prep=SmallImagePrep())
        input_size = (3, 32, 32)
    else:
        train_tf = _imagenet_transforms(augment)
        test_tf = _imagenet_transforms(False)
        input_size = (3, 224, 224)
    train = _image_folder(datasets, train_dir, train_tf)
    test = _image_folder(datasets, test_dir, test_tf)
    if test.classes != train.classes:
        raise EbedgeError("%s: train/ and %s/ hold different classes"
                          % (data_dir, os.path.basename(test_dir)))
    return train, test, len(train.classes), input_size, small


def _image_folder(datasets, path, transform=None):
    """torchvision's ImageFolder; a tree it cannot use (no class folder, a class without
    images) is one line, not its traceback."""
    try:
        return datasets.ImageFolder(path, transform=transform)
    except (OSError, RuntimeError) as exc:  # FileNotFoundError; RuntimeError in older releases
        raise EbedgeError("%s: %s" % (path, str(exc).strip().splitlines()[0] if str(exc).strip()
                                      else type(exc).__name__))


def _cifar(name, data_dir, download, augment):
    from torchvision import datasets
    cls, stats, classes = ((datasets.CIFAR10, CIFAR10_STATS, 10) if name == "cifar10"
                           else (datasets.CIFAR100, CIFAR100_STATS, 100))
    if not data_dir:
        raise EbedgeError("%s needs --data-dir (add --download to fetch it there)" % name)
    if not download and not os.path.isdir(data_dir):
        raise EbedgeError("data directory not found: %s (add --download to fetch %s)"
                          % (data_dir, name))
    try:
        train = cls(data_dir, train=True, download=download,
                    transform=_cifar_transforms(stats, augment))
        test = cls(data_dir, train=False, download=download,
                   transform=_cifar_transforms(stats, False))
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise EbedgeError("%s in %s: %s" % (name, data_dir, exc))
    return train, test, classes, (3, 32, 32)


def load_dataset(name, data_dir=None, download=False, seed=0, limit_train=None, limit_test=None,
                 augment=True):
    """Build the train and test sets of `name` (one of DATASETS) as a DataBundle."""
    data_dir = os.path.expanduser(data_dir) if data_dir else data_dir
    if name == "synthetic":
        train = SyntheticImages(SYNTHETIC_TRAIN, seed=seed, split_offset=0,
                                transform=_cifar_transforms(SYNTHETIC_STATS, augment,
                                                            tensor_input=True))
        test = SyntheticImages(SYNTHETIC_TEST, seed=seed, split_offset=1,
                               transform=_cifar_transforms(SYNTHETIC_STATS, False,
                                                           tensor_input=True))
        classes, input_size, stats, small = 10, (3, 32, 32), SYNTHETIC_STATS, True
    elif name in ("cifar10", "cifar100"):
        train, test, classes, input_size = _cifar(name, data_dir, download, augment)
        stats, small = (CIFAR10_STATS if name == "cifar10" else CIFAR100_STATS), True
    elif name == "imagefolder":
        train, test, classes, input_size, small = _imagefolder(data_dir, augment)
        stats = CIFAR10_STATS if small else IMAGENET_STATS
    else:
        raise EbedgeError("unknown dataset %r; choose one of: %s" % (name, ", ".join(DATASETS)))
    return DataBundle(name, _limited(train, limit_train, seed), _limited(test, limit_test, seed + 1),
                      classes, input_size, stats=stats, small=small, augment=augment)


def make_loaders(bundle, batch_size, workers=0, seed=0, test_batch_size=256, pin_memory=False):
    """The per-image torchvision pipeline: seeded shuffling for training, fixed order for testing.

    With workers, they persist across epochs (no re-fork per epoch); `pin_memory` for CUDA copies.
    """
    gen = torch.Generator().manual_seed(int(seed))
    common = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0)
    train = DataLoader(bundle.train, batch_size=batch_size, shuffle=True, generator=gen,
                       drop_last=False, **common)
    test = DataLoader(bundle.test, batch_size=test_batch_size, shuffle=False, **common)
    return train, test


def resolve_workers(workers):
    """`auto` = all cores but the one the training loop runs on; a number is taken as is."""
    if workers in (None, "auto"):
        return max((os.cpu_count() or 1) - 1, 0)
    return int(workers)


def split_tensors(dataset):
    """A split as (uint8 images (N, C, H, W), int64 labels, cache description) for the device pipeline.

    Synthetic images are quantised to uint8 like any photo; CIFAR arrays are taken as they are;
    ImageFolder files are decoded once through SmallImagePrep and cached (ebedge.training.imagecache).
    """
    base, index = (dataset.dataset, list(dataset.indices)) if isinstance(dataset, Subset) \
        else (dataset, None)
    cache = None
    if isinstance(base, SyntheticImages):
        images = (base.images * 255.0).round_().to(torch.uint8)
        labels = base.labels.clone()
    elif hasattr(base, "samples"):  # ImageFolder
        samples = base.samples if index is None else [base.samples[i] for i in index]
        index = None
        data_root = os.path.dirname(os.path.normpath(base.root))
        split = os.path.basename(os.path.normpath(base.root))
        prep = SmallImagePrep()
        array, cache = cached_decode(data_root, split, [path for path, _ in samples], prep,
                                     prep.name)
        images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    elif hasattr(base, "data") and hasattr(base, "targets"):  # torchvision CIFAR
        images = torch.from_numpy(base.data).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor(base.targets, dtype=torch.long)
    else:
        raise EbedgeError("the tensor pipeline cannot read %s; use --data-pipeline torchvision"
                          % type(base).__name__)
    if index is not None:
        keep = torch.tensor(index, dtype=torch.long)
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    return images, labels, cache


def make_pipeline(bundle, batch_size, device, pipeline="auto", workers="auto", seed=0,
                  channels_last=False, test_batch_size=256):
    """(train loader, test loader, description for config.json) for `pipeline`.

    `auto`: the device-resident tensor pipeline for small images (CIFAR, synthetic, small
    ImageFolder trees), torchvision's per-image pipeline with worker processes for large ones.
    """
    if pipeline not in PIPELINES:
        raise EbedgeError("unknown data pipeline %r; choose one of: %s"
                          % (pipeline, ", ".join(PIPELINES)))
    if pipeline == "auto":
        pipeline = "tensor" if bundle.small else "torchvision"
    if pipeline == "tensor":
        if not bundle.small:
            raise EbedgeError("the tensor pipeline holds small images (up to 64 px) on the "
                              "device; use --data-pipeline torchvision for %s" % bundle.name)
        loaders, caches = [], {}
        for name, split, train in (("train", bundle.train, True), ("test", bundle.test, False)):
            images, labels, cache = split_tensors(split)
            if cache is not None:
                caches[name] = cache
            loaders.append(DeviceBatches(
                images, labels, batch_size if train else test_batch_size, device, bundle.stats,
                augment=train and bundle.augment, shuffle=train, seed=seed,
                channels_last=channels_last))
        return loaders[0], loaders[1], {"data_pipeline": "tensor", "workers": 0,
                                        "pin_memory": False, "data_cache": caches or None}
    workers = resolve_workers(workers)
    train, test = make_loaders(bundle, batch_size, workers, seed, test_batch_size,
                               pin_memory=device.type == "cuda")
    return train, test, {"data_pipeline": "torchvision", "workers": workers,
                         "pin_memory": device.type == "cuda", "data_cache": None}
