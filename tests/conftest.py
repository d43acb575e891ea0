"""Shared test set-up: no network, a non-interactive matplotlib, closed figures."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile

import matplotlib
import pytest

# Trained models are cached by kinds.load_or_train; the suite keeps its own cache for the
# session (so chapter 08's notebook reuses the models 03-05 trained, and nothing of the
# user's ~/.cache is read or written).
os.environ.setdefault("AIGC_MODEL_DIR", tempfile.mkdtemp(prefix="aigc-models-"))

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a connection to a non-loopback address."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if isinstance(host, str):
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise RuntimeError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("AIGC_OFFLINE", "1")


@pytest.fixture(autouse=True)
def close_figures() -> object:
    """Close matplotlib figures a test made."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2 --dist loadgroup`` (``make test``), keep each file on one worker.

    A file's module-scoped fixtures (a trained model, a built book) are then made once, as
    in a serial run. A test that names its own ``xdist_group`` keeps it: the notebook runs
    split into two groups (smoke, gpu shape) so the two cores run them side by side.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
