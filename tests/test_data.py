import urllib.error

import pytest
import torch

from aigc_course.data import (
    DatasetUnavailableError,
    available,
    info,
    load_images,
    load_points,
    online,
    resize,
    split_indices,
)
from aigc_course.data.shapes import make_shapes

OFFLINE_IMAGES = ["digits", "mnist5k", "shapes"]


def test_available_lists_every_kind() -> None:
    names = available()
    for name in [*OFFLINE_IMAGES, "mnist", "fashion_mnist", "cifar10",
                 "toy2d_ring", "toy2d_moons", "toy2d_spiral"]:
        assert name in names
    assert "toy2d_ring" not in available("images")
    assert available("points") == ["toy2d_moons", "toy2d_ring", "toy2d_spiral"]


@pytest.mark.parametrize("name,channels,size,total", [
    ("digits", 1, 8, 1797), ("mnist5k", 1, 28, 5000), ("shapes", 3, 32, 3000)])
def test_offline_images_contract(name: str, channels: int, size: int, total: int) -> None:
    parts = {s: load_images(name, s) for s in ("train", "val", "test")}
    assert sum(len(x) for x, _ in parts.values()) == total
    for images, labels in parts.values():
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape[1:] == (channels, size, size)
        assert images.min() >= -1 and images.max() <= 1
        assert len(images) == len(labels)
    train = parts["train"][0]
    assert train.max() - train.min() > 1.6                  # most of the range is used
    assert len(parts["train"][0]) == pytest.approx(0.7 * total, abs=10)


def test_digits_pixels_are_the_17_grey_levels() -> None:
    images, labels = load_images("digits", "all")
    levels = torch.unique(((images + 1) / 2 * 16).round())
    assert levels.tolist() == list(range(17))
    assert torch.bincount(labels).tolist()[:3] == [178, 182, 177]   # sklearn's class counts


@pytest.mark.parametrize("name", OFFLINE_IMAGES + ["toy2d_ring"])
def test_splits_are_disjoint_complete_and_fixed(name: str) -> None:
    loader = load_points if name.startswith("toy2d") else load_images
    _, labels = loader(name, "all")
    idx = {s: split_indices(labels, s) for s in ("train", "val", "test")}
    sets = {s: set(i.tolist()) for s, i in idx.items()}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert sets["train"] | sets["val"] | sets["test"] == set(range(len(labels)))
    # Fixed by the seed: the same call gives the same split; another seed another one.
    assert torch.equal(split_indices(labels, "test"), idx["test"])
    assert not torch.equal(split_indices(labels, "test", seed=1), idx["test"])
    # Stratified: every class keeps its share within one item per class.
    share_all = torch.bincount(labels) / len(labels)
    share_test = torch.bincount(labels[idx["test"]], minlength=len(share_all)) / len(idx["test"])
    assert (share_all - share_test).abs().max() < 0.01


def test_splits_hold_no_identical_images() -> None:
    train, _ = load_images("digits", "train")
    test, _ = load_images("digits", "test")
    flat_train = {tuple(x.flatten().tolist()) for x in train}
    overlap = sum(tuple(x.flatten().tolist()) in flat_train for x in test)
    assert overlap <= 2     # the UCI set itself holds a couple of identical digits


def test_image_size_resizes_and_max_items_limits() -> None:
    images, labels = load_images("digits", "train", image_size=16, max_items=10)
    assert images.shape == (10, 1, 16, 16) and labels.shape == (10,)
    assert images.min() >= -1 and images.max() <= 1
    small, _ = load_images("mnist5k", "val", image_size=14)
    assert small.shape[1:] == (1, 14, 14)


def test_resize_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        resize(torch.zeros(1, 1, 8, 8), 0)


def test_unknown_dataset_and_split_list_valid_values() -> None:
    with pytest.raises(ValueError, match="digits.*mnist5k"):
        load_images("cats")
    with pytest.raises(ValueError, match="train, val, test"):
        load_images("digits", "holdout")
    with pytest.raises(ValueError, match="load_points"):
        load_images("toy2d_ring")
    with pytest.raises(ValueError, match="load_images"):
        load_points("digits")
    with pytest.raises(ValueError, match="valid"):
        info("nope")


def test_points_contract() -> None:
    for name in available("points"):
        points, labels = load_points(name, "train")
        assert points.shape[1] == 2 and points.dtype == torch.float32
        assert len(points) == len(labels) == 7000
    ring, modes = load_points("toy2d_ring", "test")
    radius = ring.norm(dim=1)
    assert (radius - 2).abs().mean() < 0.1 and set(modes.tolist()) == set(range(8))


def test_shapes_attributes_are_true_and_deterministic() -> None:
    a, attrs = make_shapes(64, seed=3)
    b, _ = make_shapes(64, seed=3)
    assert torch.equal(a, b) and a.shape == (64, 3, 32, 32)
    assert not torch.equal(a, make_shapes(64, seed=4)[0])
    rgb = (a + 1) / 2
    # The shape's colour sits at its centre pixel; the background is dark.
    for i in range(8):
        x, y = attrs["x"][i].long(), attrs["y"][i].long()
        centre = rgb[i, :, y, x]
        assert centre.max() > 0.7
        assert rgb[i, :, 0, 0].max() < 0.15
    # Large shapes cover more pixels than small ones.
    area = (rgb.max(dim=1).values > 0.5).float().sum(dim=(1, 2))
    assert area[attrs["size"] == 1].mean() > 2 * area[attrs["size"] == 0].mean()
    with pytest.raises(ValueError):
        make_shapes(-1)


def test_shapes_holds_no_duplicates() -> None:
    from aigc_course.data.cleaning import find_exact_duplicates

    images, _ = load_images("shapes", "all")
    assert find_exact_duplicates(images) == []


def test_online_dataset_offline_fails_fast_with_alternatives(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIGC_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="mnist5k"):
        load_images("mnist")


def test_online_download_error_is_wrapped(tmp_path, monkeypatch) -> None:
    """A failed download (no network) raises our error naming the offline sets."""
    import torchvision

    calls = []

    class FakeMNIST:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append(download)
            if not download:
                raise RuntimeError("Dataset not found. You can use download=True")
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AIGC_OFFLINE")
    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with pytest.raises(DatasetUnavailableError, match="digits.*mnist5k.*shapes") as err:
        load_images("mnist", "train")
    assert isinstance(err.value.__cause__, urllib.error.URLError)
    assert calls == [False, True]          # the cache first, then one download attempt


def test_online_cached_dataset_loads_and_splits(tmp_path, monkeypatch) -> None:
    """With the files cached, an online set loads without the network, val carved from train."""
    import torchvision

    class FakeCIFAR:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            assert not download
            n = 50 if train else 20
            g = torch.Generator().manual_seed(int(train))
            self.data = torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8
                                      ).numpy()
            self.targets = [i % 10 for i in range(n)]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR)
    train, _ = load_images("cifar10", "train")
    val, _ = load_images("cifar10", "val")
    test, labels = load_images("cifar10", "test", image_size=16)
    assert train.shape == (45, 3, 32, 32) and val.shape == (5, 3, 32, 32)
    assert test.shape == (20, 3, 16, 16) and labels.dtype == torch.int64
    assert train.min() >= -1 and train.max() <= 1
    assert len(load_images("cifar10", "all")[0]) == 70
    assert online.cache_dir().name == "data" or online.cache_dir() == tmp_path
