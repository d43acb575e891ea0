"""Chapter 10's batching goal, measured: the service with dynamic batching off and on.

What it measures
----------------
:func:`aigc_course.deploy.benchmark.benchmark_batching`: ``aigc-course serve`` as its own
process on a free loopback port with ``--max-batch 1`` (off) and ``--max-batch 64`` (on),
the two in alternated order over ``--rounds`` rounds (off, on; on, off; ...), each
after a warm-up; in each, a closed-loop load test (:func:`aigc_course.deploy.loadtest.
run_load`) of ``--requests`` one-sample requests at concurrency 1, 4 and 16 under a time
cap. The server's torch runs on one thread (``OMP_NUM_THREADS=1``), so on a 2-core
machine the load generator has the other core. Medians over rounds; the per-round values
are printed too, since one run on a shared machine is not a measurement.

The goal (issue: chapter 10): batching at least 4x the unbatched throughput at
concurrency 16 for the GAN on 2 cores, and p99 within 2x of p50 at concurrency 1. The
DDPM (``--ddpm-steps`` DDIM steps per request) is the regime where the forward pass
dominates the per-request overhead.

How to run
----------
From the repository root, on an otherwise idle machine::

    .venv/bin/python tests/benchmarks/serve_batching.py --rounds 4
    .venv/bin/python tests/benchmarks/serve_batching.py --rounds 4 --json results.json
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from aigc_course import kinds
from aigc_course.deploy.benchmark import benchmark_batching


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--ddpm-requests", type=int, default=200)
    parser.add_argument("--ddpm-steps", type=int, default=10)
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    results = {}
    for name, checkpoint, requests, payload in (
            ("GAN", kinds.CHECKPOINTS / "gan_digits16.pt", args.requests, None),
            (f"DDPM {args.ddpm_steps} steps", kinds.CHECKPOINTS / "ddpm_digits16.pt",
             args.ddpm_requests, lambda i: {"n": 1, "label": i % 10, "seed": i,
                                            "steps": args.ddpm_steps})):
        if not requests:
            continue
        start = time.perf_counter()
        extra = {} if payload is None else {"payload": payload, "warmup": 4}
        bench = benchmark_batching(checkpoint, requests=requests, rounds=args.rounds,
                                   max_wait_ms=args.max_wait_ms, time_cap_s=60, **extra)
        print(f"\n{name} ({time.perf_counter() - start:.0f} s)")
        print(pd.DataFrame(bench.rows()).set_index(["batching", "concurrency"]).round(2)
              .to_string())
        for c in bench.concurrencies:
            ratios = []
            for r in range(args.rounds):
                on, off = bench.runs[("on", r, c)], bench.runs[("off", r, c)]
                ratios.append(on.throughput_rps / off.throughput_rps)
            print(f"  concurrency {c:2}: on/off per round {[round(x, 2) for x in ratios]}")
        c1 = (bench.median("on", 1, "p99_ms") / bench.median("on", 1, "p50_ms"))
        print(f"  p99/p50 at concurrency 1 (batching on): {c1:.2f}")
        results[name] = {"rows": bench.rows(), "c1_p99_over_p50": c1}
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()
