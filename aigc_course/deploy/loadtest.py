"""A bounded, closed-loop load test against a service on this machine (chapter 10).

``run_load`` starts ``concurrency`` workers on one asyncio event loop; each sends its next
request as soon as the previous one was answered (a *closed* loop, like ``wrk`` or
``hey -c``), until ``requests`` requests are sent or ``time_cap_s`` seconds have passed.
It then stops sending and waits, for at most ``drain_s`` more seconds, for the requests
still in flight; whatever is still unanswered then is cancelled and counted. Both bounds
together cap the wall time at about ``time_cap_s + drain_s``.

The test only ever talks to the loopback interface: a URL whose host is not ``127.0.0.1``
(or another ``127.x`` address), ``::1`` or ``localhost`` is refused with a ``ValueError``
before a connection is opened. The client ignores proxy settings (``trust_env=False``) and
does not follow redirects, so nothing can send it elsewhere.

Simplifications, and why: a closed loop measures the service at the rate it can sustain,
not at a fixed offered rate (an open loop, as in ``wrk2``), so queueing delay that a real
burst would add is hidden. The latencies include the client's own overhead: httpx spends
about 0.6-0.8 ms of CPU per request, so a zero-work FastAPI route answers in about 0.9 ms
at concurrency 1, and the client alone tops out near 1,500 requests/s on one core (on 2
cores it competes with the service for CPU). Percentiles are taken over the *successful*
(2xx) responses only, because fast 503s would otherwise make an overloaded service look
quick.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import ipaddress
import math
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import numpy as np

__all__ = [
    "LoadResult",
    "compare_rows",
    "free_port",
    "process_rss_bytes",
    "require_loopback",
    "run_load",
    "run_load_async",
]

Payload = dict[str, Any] | Callable[[int], dict[str, Any]] | None
Method = Literal["GET", "POST"]
METHODS: tuple[str, ...] = ("GET", "POST")
T = TypeVar("T")


@dataclass(frozen=True)
class LoadResult:
    """What one bounded load test measured.

    Every request sent ends in exactly one of: an HTTP response (counted by status in
    ``status_counts``), a timeout, a connection error, another transport error, or a
    cancellation when the drain time ran out; so ``sent == completed + errors``.

    Attributes:
        url: the URL the requests went to.
        method: ``"GET"`` or ``"POST"``.
        concurrency: number of closed-loop workers (and HTTP connections).
        requests: the requested number of requests (the upper bound on ``sent``).
        time_cap_s: the time after which no new request was sent.
        sent: requests started.
        status_counts: HTTP status code -> number of responses with it.
        timeouts: requests that hit the client's timeout (connect, read, write or pool).
        connect_errors: requests whose connection could not be opened.
        other_errors: other transport errors (e.g. the server closed the connection).
        cancelled: requests still in flight when the drain time ran out.
        wall_s: seconds from the first request sent to the last one settled.
        hit_time_cap: ``True`` when the time cap stopped the test before ``requests``
            requests were sent.
        latencies_ms: latency of each successful (2xx) response in milliseconds, in the
            order they finished, shape ``(ok,)``; the percentiles are taken over these.
    """

    url: str
    method: str
    concurrency: int
    requests: int
    time_cap_s: float
    sent: int
    status_counts: dict[int, int]
    timeouts: int
    connect_errors: int
    other_errors: int
    cancelled: int
    wall_s: float
    hit_time_cap: bool
    latencies_ms: tuple[float, ...] = field(repr=False)

    @property
    def completed(self) -> int:
        """Requests answered with an HTTP response, whatever its status."""
        return sum(self.status_counts.values())

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(n for status, n in self.status_counts.items() if 200 <= status < 300)

    @property
    def rejected(self) -> int:
        """503 responses: the bounded queue refusing work, as it is meant to."""
        return self.status_counts.get(503, 0)

    @property
    def server_errors(self) -> int:
        """5xx responses other than 503: the failures a healthy service never sends."""
        return sum(n for status, n in self.status_counts.items() if 500 <= status < 600) - (
            self.rejected
        )

    @property
    def errors(self) -> int:
        """Requests without an HTTP response: timeouts, connection errors, cancellations."""
        return self.timeouts + self.connect_errors + self.other_errors + self.cancelled

    @property
    def throughput_rps(self) -> float:
        """Completed requests (any status) per second of wall time."""
        return self.completed / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def ok_rps(self) -> float:
        """Successful (2xx) responses per second of wall time ("goodput")."""
        return self.ok / self.wall_s if self.wall_s > 0 else math.nan

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile of the 2xx latencies in ms (NumPy's linear method).

        Args:
            q: percentile in ``[0, 100]``.

        Returns:
            The percentile, or NaN when no request succeeded.
        """
        if not 0 <= q <= 100:
            raise ValueError(f"q must be in [0, 100], got {q}")
        if not self.latencies_ms:
            return math.nan
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    @property
    def p50_ms(self) -> float:
        """Median latency of the 2xx responses, ms."""
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        """95th-percentile latency of the 2xx responses, ms."""
        return self.percentile_ms(95)

    @property
    def p99_ms(self) -> float:
        """99th-percentile latency of the 2xx responses, ms."""
        return self.percentile_ms(99)

    @property
    def mean_ms(self) -> float:
        """Mean latency of the 2xx responses, ms (NaN when none succeeded)."""
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else math.nan

    @property
    def max_ms(self) -> float:
        """Slowest 2xx response, ms (NaN when none succeeded)."""
        return max(self.latencies_ms) if self.latencies_ms else math.nan

    def as_row(self) -> dict[str, Any]:
        """One flat row for a table (``pandas.DataFrame([r.as_row() for r in results])``).

        Returns:
            Counts, wall time, throughput and the 2xx latency summary, keyed by column name.
        """
        return {
            "concurrency": self.concurrency,
            "sent": self.sent,
            "completed": self.completed,
            "ok": self.ok,
            "rejected_503": self.rejected,
            "server_errors": self.server_errors,
            "errors": self.errors,
            "wall_s": self.wall_s,
            "throughput_rps": self.throughput_rps,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "max_ms": self.max_ms,
            "hit_time_cap": self.hit_time_cap,
        }


def require_loopback(url: str) -> httpx.URL:
    """Check that ``url`` is an http(s) URL on this machine's loopback interface.

    Args:
        url: e.g. ``"http://127.0.0.1:8000/v1/generate"``.

    Returns:
        The parsed URL.

    Raises:
        ValueError: for another scheme, or a host other than ``localhost`` or a loopback
            address (``127.0.0.0/8``, ``::1``).
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ValueError(f"not a valid URL: {url!r} ({error})") from error
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"the load test speaks http or https, got {parsed.scheme!r} in {url!r}")
    host = parsed.host
    if host.lower() != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"the load test only targets this machine: host {host!r} in {url!r} is not "
                "127.0.0.1, ::1 or localhost"
            )
    return parsed


def _check(requests: int, concurrency: int, time_cap_s: float, timeout_s: float,
           drain_s: float | None, method: str) -> None:
    """Raise ``ValueError`` for bounds the load test cannot honour."""
    if requests < 1:
        raise ValueError(f"requests must be >= 1, got {requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if not (time_cap_s > 0 and math.isfinite(time_cap_s)):
        raise ValueError(f"time_cap_s must be a finite number > 0, got {time_cap_s}")
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s}")
    if drain_s is not None and not (drain_s >= 0 and math.isfinite(drain_s)):
        raise ValueError(f"drain_s must be a finite number >= 0 or None, got {drain_s}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


async def run_load_async(
    url: str,
    *,
    requests: int,
    concurrency: int,
    time_cap_s: float,
    payload: Payload = None,
    method: Method = "POST",
    timeout_s: float = 10.0,
    drain_s: float | None = None,
) -> LoadResult:
    """Run a bounded closed-loop load test; the ``async`` form (``await`` it in Jupyter).

    Args:
        url: the endpoint, on loopback only (e.g. ``"http://127.0.0.1:8000/v1/generate"``).
        requests: at most this many requests are sent (>= 1).
        concurrency: number of workers, each with at most one request in flight on its
            own connection, so ``concurrency`` connections in all (>= 1).
        time_cap_s: no request is sent after this many seconds (> 0).
        payload: the JSON body: a dict sent with every request, a function of the
            request's index ``i`` (``0 .. requests - 1``) returning one (e.g.
            ``lambda i: {"n": 1, "seed": i}``), or ``None`` for no body.
        method: ``"GET"`` or ``"POST"``.
        timeout_s: the client's timeout for each request (connect, read, write, pool).
        drain_s: after the time cap, how long to wait for the requests in flight before
            cancelling them; ``None`` means ``timeout_s``.

    Returns:
        A :class:`LoadResult`.

    Raises:
        ValueError: for a non-loopback URL or a bound out of range, before anything is sent.
    """
    require_loopback(url)
    _check(requests, concurrency, time_cap_s, timeout_s, drain_s, method)
    drain = timeout_s if drain_s is None else drain_s

    status_counts: Counter[int] = Counter()
    latencies_ms: list[float] = []
    failures: Counter[str] = Counter()
    sent = 0
    # One client with one connection per worker (``concurrency`` connections in all): one
    # shared pool of 16 connections costs httpx 2-3x the CPU per request and adds tens of
    # milliseconds to p95 against a server that does nothing (measured on 2 cores).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_frozen_heap())
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    trust_env=False, follow_redirects=False, limits=limits, timeout=timeout_s
                )
            )
            for _ in range(concurrency)
        ]
        start = time.perf_counter()
        deadline = start + time_cap_s

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                i = sent  # one event loop: no other worker runs between these two lines
                sent += 1
                body = payload(i) if callable(payload) else payload
                t0 = time.perf_counter()
                try:
                    response = await client.request(method, url, json=body)
                except httpx.TimeoutException:
                    failures["timeouts"] += 1
                    continue
                except httpx.ConnectError:
                    failures["connect_errors"] += 1
                    continue
                except httpx.TransportError:
                    failures["other_errors"] += 1
                    continue
                elapsed_ms = (time.perf_counter() - t0) * 1e3
                status_counts[response.status_code] += 1
                if 200 <= response.status_code < 300:
                    latencies_ms.append(elapsed_ms)

        tasks = [asyncio.create_task(worker(client)) for client in clients]
        _, pending = await asyncio.wait(tasks, timeout=time_cap_s + drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        wall_s = time.perf_counter() - start

    settled = sum(status_counts.values()) + sum(failures.values())
    return LoadResult(
        url=url,
        method=method,
        concurrency=concurrency,
        requests=requests,
        time_cap_s=time_cap_s,
        sent=sent,
        status_counts=dict(sorted(status_counts.items())),
        timeouts=failures["timeouts"],
        connect_errors=failures["connect_errors"],
        other_errors=failures["other_errors"],
        cancelled=sent - settled,
        wall_s=wall_s,
        hit_time_cap=sent < requests,
        latencies_ms=tuple(latencies_ms),
    )


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the collector off the objects that existed before the load (torch, numpy...).

    A full (gen-2) collection walks every tracked object; in a process that imported
    torch that pause stalled every request in flight for ~200 ms at once (measured: 16
    requests of one "generation" at 200-230 ms against a p50 of 20 ms), a stall of the
    *client* that the report would blame on the server. ``gc.freeze`` moves the existing
    objects out of the collector's view for the run; ``gc.unfreeze`` gives them back.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, inside Jupyter too.

    ``asyncio.run`` refuses to start while an event loop is running in this thread (as
    in a Jupyter kernel), so then the coroutine runs on a fresh loop in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def run_load(
    url: str,
    *,
    requests: int,
    concurrency: int,
    time_cap_s: float,
    payload: Payload = None,
    method: Method = "POST",
    timeout_s: float = 10.0,
    drain_s: float | None = None,
) -> LoadResult:
    """Run a bounded closed-loop load test from plain (synchronous) code.

    Takes the arguments of :func:`run_load_async` and runs it on its own event loop; when
    a loop is already running (a Jupyter cell), on a fresh loop in a worker thread, so
    the call works the same in a script, a test and a notebook.

    Args:
        url: the endpoint, on loopback only.
        requests: at most this many requests are sent (>= 1).
        concurrency: closed-loop workers and connection limit (>= 1).
        time_cap_s: no request is sent after this many seconds (> 0).
        payload: a JSON dict, a function of the request index returning one, or ``None``.
        method: ``"GET"`` or ``"POST"``.
        timeout_s: the client's timeout for each request.
        drain_s: wait this long for in-flight requests after the cap (``None``: ``timeout_s``).

    Returns:
        A :class:`LoadResult`.

    Raises:
        ValueError: for a non-loopback URL or a bound out of range, before anything is sent.
    """
    require_loopback(url)
    _check(requests, concurrency, time_cap_s, timeout_s, drain_s, method)
    return _run_coroutine(
        lambda: run_load_async(
            url,
            requests=requests,
            concurrency=concurrency,
            time_cap_s=time_cap_s,
            payload=payload,
            method=method,
            timeout_s=timeout_s,
            drain_s=drain_s,
        )
    )


def compare_rows(
    results: dict[str, LoadResult],
    *,
    baseline: str | None = None,
    ratio_of: str = "throughput_rps",
) -> list[dict[str, Any]]:
    """Rows for a comparison table, each with a ratio against a baseline row.

    Args:
        results: a name per run (e.g. ``"batching off, c=16"``) -> its result; the rows
            keep this order.
        baseline: the name whose row the ratio divides by; ``None`` means the first.
        ratio_of: the column of :meth:`LoadResult.as_row` to compare, e.g.
            ``"throughput_rps"`` or ``"p95_ms"``.

    Returns:
        One dict per run: ``name``, the ``as_row`` columns, and ``"<ratio_of>_vs_<baseline>"``
        (the run's value over the baseline's; NaN where the baseline's is 0 or NaN).
        ``pandas.DataFrame(rows).set_index("name")`` makes the table.

    Raises:
        ValueError: for an empty ``results``, an unknown ``baseline`` or ``ratio_of``.
    """
    if not results:
        raise ValueError("results is empty: nothing to compare")
    name = next(iter(results)) if baseline is None else baseline
    if name not in results:
        raise ValueError(f"baseline must be one of {list(results)}, got {baseline!r}")
    base_row = results[name].as_row()
    numeric = [k for k, v in base_row.items() if isinstance(v, (int, float))
               and not isinstance(v, bool)]
    if ratio_of not in numeric:
        raise ValueError(f"ratio_of must be one of {numeric}, got {ratio_of!r}")
    base = float(base_row[ratio_of])
    column = f"{ratio_of}_vs_{name}"
    rows = []
    for run, result in results.items():
        row: dict[str, Any] = {"name": run, **result.as_row()}
        value = float(row[ratio_of])
        row[column] = value / base if base != 0 and math.isfinite(base) else math.nan
        rows.append(row)
    return rows


def process_rss_bytes(pid: int) -> int:
    """Resident memory of a process now, from ``/proc/<pid>/status`` (``VmRSS``; Linux).

    Args:
        pid: the process id, e.g. ``os.getpid()`` or a server's ``Popen.pid``.

    Returns:
        The resident set size in bytes.

    Raises:
        RuntimeError: off Linux (no ``/proc``; ``psutil.Process(pid).memory_info().rss``
            is the portable route), or when the process has no ``VmRSS`` (a zombie).
        ProcessLookupError: when no process has this id.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError(
            f"process_rss_bytes reads /proc and needs Linux, not {sys.platform!r}; "
            "use psutil.Process(pid).memory_info().rss there"
        )
    try:
        text = Path(f"/proc/{int(pid)}/status").read_text()
    except FileNotFoundError as error:
        raise ProcessLookupError(f"no process with pid {pid}") from error
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]  # "VmRSS:   123456 kB"
            if unit != "kB":
                raise RuntimeError(f"unexpected VmRSS unit {unit!r} in /proc/{pid}/status")
            return int(value) * 1024
    raise RuntimeError(f"process {pid} reports no VmRSS (a zombie or a kernel thread?)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then close).

    Returns:
        The port number; another process could take it before you bind it, so use it at once.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
