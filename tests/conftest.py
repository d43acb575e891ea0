"""Shared test set-up: no network, a non-interactive matplotlib, closed figures."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

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


# --- a real headless browser (Debian's chromium and chromedriver) ------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
#: why a browser test is skipped: `make test` installs both with apt when run as root
NO_CHROMIUM = ("no chromium/chromedriver: `make test` installs them with apt when run as "
               "root (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium through selenium, with the network cut.

    Every host name but the loopback address fails to resolve, so a page that needs the
    internet (a CDN's MathJax, a widget bundle) fails here as it would in a classroom
    without one; the flags also stop Chromium's own background connections.
    """
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(NO_CHROMIUM)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="aigc-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it is truthy (its value), or fail after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for the page")


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(condition, timeout=20)``: poll a page until ``condition()`` is truthy."""
    return _wait_for


# --- the command line as a user types it ---------------------------------------------------

def fails(argv: list[str], says: str, capsys: pytest.CaptureFixture) -> None:
    """``aigc-course argv`` exits with status 2 (argparse or the command) and ``says`` on
    standard error (``from conftest import fails`` in a test file)."""
    from aigc_course.cli import main

    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit:                                # argparse's own refusals
        status = int(exit.code or 0)
    assert status == 2
    assert says in capsys.readouterr().err
