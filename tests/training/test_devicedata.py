"""The device-resident pipeline: seeded batches, crop/flip exactly as specified, the decode cache,
and small ImageFolder trees of any size and channel count."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ebedge.training.data import load_dataset, make_pipeline
from ebedge.training.devicedata import DeviceBatches, crop_flip, random_crop_flip
from ebedge.errors import EbedgeError
from ebedge.run.runner import execute

CPU = torch.device("cpu")


def _batches(loader, epoch):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_same_seed_and_epoch_give_the_same_batches():
    data = load_dataset("synthetic", seed=2, limit_train=200, limit_test=50)
    a, _, info = make_pipeline(data, 32, CPU, seed=5)
    b, _, _ = make_pipeline(data, 32, CPU, seed=5)
    c, _, _ = make_pipeline(data, 32, CPU, seed=6)
    assert info["data_pipeline"] == "tensor" and len(a) == 7
    first, again, other = _batches(a, 3), _batches(b, 3), _batches(c, 3)
    for (x1, y1), (x2, y2) in zip(first, again):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(first[0][0], other[0][0])
    assert not torch.equal(first[0][0], _batches(a, 4)[0][0])  # another epoch, another draw
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(data.train[i][1] for i in range(len(data.train)))


def test_test_split_is_unaugmented_in_order_and_normalised_like_torchvision():
    data = load_dataset("synthetic", seed=2, limit_train=64, limit_test=40)
    _, test, _ = make_pipeline(data, 32, CPU)
    x, y = next(iter(test))
    reference = torch.stack([data.test[i][0] for i in range(len(data.test))])
    assert torch.equal(y, torch.tensor([data.test[i][1] for i in range(len(data.test))]))
    assert x.shape == (40, 3, 32, 32)
    assert torch.allclose(x, reference, atol=0.5 / 255 / 0.25 + 1e-6)  # uint8 quantisation only


def test_crop_flip_matches_a_padded_window_per_image():
    images = torch.randint(1, 256, (5, 3, 6, 7), dtype=torch.uint8)
    dy = torch.tensor([0, 8, 4, 2, 8])
    dx = torch.tensor([0, 8, 4, 7, 0])
    flip = torch.tensor([False, True, False, True, False])
    out = crop_flip(images, dy, dx, flip, padding=4)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.zeros(5, 3, 14, 15, dtype=torch.uint8)
    padded[:, :, 4:10, 4:11] = images
    for i in range(5):
        window = padded[i, :, int(dy[i]):int(dy[i]) + 6, int(dx[i]):int(dx[i]) + 7]
        assert torch.equal(out[i], window.flip(2) if flip[i] else window)
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all()  # padding is zeros
    assert (out[0, :, 4:, 4:] > 0).all()
    assert torch.equal(out[2], images[2])  # centred, unflipped: the image itself


def test_random_crop_flip_draws_every_offset_and_both_flips():
    image = (torch.arange(16, dtype=torch.uint8) + 1).view(1, 1, 4, 4)
    out = random_crop_flip(image.repeat(300, 1, 1, 1), torch.Generator().manual_seed(0), padding=2)
    combos = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)]
    candidates = torch.stack([crop_flip(image, torch.tensor([dy]), torch.tensor([dx]),
                                        torch.tensor([f]), 2)[0] for dy, dx, f in combos])
    seen = set()
    for crop in out:
        match = [i for i in range(len(combos)) if torch.equal(candidates[i], crop)]
        assert len(match) == 1  # every output is one padded window, flipped or not
        seen.add(match[0])
    assert len(seen) == len(combos)  # offsets 0..2p in both axes, both flips, all drawn


def test_padding_shows_as_normalised_black():
    images = torch.full((64, 3, 8, 8), 255, dtype=torch.uint8)
    loader = DeviceBatches(images, torch.zeros(64), 64, CPU, ((0.5,) * 3, (0.25,) * 3),
                           augment=True, shuffle=True, seed=1)
    x, _ = next(iter(loader))
    assert set(torch.unique(x).tolist()) == {-2.0, 2.0}  # (0 - 0.5) / 0.25 and (1 - 0.5) / 0.25


def _tree(root, size, mode, per_class=6):
    rng = np.random.RandomState(0)
    for split in ("train", "test"):
        for label, name in enumerate(("a", "b")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
                pixels = rng.randint(0, 100, shape) + 120 * label
                Image.fromarray(pixels.astype(np.uint8), mode).save(str(folder / ("%d.png" % i)))
    return str(root)


def test_decode_cache_is_written_next_to_the_data_and_hit_the_second_time(tmp_path):
    root = _tree(tmp_path / "tree", (32, 32), "RGB")
    data = load_dataset("imagefolder", data_dir=root)
    _, _, first = make_pipeline(data, 4, CPU)
    _, _, second = make_pipeline(data, 4, CPU)
    cache = first["data_cache"]["train"]
    assert cache["hit"] is False and cache["fallback"] is False
    assert os.path.dirname(cache["path"]) == os.path.join(root, ".ebedge-cache")
    assert second["data_cache"]["train"] == dict(cache, hit=True)
    os.utime(os.path.join(root, "train", "a", "0.png"), (1, 1))  # a changed tree is decoded again
    _, _, third = make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
    assert third["data_cache"]["train"]["hit"] is False
    assert third["data_cache"]["train"]["path"] != cache["path"]


def test_read_only_data_dir_caches_in_the_user_cache(tmp_path, monkeypatch):
    root = _tree(tmp_path / "tree", (32, 32), "RGB")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("ebedge.training.imagecache._writable_dir",
                        lambda path: path.startswith(str(tmp_path / "xdg")) and _mkdir(path))
    _, _, info = make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
    cache = info["data_cache"]["test"]
    assert cache["fallback"] is True and cache["path"].startswith(str(tmp_path / "xdg" / "ebedge"))
    assert not os.path.exists(os.path.join(root, ".ebedge-cache"))
    _, _, again = make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
    assert again["data_cache"]["test"]["hit"] is True


def _mkdir(path):
    if not os.path.isdir(path):
        os.makedirs(path)
    return True


def test_a_corrupt_cache_file_is_decoded_again(tmp_path):
    root = _tree(tmp_path / "tree", (32, 32), "RGB")
    _, _, info = make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
    with open(info["data_cache"]["train"]["path"], "wb") as handle:
        handle.write(b"not an npz")
    _, _, again = make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
    assert again["data_cache"]["train"]["hit"] is False


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
@pytest.mark.parametrize("size,mode", [((28, 28), "L"), ((40, 48), "RGBA")])
def test_small_trees_of_other_sizes_and_channels_train_and_evaluate(tmp_path, pipeline, size, mode):
    root = _tree(tmp_path / "tree", size, mode)
    out = str(tmp_path / "run")
    summary = execute({"method": "dense", "model": "vgg11", "width": 0.0625, "dataset": "imagefolder",
                       "data_dir": root, "epochs": 1, "batch_size": 4, "device": "cpu",
                       "data_pipeline": pipeline, "workers": 0}, out=out, quiet=True)
    assert summary["status"] == "complete" and summary["test_acc"] is not None
    compute = json.load(open(os.path.join(out, "config.json")))["compute"]
    assert compute["data_pipeline"] == pipeline and compute["workers"] == 0
    assert compute["amp"] is False and compute["channels_last"] is False
    data = load_dataset("imagefolder", data_dir=root, augment=False)
    assert data.train[0][0].shape == data.test[0][0].shape == (3, 32, 32)


def test_amp_on_the_cpu_is_refused_in_one_line(tmp_path):
    with pytest.raises(EbedgeError, match="--amp needs a CUDA device"):
        execute({"method": "dense", "model": "vgg11", "width": 0.0625, "epochs": 1,
                 "limit_train": 8, "limit_test": 8, "device": "cpu", "amp": True},
                out=str(tmp_path / "run"), quiet=True)


def test_a_directory_without_write_permission_counts_as_read_only(tmp_path, monkeypatch):
    root = _tree(tmp_path / "tree", (32, 32), "RGB")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    os.chmod(root, 0o555)  # root could still write here; the mode says not to
    try:
        _, _, info = make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
    finally:
        os.chmod(root, 0o755)
    assert info["data_cache"]["train"]["fallback"] is True
    assert not os.path.exists(os.path.join(root, ".ebedge-cache"))


def test_a_file_that_is_no_image_is_named_in_one_line(tmp_path):
    root = _tree(tmp_path / "tree", (32, 32), "RGB")
    with open(os.path.join(root, "train", "a", "9.png"), "wb") as handle:
        handle.write(b"\x89PNG garbage")
    with pytest.raises(EbedgeError, match="cannot decode image .*9.png"):
        make_pipeline(load_dataset("imagefolder", data_dir=root), 4, CPU)
