"""Datasets: the built-in synthetic set is deterministic; ImageFolder trees load; bad paths say why."""
import os

import pytest
import torch

from conftest import CIFAR_JPEG
from ebedge.training.data import load_dataset
from ebedge.errors import EbedgeError


def _images(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def test_synthetic_is_deterministic_per_seed_and_classes_differ():
    a = load_dataset("synthetic", seed=3, augment=False, limit_train=64)
    b = load_dataset("synthetic", seed=3, augment=False, limit_train=64)
    c = load_dataset("synthetic", seed=4, augment=False, limit_train=64)
    assert torch.equal(_images(a.train), _images(b.train))
    assert not torch.equal(_images(a.train), _images(c.train))
    assert a.num_classes == 10 and a.input_size == (3, 32, 32)
    # train and test are different draws of the same classes
    assert not torch.equal(_images(a.test)[:8], _images(a.train)[:8])
    labels = [a.train[i][1] for i in range(len(a.train))]
    assert len(set(labels)) == 10


def test_limits_take_a_seeded_subset():
    full = load_dataset("synthetic", seed=1)
    small = load_dataset("synthetic", seed=1, limit_train=100, limit_test=20)
    assert (len(full.train), len(small.train), len(small.test)) == (2000, 100, 20)


@pytest.mark.skipif(not os.path.isdir(CIFAR_JPEG), reason="../shared/data/cifar10-jpeg absent")
def test_imagefolder_reads_the_cifar_jpeg_subset():
    data = load_dataset("imagefolder", data_dir=CIFAR_JPEG, limit_train=50, limit_test=10)
    image, label = data.train[0]
    assert data.num_classes == 10 and data.input_size == (3, 32, 32)
    assert image.shape == (3, 32, 32) and 0 <= label < 10
    assert len(data.train) == 50 and len(data.test) == 10


def test_bad_data_directories_are_explained(tmp_path):
    with pytest.raises(EbedgeError, match="data directory not found"):
        load_dataset("imagefolder", data_dir=str(tmp_path / "missing"))
    (tmp_path / "only-train" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(EbedgeError, match="train/ and test/"):
        load_dataset("imagefolder", data_dir=str(tmp_path / "only-train"))
    with pytest.raises(EbedgeError, match="needs --data-dir"):
        load_dataset("cifar10")
