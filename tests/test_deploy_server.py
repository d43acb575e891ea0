"""The service as users run it: ``aigc-course serve`` in its own process on a free
loopback port (:class:`~aigc_course.deploy.server.LocalServer`).

* graceful shutdown: a request in flight when SIGTERM arrives still gets its images;
* several workers (requests land on both processes, and ``/metrics`` on either counts
  every request: Prometheus' multiprocess mode) are checked where chapter 10 shows them:
  its notebook starts two workers on every profile and ``tests/test_notebooks.py``
  asserts the recorded counts (a copy of that check here cost 12-15 s of CI);
* bounded load (:func:`aigc_course.deploy.loadtest.run_load`): no 5xx but the 503s of
  a full queue, and each 503 carries ``Retry-After``.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time
from email.message import Message

import pytest

from aigc_course import kinds
from aigc_course.deploy.server import LocalServer

pytestmark = pytest.mark.slow
GAN, DDPM = kinds.CHECKPOINTS / "gan_digits16.pt", kinds.CHECKPOINTS / "ddpm_digits16.pt"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def test_sigterm_finishes_the_request_in_flight() -> None:
    server = LocalServer(DDPM, env=ONE_THREAD, max_steps=1000).start()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            slow = pool.submit(server.call, "/v1/generate", {"n": 32, "steps": 200, "seed": 1})
            time.sleep(1.0)                                 # the batch is running
            # compute is off the event loop: the probes answer while the batch runs
            probe = time.monotonic()
            assert server.call("/healthz")[2] == b'{"status":"ok"}'
            assert time.monotonic() - probe < 3.0 and not slow.done()   # not after the batch
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            status, headers, body = slow.result(timeout=60)
            took = time.monotonic() - started
        assert status == 200 and headers["Content-Type"] == "image/png" and body
        assert took > 1.0                                   # it really was in flight
        server.process.wait(30)
        assert server.process.returncode in (0, -signal.SIGTERM)   # uvicorn re-raises it
        assert "Traceback" not in server.read_log()
    finally:
        server.stop()


def test_bounded_load_no_server_errors_and_503_says_retry_after() -> None:
    from aigc_course.deploy.loadtest import run_load

    with LocalServer(GAN, env=ONE_THREAD, max_batch=64, queue=2) as server:
        result = run_load(server.url + "/v1/generate", requests=300, concurrency=16,
                          time_cap_s=60, payload=lambda i: {"n": 4, "seed": i})
        assert result.server_errors == 0 and result.errors == 0
        assert result.completed == 300
        assert result.rejected > 0                # 16 clients against a queue of 2
        assert result.status_counts.get(200, 0) + result.rejected == 300
        # under load requests really share forward passes: more requests than passes
        passes = server.metric("aigc_batch_requests_count")
        assert server.metric("aigc_batch_requests_sum") > 1.2 * passes > 0
        status, headers = 0, Message()
        for _ in range(200):                      # catch one 503 to read its header
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(
                    lambda i: server.call("/v1/generate", {"n": 16, "seed": i}), range(32)))
            refused = [a for a in answers if a[0] == 503]
            if refused:
                status, headers = refused[0][0], refused[0][1]
                break
        assert status == 503 and headers["Retry-After"] == "1"
