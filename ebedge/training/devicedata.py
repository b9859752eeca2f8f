"""Device-resident batches for small-image datasets: the training loop spends its time on the model.

The whole split lives on the training device as one uint8 tensor (N, C, H, W); a batch is an
index_select, then augmentation (random crop with zero padding, horizontal flip) and normalisation
as a few tensor operations on the whole batch. Random numbers come from a CPU generator seeded by
(seed, epoch), so the same seed gives the same batches on any device and a resumed epoch draws
what the interrupted one drew. Same augmentation as torchvision's RandomCrop(32, padding=4) +
RandomHorizontalFlip, drawn per image.
"""
import torch


def crop_flip(images, dy, dx, flip, padding):
    """Crop every image of the uint8/float batch from its zero-padded copy at (dy, dx), mirrored where `flip`.

    `images` (B, C, H, W); `dy`, `dx` (B,) offsets in [0, 2 * padding]; `flip` (B,) bool.
    """
    batch, channels, height, width = images.shape
    padded = images.new_zeros((batch, channels, height + 2 * padding, width + 2 * padding))
    padded[:, :, padding:padding + height, padding:padding + width] = images
    device = images.device
    rows = dy.to(device)[:, None] + torch.arange(height, device=device)[None, :]
    cols = torch.arange(width, device=device)[None, :].repeat(batch, 1)
    flip = flip.to(device)
    cols[flip] = cols[flip].flip(1)
    cols = cols + dx.to(device)[:, None]
    picked = padded[torch.arange(batch, device=device)[:, None, None], :, rows[:, :, None],
                    cols[:, None, :]]  # (B, H, W, C): advanced indices first
    return picked.permute(0, 3, 1, 2)


def random_crop_flip(images, generator, padding=4):
    batch = images.shape[0]
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    return crop_flip(images, dy, dx, flip, padding)


class DeviceBatches(object):
    """An iterable of (normalised float images, labels) batches over uint8 tensors on `device`.

    Like a DataLoader it has len() (batches per epoch) and `dataset`-free iteration; `set_epoch`
    picks the epoch whose order and augmentation are drawn (otherwise each pass takes the next).
    """

    def __init__(self, images, labels, batch_size, device, stats, augment=False, shuffle=False,
                 seed=0, padding=4, channels_last=False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("DeviceBatches wants uint8 images (N, C, H, W), got %s %s"
                             % (images.dtype, tuple(images.shape)))
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.device = device
        channels = images.shape[1]
        mean, std = stats
        if len(mean) != channels:  # e.g. RGB statistics, single-channel images
            mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
        self.scale = (255.0 * torch.tensor(std, device=device)).view(1, -1, 1, 1)
        self.shift = (255.0 * torch.tensor(mean, device=device)).view(1, -1, 1, 1)
        self.augment = augment
        self.shuffle = shuffle
        self.seed = int(seed)
        self.padding = padding
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch = 0

    def __len__(self):
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def generator(self, epoch):
        return torch.Generator().manual_seed(self.seed * 1000003 + 7919 * int(epoch) + 1)

    def __iter__(self):
        gen = self.generator(self.epoch)
        self.epoch += 1
        count = len(self.labels)
        order = torch.randperm(count, generator=gen) if self.shuffle else torch.arange(count)
        order = order.to(self.device)
        for start in range(0, count, self.batch_size):
            index = order[start:start + self.batch_size]
            batch = self.images.index_select(0, index)
            if self.augment:
                batch = random_crop_flip(batch, gen, self.padding)
            batch = (batch.float() - self.shift) / self.scale
            yield batch.contiguous(memory_format=self.memory_format), self.labels.index_select(0, index)
