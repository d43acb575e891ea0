"""Shared test set-up: no network, a non-interactive matplotlib, closed figures."""

from __future__ import annotations

import ipaddress
import socket

import matplotlib
import pytest

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
