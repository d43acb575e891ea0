"""What dynamic batching buys, measured: the same server with batching off and on.

:func:`benchmark_batching` starts ``aigc-course serve`` (a :class:`~aigc_course.deploy.
server.LocalServer`) with ``--max-batch 1`` (off: every request runs its own forward
pass) and with ``--max-batch B`` (on), in alternated order over rounds (off, on; on,
off; ...), since this machine is shared and noisy and one run is not a measurement. In
each, after a warm-up, a closed-loop load test (:func:`~aigc_course.deploy.loadtest.
run_load`) runs at each concurrency, a fixed number of requests under a time cap. The
rows report the median over rounds of throughput and latency percentiles, and each
concurrency's throughput ratio of batching on to off.

:func:`memory_under_load` reads a running server's resident memory (``VmRSS``) after a
warm-up, and again after ``requests`` more: a leak (images kept, a growing metrics
label set) shows as growth.

The server's torch runs on ``threads`` intra-op threads (1 by default) so that, on a
2-core machine, the load generator has a core of its own.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigc_course.deploy.loadtest import LoadResult, process_rss_bytes, run_load
from aigc_course.deploy.server import LocalServer


def one_sample(i: int) -> dict[str, Any]:
    """The ``i``-th request's body: one image, class ``i mod 10``, seed ``i``."""
    return {"n": 1, "label": i % 10, "seed": i}


@dataclass
class BatchingBenchmark:
    """The runs of :func:`benchmark_batching` and their summary.

    Attributes:
        runs: ``(mode, round, concurrency) -> LoadResult``; mode ``"off"`` or ``"on"``.
        max_batch: the batching run's ``--max-batch``.
        threads: the server's torch threads.
    """

    runs: dict[tuple[str, int, int], LoadResult] = field(default_factory=dict)
    max_batch: int = 64
    threads: int = 1

    @property
    def concurrencies(self) -> list[int]:
        return sorted({c for _, _, c in self.runs})

    def median(self, mode: str, concurrency: int, what: str) -> float:
        """The median over rounds of one :class:`LoadResult` property."""
        return statistics.median(getattr(r, what) for (m, _, c), r in self.runs.items()
                                 if m == mode and c == concurrency)

    def speedup(self, concurrency: int) -> float:
        """Median throughput with batching over without, at ``concurrency``."""
        return (self.median("on", concurrency, "throughput_rps")
                / self.median("off", concurrency, "throughput_rps"))

    def rows(self) -> list[dict[str, Any]]:
        """One row per (batching, concurrency): medians over rounds, for a table."""
        rows = []
        for c in self.concurrencies:
            for mode in ("off", "on"):
                results = [r for (m, _, cc), r in self.runs.items() if m == mode and cc == c]
                rows.append({
                    "batching": mode, "concurrency": c, "rounds": len(results),
                    "requests/s": self.median(mode, c, "throughput_rps"),
                    "p50 ms": self.median(mode, c, "p50_ms"),
                    "p95 ms": self.median(mode, c, "p95_ms"),
                    "p99 ms": self.median(mode, c, "p99_ms"),
                    "ok": sum(r.ok for r in results),
                    "5xx": sum(r.server_errors for r in results),
                    "errors": sum(r.errors for r in results),
                    "vs off": self.speedup(c) if mode == "on" else 1.0,
                })
        return rows


def benchmark_batching(checkpoint: str | Path, *, concurrencies: Sequence[int] = (1, 4, 16),
                       requests: int = 400, rounds: int = 2, time_cap_s: float = 30.0,
                       max_batch: int = 64, max_wait_ms: float = 0.0, threads: int = 1,
                       warmup: int = 20, payload: Callable[[int], dict[str, Any]] = one_sample,
                       progress: bool = True) -> BatchingBenchmark:
    """Throughput and latency with batching off and on (module docstring).

    Args:
        checkpoint: the model to serve.
        concurrencies: the closed-loop clients of each load test.
        requests: requests per load test (``time_cap_s`` bounds each too).
        rounds: rounds of (off, on) in alternated order.
        max_batch, max_wait_ms: the batching run's settings.
        threads: the server's torch intra-op threads.
        warmup: requests sent before measuring (first calls pay one-off costs).
        payload: the ``i``-th request's body (default :func:`one_sample`).
        progress: print one line per load test.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    bench = BatchingBenchmark(max_batch=max_batch, threads=threads)
    env = {"OMP_NUM_THREADS": str(threads)}
    for r in range(rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            batch = max_batch if mode == "on" else 1
            with LocalServer(checkpoint, env=env, threads=threads, max_batch=batch,
                             max_wait_ms=max_wait_ms, queue=max(256, 2 * max(concurrencies))
                             ) as server:
                url = server.url + "/v1/generate"
                run_load(url, requests=warmup, concurrency=1, time_cap_s=time_cap_s,
                         payload=payload)
                for c in concurrencies:
                    result = run_load(url, requests=requests, concurrency=c,
                                      time_cap_s=time_cap_s, payload=payload)
                    bench.runs[(mode, r, c)] = result
                    if progress:
                        print(f"round {r + 1}/{rounds}, batching {mode:3}, concurrency {c:2}: "
                              f"{result.throughput_rps:7.1f} requests/s, "
                              f"p99 {result.p99_ms:6.1f} ms", flush=True)
    return bench


@dataclass
class MemoryReading:
    """Resident memory of a server before and after a load."""

    requests: int
    before_bytes: int
    after_bytes: int
    result: LoadResult

    @property
    def growth_bytes(self) -> int:
        return self.after_bytes - self.before_bytes


def memory_under_load(server: LocalServer, *, requests: int = 1000, concurrency: int = 4,
                      warmup: int = 50, time_cap_s: float = 120.0) -> MemoryReading:
    """A running server's ``VmRSS`` after warm-up and after ``requests`` more (module
    docstring)."""
    url = server.url + "/v1/generate"
    run_load(url, requests=warmup, concurrency=concurrency, time_cap_s=time_cap_s,
             payload=one_sample)
    before = process_rss_bytes(server.pid)
    result = run_load(url, requests=requests, concurrency=concurrency,
                      time_cap_s=time_cap_s, payload=one_sample)
    after = process_rss_bytes(server.pid)
    return MemoryReading(requests, before, after, result)


def plot_batching(benchmarks: dict[str, BatchingBenchmark]) -> Any:
    """Throughput and p99 latency against concurrency, batching off and on, per model.

    One row of two panels per entry of ``benchmarks`` (a title -> :func:`benchmark_batching`
    result); the ratio on over off is written at each concurrency.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(benchmarks), 2, figsize=(9, 3.2 * len(benchmarks)),
                             squeeze=False)
    for (title, bench), (left, right) in zip(benchmarks.items(), axes, strict=True):
        cs = bench.concurrencies
        for mode, style in (("off", "o--"), ("on", "s-")):
            label = "batching off (--max-batch 1)" if mode == "off" else (
                f"batching on (--max-batch {bench.max_batch})")
            left.plot(cs, [bench.median(mode, c, "throughput_rps") for c in cs], style,
                      label=label)
            right.plot(cs, [bench.median(mode, c, "p99_ms") for c in cs], style, label=label)
        for c in cs:
            left.annotate(f"{bench.speedup(c):.1f}x", (c, bench.median("on", c, "throughput_rps")),
                          textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        left.set(xscale="log", xticks=cs, xticklabels=[str(c) for c in cs], xlabel="concurrency",
                 ylabel="requests / s", title=f"{title}: throughput")
        right.set(xscale="log", yscale="log", xticks=cs, xticklabels=[str(c) for c in cs],
                  xlabel="concurrency", ylabel="p99 latency (ms)", title=f"{title}: p99")
        left.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
