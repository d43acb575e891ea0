"""The online datasets, downloaded for real from a loopback HTTP server (no internet).

The server (``ThreadingHTTPServer`` on 127.0.0.1, in a thread) serves the files in their
real formats: the four gzipped IDX files of MNIST and Fashion-MNIST, made from
``mnist5k``, and CIFAR-10's python tarball, made from ``shapes``. torchvision is pointed
at it through its class attributes (mirrors, URL, md5s), so its whole download path --
urllib, md5 checks, gunzip, untar, parsing -- runs as it does against the real hosts.

Nothing of the online sets is memoised (``registry.load_images`` calls ``online.load``,
which reads the cache every time; only the offline sets are cached in memory), so each
test starts from an empty cache of its own (``AIGC_DATA_DIR`` under ``tmp_path``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import signal
import struct
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from aigc_course.data import online, registry, shapes
from aigc_course.data.online import DatasetUnavailableError

Tensor = torch.Tensor
N_TRAIN, N_TEST = 300, 100         # MNIST-like sets: 30 of the 300 become val
CIFAR_BATCH, CIFAR_TEST = 40, 50   # 5 training batches: 200 images, 20 of them val
TIME_CAP_S = 15                    # per test, by SIGALRM
MAX_REQUESTS = 40                  # the server answers 503 beyond this many
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR_TGZ = "cifar-10-python.tar.gz"
FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}
PREFIX = {"mnist": "/mnist/", "fashion_mnist": "/fashion/", "cifar10": "/cifar/"}
NAMES = list(FOLDER)


# --- the files, in their real formats ---------------------------------------------------

@dataclass
class Split:
    """One split as served: ``uint8`` images ``(N, C, H, W)`` and int64 labels ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def scaled(self) -> Tensor:
        """The images as ``online.to_tensors`` returns them, in ``[-1, 1]``."""
        return torch.from_numpy(self.images).float() / 255.0 * 2 - 1


@dataclass
class Served:
    """What the server holds: the splits of each dataset and the files made from them."""

    train: dict[str, Split]
    test: dict[str, Split]
    files: dict[str, bytes]                 # URL path -> body


def _to_uint8(images: Tensor) -> np.ndarray:
    return ((images + 1) / 2 * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def _idx_images(images: np.ndarray) -> bytes:
    """An IDX3 file: magic 2051 (uint8, 3 dims), then N, rows, cols, all big-endian."""
    n, rows, cols = images.shape
    return struct.pack(">4i", 2051, n, rows, cols) + images.tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    """An IDX1 file: magic 2049 (uint8, 1 dim), then N, big-endian."""
    return struct.pack(">2i", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _mnist_files(train: Split, test: Split) -> dict[str, bytes]:
    raw = [_idx_images(train.images[:, 0]), _idx_labels(train.labels),
           _idx_images(test.images[:, 0]), _idx_labels(test.labels)]
    return {f: gzip.compress(b, mtime=0) for f, b in zip(MNIST_FILES, raw, strict=True)}


def _cifar_batch(split: Split, label: str) -> bytes:
    # The original batches are Python 2 pickles; torchvision loads them with
    # encoding="latin1", so their keys come back as str ("data", "labels"), as here.
    n = len(split.labels)
    return pickle.dumps({
        "batch_label": label, "labels": [int(y) for y in split.labels],
        "data": split.images.reshape(n, 3072),                         # (N, 3*32*32) uint8
        "filenames": [f"img_{i:05d}.png" for i in range(n)]}, protocol=2)


def _cifar_tarball(train: Split, test: Split) -> tuple[bytes, dict[str, bytes]]:
    """``cifar-10-python.tar.gz`` and the files inside ``cifar-10-batches-py/``."""
    members = {}
    for b in range(5):
        part = slice(b * CIFAR_BATCH, (b + 1) * CIFAR_BATCH)
        members[f"data_batch_{b + 1}"] = _cifar_batch(
            Split(train.images[part], train.labels[part]), f"training batch {b + 1} of 5")
    members["test_batch"] = _cifar_batch(test, "testing batch 1 of 1")
    members["batches.meta"] = pickle.dumps({
        "label_names": list(online.DATASETS["cifar10"].class_names),
        "num_cases_per_batch": CIFAR_BATCH, "num_vis": 3072}, protocol=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, body in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue(), members


def _spread(split: registry.Split, n: int) -> Split:
    """``n`` images of an mnist5k split, evenly spaced through it: every class is in."""
    images, labels = registry.load_images("mnist5k", split)
    pick = torch.linspace(0, len(labels) - 1, n).round().long()
    assert len(labels[pick].unique()) == 10
    return Split(_to_uint8(images[pick]), labels[pick].numpy())


@pytest.fixture(scope="module")
def served() -> Served:
    """MNIST from mnist5k, Fashion-MNIST its negative, CIFAR-10 from shapes."""
    mnist = _spread("train", N_TRAIN), _spread("test", N_TEST)
    fashion = tuple(Split(255 - s.images, (s.labels + 3) % 10) for s in mnist)
    images, _ = shapes.make_shapes(5 * CIFAR_BATCH + CIFAR_TEST, seed=1)
    rgb = _to_uint8(images)                                             # (250, 3, 32, 32)
    labels = np.random.default_rng(0).integers(0, 10, len(rgb))
    cifar = (Split(rgb[:5 * CIFAR_BATCH], labels[:5 * CIFAR_BATCH]),
             Split(rgb[5 * CIFAR_BATCH:], labels[5 * CIFAR_BATCH:]))
    files = {PREFIX["mnist"] + f: b for f, b in _mnist_files(*mnist).items()}
    files |= {PREFIX["fashion_mnist"] + f: b for f, b in _mnist_files(*fashion).items()}
    tarball, members = _cifar_tarball(*cifar)
    files[PREFIX["cifar10"] + CIFAR_TGZ] = tarball
    files |= {f"/members/{m}": b for m, b in members.items()}          # for their md5s only
    return Served(train={"mnist": mnist[0], "fashion_mnist": fashion[0], "cifar10": cifar[0]},
                  test={"mnist": mnist[1], "fashion_mnist": fashion[1], "cifar10": cifar[1]},
                  files=files)


# --- the server -------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.faults: dict[str, str] = {}    # path -> "short", "cut" or "stall"
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.release = threading.Event()    # ends a "stall"

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.lock:
            self.connections += 1           # every accepted connection, answered or not
        return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        srv = self.server
        with srv.lock:
            srv.requests.append((self.command, self.path))
            too_many = len(srv.requests) > MAX_REQUESTS
        body = srv.files.get(self.path)
        if too_many or body is None:
            self.send_error(503 if too_many else 404)
            return
        fault = srv.faults.get(self.path)
        sent = body[: len(body) // 2] if fault else body
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        # "short" promises the whole body and sends half; "cut" is half a file, honestly
        self.send_header("Content-Length", str(len(body) if fault in ("short", "stall")
                                               else len(sent)))
        self.end_headers()
        if head:
            return
        if fault == "stall":
            srv.release.wait(TIME_CAP_S)
            return
        try:
            self.wfile.write(sent)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that read only the headers and hung up

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass
class Loopback:
    """A running server and the cache torchvision downloads into."""

    server: _Server
    thread: threading.Thread
    cache: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def paths(self) -> list[str]:
        with self.server.lock:
            return [p for _, p in self.server.requests]

    def stop(self) -> None:
        """Stop serving and close the port: a connection now is refused."""
        self.server.release.set()
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(5)
        self.server.server_close()


def _md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def time_cap() -> Iterator[None]:
    """Fail a test that runs longer than ``TIME_CAP_S`` (a hung download, say)."""
    def expire(signum: int, frame: Any) -> None:
        pytest.fail(f"test ran past its {TIME_CAP_S} s cap")   # a BaseException: not caught

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIME_CAP_S)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def loopback(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[Loopback]:
    """Serve the files, point torchvision at them, the cache at ``tmp_path / "data"``."""
    import torchvision.datasets as tvd

    server = _Server(served.files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    lb = Loopback(server, thread, tmp_path / "data")
    monkeypatch.setenv("AIGC_DATA_DIR", str(lb.cache))
    monkeypatch.delenv("AIGC_OFFLINE", raising=False)     # conftest sets it for every test
    monkeypatch.setattr(online, "DOWNLOAD_TIMEOUT_S", 2.0)
    for cls, name in ((tvd.MNIST, "mnist"), (tvd.FashionMNIST, "fashion_mnist")):
        monkeypatch.setattr(cls, "mirrors", [lb.url(PREFIX[name])])
        monkeypatch.setattr(cls, "resources",
                            [(f, _md5(served.files[PREFIX[name] + f])) for f in MNIST_FILES])
    member_md5 = {m: _md5(served.files[f"/members/{m}"])
                  for m in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch",
                                                                       "batches.meta"]}
    monkeypatch.setattr(tvd.CIFAR10, "url", lb.url(PREFIX["cifar10"] + CIFAR_TGZ))
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", _md5(served.files[PREFIX["cifar10"] + CIFAR_TGZ]))
    monkeypatch.setattr(tvd.CIFAR10, "train_list",
                        [[f"data_batch_{b}", member_md5[f"data_batch_{b}"]] for b in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", member_md5["test_batch"]]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                              "md5": member_md5["batches.meta"]})
    yield lb
    lb.stop()


def _shape(name: str) -> tuple[int, int, int]:
    meta = online.DATASETS[name]
    return meta.channels, meta.size, meta.size


def _listing(cache: Path) -> list[str]:
    return sorted(os.listdir(cache)) if cache.exists() else []


# --- the tests --------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_first_load_downloads_caches_and_matches_what_was_served(
        name: str, loopback: Loopback, served: Served) -> None:
    train, test = served.train[name], served.test[name]
    images, labels = registry.load_images(name, "train")
    n_train = len(train.labels) - round(0.1 * len(train.labels))
    assert images.shape == (n_train, *_shape(name)) and images.dtype == torch.float32
    assert labels.shape == (n_train,) and labels.dtype == torch.int64
    files = MNIST_FILES if name != "cifar10" else (CIFAR_TGZ,)
    assert set(loopback.paths()) == {PREFIX[name] + f for f in files}   # one dataset's files
    assert _listing(loopback.cache) == [FOLDER[name]]                   # no .partial-* left
    n_requests = len(loopback.paths())

    everything, all_labels = registry.load_images(name, "all")          # from the cache
    assert len(loopback.paths()) == n_requests
    assert torch.equal(everything, torch.cat([train.scaled(), test.scaled()]))
    assert torch.equal(all_labels, torch.from_numpy(np.concatenate([train.labels, test.labels])))
    assert everything.min() >= -1 and everything.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_second_load_uses_the_cache_with_the_server_stopped(
        name: str, loopback: Loopback) -> None:
    first = registry.load_images(name, "train")
    connections = loopback.server.connections
    loopback.stop()                          # any download attempt would now be refused
    for split in ("train", "val", "test"):
        registry.load_images(name, split)
    again = registry.load_images(name, "train")
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    assert loopback.server.connections == connections


TRUNCATIONS = [
    # name, file served broken, how, the md5 torchvision checks it by, words of the error
    ("mnist", "t10k-images-idx3-ubyte.gz", "short", True, "md5 checksum"),
    ("fashion_mnist", "train-labels-idx1-ubyte.gz", "cut", False, "EOFError"),
    ("cifar10", CIFAR_TGZ, "short", True, "md5 checksum"),
    ("cifar10", CIFAR_TGZ, "cut", False, "EOFError"),
]


@pytest.mark.parametrize(("name", "file", "fault", "md5", "words"), TRUNCATIONS,
                         ids=[f"{n}-{f}-{'md5' if m else 'no-md5'}"
                              for n, _, f, m, _ in TRUNCATIONS])
def test_truncated_download_leaves_no_cache_and_a_later_one_succeeds(
        name: str, file: str, fault: str, md5: bool, words: str, loopback: Loopback,
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body shorter than its Content-Length, or half a gzip: an error, nothing cached.

    Without an md5 to check, the cut archive fails only when it is unpacked -- after
    torchvision has written part of the dataset -- so this also shows that the partial
    folder, not the cache, took those files.
    """
    import torchvision.datasets as tvd

    if not md5:
        if name == "cifar10":
            monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", None)
        else:
            cls = tvd.FashionMNIST
            monkeypatch.setattr(cls, "resources",
                                [(f, None if f == file else m) for f, m in cls.resources])
    loopback.server.faults[PREFIX[name] + file] = fault
    with pytest.raises(DatasetUnavailableError) as err:
        registry.load_images(name, "train")
    message = str(err.value)
    host = loopback.url("/")[len("http://"):-1]
    for expected in (repr(name), host, words, "nothing was cached", "mnist5k"):
        assert expected in message, (expected, message)
    assert _listing(loopback.cache) == []                # no dataset folder, no .partial-*

    loopback.server.faults.clear()
    images, labels = registry.load_images(name, "all")
    expected_images = torch.cat([served.train[name].scaled(), served.test[name].scaled()])
    assert torch.equal(images, expected_images)
    assert len(labels) == len(expected_images)
    assert _listing(loopback.cache) == [FOLDER[name]]


@pytest.mark.parametrize("name", NAMES)
def test_offline_with_an_empty_cache_never_connects(
        name: str, loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="AIGC_OFFLINE.*mnist5k"):
        registry.load_images(name, "train")
    # The server accepts connections in order: if ours is the first it sees, there was
    # none before it (not even one still waiting in the listen backlog).
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(loopback.url("/sentinel"), timeout=5)
    assert loopback.server.connections == 1 and loopback.paths() == ["/sentinel"]
    assert not loopback.cache.exists()


@pytest.mark.parametrize("name", NAMES)
def test_val_is_a_tenth_of_train_disjoint_and_test_is_t10k(
        name: str, loopback: Loopback, served: Served) -> None:
    served_train = served.train[name].scaled()
    row = {served_train[i].numpy().tobytes(): i for i in range(len(served_train))}
    assert len(row) == len(served_train)                # the served images are distinct

    def indices(split: registry.Split) -> set[int]:
        images, labels = registry.load_images(name, split)
        idx = [row[image.numpy().tobytes()] for image in images]
        assert torch.equal(labels, torch.from_numpy(served.train[name].labels[idx]))
        return set(idx)

    train, val = indices("train"), indices("val")
    assert len(val) == round(online.VAL_FRACTION * len(served_train))
    assert not train & val and train | val == set(range(len(served_train)))
    test_images, test_labels = registry.load_images(name, "test")
    assert torch.equal(test_images, served.test[name].scaled())
    assert torch.equal(test_labels, torch.from_numpy(served.test[name].labels))


def test_a_stale_half_written_folder_is_replaced(loopback: Loopback, served: Served) -> None:
    """A folder left by a non-atomic download (one raw file, truncated) is downloaded over."""
    raw = loopback.cache / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
    images, _ = registry.load_images("mnist", "test")
    assert torch.equal(images, served.test["mnist"].scaled())
    assert _listing(loopback.cache) == ["MNIST"]         # no .stale-* or .partial-* left
    assert len(loopback.paths()) > 0


def test_a_stalled_download_times_out(loopback: Loopback,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers, then silence: the socket timeout ends it, and nothing is cached."""
    monkeypatch.setattr(online, "DOWNLOAD_TIMEOUT_S", 0.5)
    loopback.server.faults[PREFIX["mnist"] + MNIST_FILES[0]] = "stall"
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="timed out"):
        registry.load_images("mnist", "train")
    assert time.perf_counter() - start < 5
    assert _listing(loopback.cache) == []
