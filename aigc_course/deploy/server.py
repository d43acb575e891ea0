"""Running the service: ``aigc-course serve`` in-process, and a local server for tests.

* :func:`serve` -- what ``aigc-course serve`` runs: uvicorn on ``127.0.0.1`` by default,
  one process, or ``workers`` processes that share the port, each with its own model
  and batcher, their metrics merged through Prometheus' multiprocess mode.
* :class:`LocalServer` -- the same command started as a subprocess on a free loopback
  port, waited for until ``/readyz`` answers 200, stopped with SIGTERM (so graceful
  shutdown is what every test and the chapter exercise). What the load test and the
  browser test talk to; :meth:`LocalServer.call` and :meth:`LocalServer.metric` are a
  small synchronous client for notebooks and tests.
* :func:`read_metric` -- one metric's value, summed over the series that match, parsed
  from Prometheus' text format with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any

from aigc_course.deploy.loadtest import free_port
from aigc_course.deploy.service import CONFIG_ENV, MULTIPROC_ENV, ServeConfig, create_app

#: seconds uvicorn waits for open requests after SIGTERM before it closes them
GRACEFUL_SECONDS = 30


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "warning") -> None:
    """Serve ``config`` with uvicorn until SIGINT or SIGTERM (graceful shutdown).

    With ``workers > 1`` uvicorn starts that many processes (each loads the model);
    ``$PROMETHEUS_MULTIPROC_DIR`` is set to a fresh directory unless already set, so that
    ``/metrics`` on any worker reports all of them.
    """
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ServeConfig.from_json(config.to_json())          # fail here, not in every worker
    if not Path(config.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint {config.checkpoint}")
    common = {"host": host, "port": port, "log_level": log_level,
              "timeout_graceful_shutdown": GRACEFUL_SECONDS}
    if workers == 1:
        uvicorn.run(create_app(config), **common)     # type: ignore[arg-type]
        return
    with tempfile.TemporaryDirectory(prefix="aigc-metrics-") as scratch:
        os.environ.setdefault(MULTIPROC_ENV, scratch)
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run("aigc_course.deploy.service:app_from_environment", factory=True,
                    workers=workers, **common)        # type: ignore[arg-type]


def read_metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none).

    ``name`` is the sample's name as exposed (``aigc_requests_total``,
    ``aigc_batch_size_count``, ``aigc_drift``).
    """
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v
                                              for k, v in labels.items()))


def _die_with_parent() -> None:          # pragma: no cover (runs in the child)
    """Linux: the server gets SIGTERM when the process that started it dies (a crashed
    kernel or test run leaves no server behind)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


class LocalServer:
    """``aigc-course serve CKPT`` as a subprocess on a free loopback port.

    Use as a context manager: ``with LocalServer(ckpt, max_batch=64) as server:``
    ``server.url`` is ``http://127.0.0.1:PORT``. The server's stdout and stderr go to
    ``log`` (a file in a temporary directory); :meth:`stop` sends SIGTERM and returns the
    exit status.

    Args:
        checkpoint: the model checkpoint.
        workers: uvicorn worker processes.
        start_timeout: seconds to wait for ``/readyz``.
        env: extra environment variables (``OMP_NUM_THREADS`` and the like).
        **options: :class:`ServeConfig` fields, passed as ``--max-batch`` etc.
    """

    def __init__(self, checkpoint: str | Path, *, workers: int = 1,
                 start_timeout: float = 60.0, env: dict[str, str] | None = None,
                 **options: object) -> None:
        self.checkpoint = Path(checkpoint)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.start_timeout = start_timeout
        self.env = dict(env or {})
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="aigc-serve-")
        self.log = Path(self._dir.name) / "server.log"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "aigc_course", "serve", str(self.checkpoint),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers)]
        for name, value in self.options.items():
            if value is not None:
                args += ["--" + name.replace("_", "-"), str(value)]
        return args

    def start(self) -> LocalServer:
        """Start the process and wait until ``/readyz`` answers 200.

        Raises:
            RuntimeError: the process exited or did not get ready in time (with its log).
        """
        env = {**os.environ, **self.env}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log,
                                            stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n"
                                   f"{self.read_log()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server was not ready after {self.start_timeout} s:\n"
                           f"{self.read_log()}")

    def call(self, path: str, body: Any = None, timeout: float = 60.0
             ) -> tuple[int, Message, bytes]:
        """One request (``POST`` with a JSON body, else ``GET``): status, headers, body.

        HTTP errors are answers too (their status is returned, nothing raised).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def metric(self, name: str, **labels: str) -> float:
        """:func:`read_metric` of one scrape of ``/metrics``."""
        return read_metric(self.call("/metrics")[2].decode(), name, **labels)

    def wait_for_metric(self, name: str, at_least: float, timeout: float = 30.0,
                        **labels: str) -> float:
        """Scrape until ``name`` reaches ``at_least`` (e.g. a drift window is scored).

        Raises:
            TimeoutError: it did not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if value >= at_least:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}{labels} stayed at {value} < {at_least}")
            time.sleep(0.05)

    def wait_for_workers(self, workers: int, timeout: float = 60.0) -> set[int]:
        """Call ``/readyz`` until ``workers`` distinct worker processes answered it.

        Raises:
            TimeoutError: fewer answered within ``timeout`` seconds.
        """
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < workers:
            status, _, body = self.call("/readyz", timeout=5)
            if status == 200:
                seen.add(int(json.loads(body)["worker_pid"]))
            else:
                time.sleep(0.05)                     # a worker still loading its model
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(seen)} of {workers} workers got ready")
        return seen

    def read_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def stop(self, timeout: float = GRACEFUL_SECONDS + 10) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout`` s; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
        self._dir.cleanup()
