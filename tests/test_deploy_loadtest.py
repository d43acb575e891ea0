"""The bounded load test (aigc_course.deploy.loadtest) against a tiny app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from aigc_course.deploy.loadtest import (
    LoadResult,
    compare_rows,
    free_port,
    process_rss_bytes,
    require_loopback,
    run_load,
    run_load_async,
)


def make_app() -> FastAPI:
    """Routes that sleep, reject (503), fail (500) and echo the request body."""
    app = FastAPI()
    app.state.seen = []

    @app.post("/sleep/{ms}")
    @app.get("/sleep/{ms}")
    async def sleep(ms: int) -> dict[str, int]:
        await asyncio.sleep(ms / 1e3)
        return {"slept_ms": ms}

    @app.get("/zero")
    async def zero() -> Response:
        return Response(b"ok")

    @app.post("/busy")
    async def busy() -> Response:
        return JSONResponse({"detail": "queue full"}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.post("/fail")
    async def fail() -> Response:
        return JSONResponse({"detail": "boom"}, status_code=500)

    @app.post("/mixed")
    async def mixed(request: Request) -> Response:
        body = await request.json()
        status = [200, 503, 500][body["i"] % 3]
        return JSONResponse({"i": body["i"]}, status_code=status)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.json()
        app.state.seen.append(body["seed"])
        return {"seed": body["seed"]}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FastAPI]]:
    """The app under uvicorn in a background thread; yields its base URL and the app."""
    app = make_app()
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", ws="none", access_log=False,
                            timeout_graceful_shutdown=2)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app
    uv.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "server did not shut down"


def test_counts_add_up_and_request_bound_is_exact(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    result = run_load(f"{base}/sleep/2", requests=37, concurrency=4, time_cap_s=20)
    assert result.sent == 37 and result.completed == 37 and result.ok == 37
    assert result.status_counts == {200: 37}
    assert result.errors == 0 and result.server_errors == 0 and result.rejected == 0
    assert not result.hit_time_cap
    assert len(result.latencies_ms) == 37
    assert min(result.latencies_ms) >= 2.0  # the route sleeps 2 ms
    assert result.throughput_rps == pytest.approx(37 / result.wall_s)


def test_percentiles_match_numpy(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    result = run_load(f"{base}/sleep/1", requests=60, concurrency=2, time_cap_s=20)
    lat = np.asarray(result.latencies_ms)
    for q, value in [(50, result.p50_ms), (95, result.p95_ms), (99, result.p99_ms)]:
        assert value == pytest.approx(np.percentile(lat, q), rel=1e-12)
    assert result.mean_ms == pytest.approx(lat.mean(), rel=1e-12)
    assert result.max_ms == lat.max()
    assert result.p50_ms <= result.p95_ms <= result.p99_ms <= result.max_ms
    row = result.as_row()
    assert row["p95_ms"] == result.p95_ms and row["sent"] == 60


def test_503_is_rejected_and_500_is_a_server_error(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    busy = run_load(f"{base}/busy", requests=10, concurrency=2, time_cap_s=20)
    assert busy.status_counts == {503: 10}
    assert busy.rejected == 10 and busy.server_errors == 0 and busy.ok == 0
    assert busy.latencies_ms == () and np.isnan(busy.p50_ms)  # 2xx only
    fail = run_load(f"{base}/fail", requests=5, concurrency=1, time_cap_s=20)
    assert fail.server_errors == 5 and fail.rejected == 0
    mixed = run_load(f"{base}/mixed", requests=30, concurrency=3, time_cap_s=20,
                     payload=lambda i: {"i": i})
    assert mixed.status_counts == {200: 10, 500: 10, 503: 10}
    assert (mixed.ok, mixed.rejected, mixed.server_errors) == (10, 10, 10)
    assert len(mixed.latencies_ms) == 10


def test_payload_callable_makes_each_request_differ(server: tuple[str, FastAPI]) -> None:
    base, app = server
    app.state.seen.clear()
    result = run_load(f"{base}/echo", requests=25, concurrency=4, time_cap_s=20,
                      payload=lambda i: {"seed": 1000 + i})
    assert result.ok == 25
    assert sorted(app.state.seen) == list(range(1000, 1025))


def test_time_cap_bounds_wall_time(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    # 200 ms per request, cap 0.5 s: each worker sends at 0, 0.2, 0.4 s (0.4 s + a few ms
    # of overhead, hence 4 on a very busy machine), then stops.
    result = run_load(f"{base}/sleep/200", requests=1000, concurrency=2, time_cap_s=0.5)
    assert result.hit_time_cap
    assert result.sent in (4, 5, 6) and result.completed == result.sent
    assert result.errors == 0
    assert 0.5 <= result.wall_s < 0.5 + 0.2 + 0.3


def test_drain_time_cancels_requests_still_in_flight(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    result = run_load(f"{base}/sleep/3000", requests=100, concurrency=3, time_cap_s=0.2,
                      drain_s=0.2)
    assert result.hit_time_cap and result.sent == 3
    assert result.cancelled == 3 and result.completed == 0 and result.errors == 3
    assert result.wall_s < 0.2 + 0.2 + 0.5


def test_timeouts_and_connection_errors_are_counted(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    slow = run_load(f"{base}/sleep/2000", requests=2, concurrency=2, time_cap_s=5,
                    timeout_s=0.2)
    assert slow.timeouts == 2 and slow.completed == 0 and slow.errors == 2
    closed = run_load(f"http://127.0.0.1:{free_port()}/", requests=4, concurrency=2,
                      time_cap_s=5, method="GET")
    assert closed.connect_errors == 4 and closed.errors == 4 and closed.sent == 4


def test_concurrency_overlaps_requests(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    url = f"{base}/sleep/50"
    one = run_load(url, requests=8, concurrency=1, time_cap_s=20)
    four = run_load(url, requests=32, concurrency=4, time_cap_s=20)
    assert one.ok == 8 and four.ok == 32
    # ideal is 4x (20 vs 80 requests/s); 2.5x leaves room for a busy machine
    assert four.throughput_rps > 2.5 * one.throughput_rps
    rows = compare_rows({"c=1": one, "c=4": four})
    assert [row["name"] for row in rows] == ["c=1", "c=4"]
    assert rows[0]["throughput_rps_vs_c=1"] == 1.0
    assert rows[1]["throughput_rps_vs_c=1"] > 2.5


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:8000/v1/generate", "http://example.com/", "https://8.8.8.8/",
     "http://[2001:db8::1]:80/", "http://0.0.0.0:8000/", "ftp://127.0.0.1/"],
)
def test_refuses_non_loopback_before_connecting(url: str) -> None:
    # conftest's no_network fixture would turn any connection attempt into a RuntimeError
    with pytest.raises(ValueError, match="127.0.0.1|http"):
        run_load(url, requests=1, concurrency=1, time_cap_s=1)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://localhost:1/x",
                                 "http://[::1]:1/", "http://127.0.0.2/"])
def test_accepts_loopback(url: str) -> None:
    assert require_loopback(url).host in ("127.0.0.1", "localhost", "::1", "127.0.0.2")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"requests": 0}, "requests"), ({"concurrency": 0}, "concurrency"),
     ({"time_cap_s": 0.0}, "time_cap_s"), ({"time_cap_s": float("inf")}, "time_cap_s"),
     ({"timeout_s": -1.0}, "timeout_s"), ({"method": "DELETE"}, "method")],
)
def test_refuses_bad_bounds(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"requests": 1, "concurrency": 1, "time_cap_s": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        run_load("http://127.0.0.1:1/", **args)  # type: ignore[arg-type]


def test_works_inside_a_running_event_loop(server: tuple[str, FastAPI]) -> None:
    base, _ = server

    async def notebook_cell() -> tuple[LoadResult, LoadResult]:
        # as in Jupyter: a loop is running, asyncio.run would fail; run_load must not
        sync = run_load(f"{base}/sleep/1", requests=5, concurrency=2, time_cap_s=20)
        awaited = await run_load_async(f"{base}/sleep/1", requests=5, concurrency=2,
                                       time_cap_s=20)
        return sync, awaited

    sync, awaited = asyncio.run(notebook_cell())
    assert sync.ok == 5 and awaited.ok == 5


def test_compare_rows_validates() -> None:
    result = LoadResult(url="http://127.0.0.1/", method="GET", concurrency=1, requests=1,
                        time_cap_s=1.0, sent=1, status_counts={200: 1}, timeouts=0,
                        connect_errors=0, other_errors=0, cancelled=0, wall_s=0.5,
                        hit_time_cap=False, latencies_ms=(4.0,))
    rows = compare_rows({"a": result, "b": result}, baseline="b", ratio_of="p50_ms")
    assert rows[0]["p50_ms_vs_b"] == 1.0 and rows[0]["throughput_rps"] == 2.0
    with pytest.raises(ValueError, match="baseline"):
        compare_rows({"a": result}, baseline="zzz")
    with pytest.raises(ValueError, match="ratio_of"):
        compare_rows({"a": result}, ratio_of="hit_time_cap")
    with pytest.raises(ValueError, match="empty"):
        compare_rows({})


def _statm_resident() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:  # pages: size resident shared ...
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_process_rss_bytes_is_plausible() -> None:
    """It agrees with the kernel's other account (``statm``) and follows an allocation.
    The growth bar is half the block: the resident set can lose other pages meanwhile
    (reclaimed by the kernel), and on one loaded CI run (a 1.6 GB worker beside another)
    it grew by only 39 MB for the 64 MB block."""
    rss, resident = process_rss_bytes(os.getpid()), _statm_resident()
    assert 10 * 2**20 < rss and abs(rss - resident) < 0.1 * resident
    block = b"\x01" * (64 * 2**20)  # touched pages, so they are resident
    after, resident = process_rss_bytes(os.getpid()), _statm_resident()
    assert abs(after - resident) < 0.1 * resident and after - rss > 32 * 2**20
    del block
    with pytest.raises(ProcessLookupError):
        process_rss_bytes(2**22 + 12345)  # above the kernel's default pid_max
