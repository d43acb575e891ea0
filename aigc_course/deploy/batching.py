"""Dynamic batching: requests that arrive within a few milliseconds share one forward pass.

A generator's forward pass costs little more for 16 samples than for one (the weights
are read once; the matrix products get wider), so a service that runs each request on
its own wastes most of its CPU on per-call overhead. :class:`DynamicBatcher` sits
between the HTTP handlers (on the event loop) and the model (on one worker thread):

1. a handler calls :meth:`DynamicBatcher.submit` with its own starting noise (drawn from
   its own seed, so batching never changes an image) and awaits the result;
2. the collector takes the first waiting job, then keeps taking jobs with the same
   settings (``steps``, ``guidance``: one forward pass runs one setting) for at most
   ``max_wait_ms`` or until ``max_batch`` samples are gathered;
3. the batch runs on the worker thread (the event loop keeps answering ``/healthz`` and
   ``/metrics`` meanwhile), and each job gets its own slice of the output.

While a batch runs, new requests queue up, so under load the next batch forms without
any waiting. The default wait is therefore 0 ("take what is waiting when the model frees
up"): measured on the chapter's GAN (2 cores, 1 torch thread, requests of one sample),
a 5 ms wait tripled the median latency at concurrency 1 (2.4 -> 9.3 ms) and bought
nothing at 16 (1.4x against 1.7-1.8x with no wait, within this machine's noise); a wait
pays when single requests arrive a little apart and each pass is costly. The queue is bounded: when
``max_queue`` jobs wait, :meth:`submit` raises :class:`QueueFull` at once (the service
answers 503 with ``Retry-After``) instead of letting latency grow without limit.
``max_batch=1`` turns batching off (every job runs alone), which is the baseline of the
chapter's load test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

Tensor = torch.Tensor

#: ``run(noise (B, *noise_shape), labels (B,) or None, options) -> images (B, C, H, W)``
RunFn = Callable[[Tensor, "Tensor | None", dict[str, Any]], Tensor]


class QueueFull(RuntimeError):
    """The batcher's queue holds ``max_queue`` jobs: try again later."""


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new jobs."""


@dataclass
class BatchInfo:
    """What one forward pass did (passed to ``on_batch``)."""

    samples: int
    requests: int
    seconds: float
    options: dict[str, Any]


@dataclass
class _Job:
    noise: Tensor
    labels: Tensor | None
    options: dict[str, Any]
    future: asyncio.Future[tuple[Tensor, BatchInfo]]
    key: tuple[tuple[str, Any], ...] = field(init=False)

    def __post_init__(self) -> None:
        self.key = tuple(sorted(self.options.items()))

    @property
    def n(self) -> int:
        return len(self.noise)


class DynamicBatcher:
    """Collect jobs into batches and run them on one worker thread.

    Args:
        run: the forward pass, called on the worker thread with the concatenated noise
            and labels of a batch's jobs and their shared options.
        max_batch: the most samples per forward pass (a single larger job still runs,
            alone); 1 turns batching off.
        max_wait_ms: how long the collector waits for more jobs after the first.
        max_queue: the most jobs waiting (the batch being computed not counted).
        on_batch: called on the event loop after each forward pass (metrics).
        on_images: called on the worker thread with each batch's images and labels,
            after the jobs got their results (the drift monitor).

    Use inside a running event loop: ``await batcher.start()`` ... ``await
    batcher.stop()``.
    """

    def __init__(self, run: RunFn, *, max_batch: int = 64, max_wait_ms: float = 0.0,
                 max_queue: int = 256, on_batch: Callable[[BatchInfo], None] | None = None,
                 on_images: Callable[[Tensor, Tensor | None], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.on_images = on_images
        self._queue: asyncio.Queue[_Job] | None = None
        self._held: list[_Job] = []          # taken from the queue, for a later batch
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._busy = False                   # a forward pass is running

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet in a forward pass)."""
        return (self._queue.qsize() if self._queue is not None else 0) + len(self._held)

    async def start(self) -> None:
        """Start the collector on the running loop and the worker thread."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigc-model")
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, noise: Tensor, labels: Tensor | None,
                     options: dict[str, Any] | None = None) -> tuple[Tensor, BatchInfo]:
        """Queue one job; its images ``(n, C, H, W)`` and the batch it ran in.

        Raises:
            QueueFull: ``max_queue`` jobs are waiting. BatcherClosed: shutting down.
        """
        if self._queue is None or self._closing:
            raise BatcherClosed("the service is shutting down")
        if self.depth >= self.max_queue:
            raise QueueFull(f"{self.depth} requests are waiting (the queue holds "
                            f"{self.max_queue})")
        future: asyncio.Future[tuple[Tensor, BatchInfo]] = (
            asyncio.get_running_loop().create_future())
        self._queue.put_nowait(_Job(noise, labels, dict(options or {}), future))
        return await future

    async def _next_job(self, timeout: float | None) -> _Job | None:
        assert self._queue is not None
        if self._held:
            return self._held.pop(0)
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _gather(self) -> list[_Job]:
        """The next batch: the first job, then compatible ones until full or timed out."""
        first = await self._next_job(None)
        assert first is not None
        batch, samples = [first], first.n
        deadline = time.perf_counter() + self.max_wait
        skipped: list[_Job] = []
        while samples < self.max_batch:
            job = await self._next_job(deadline - time.perf_counter())
            if job is None:
                break
            if job.key != first.key or samples + job.n > self.max_batch:
                skipped.append(job)          # another setting, or it would overflow
                if samples + job.n > self.max_batch and job.key == first.key:
                    break
                continue
            batch.append(job)
            samples += job.n
        self._held = skipped + self._held
        return batch

    def _forward(self, batch: list[_Job]) -> tuple[Tensor, float]:
        noise = torch.cat([job.noise for job in batch])
        labels = (None if batch[0].labels is None
                  else torch.cat([job.labels for job in batch if job.labels is not None]))
        start = time.perf_counter()
        with torch.inference_mode():
            images = self.run(noise, labels, batch[0].options)
        return images, time.perf_counter() - start

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        while True:
            batch = await self._gather()
            live = [job for job in batch if not job.future.done()]   # cancelled: skip
            if not live:
                continue
            self._busy = True
            try:
                images, seconds = await loop.run_in_executor(self._executor, self._forward,
                                                             live)
            except Exception as error:      # the model failed: every job of the batch
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            finally:
                self._busy = False
            info = BatchInfo(len(images), len(live), seconds, live[0].options)
            start = 0
            for job in live:
                if not job.future.done():
                    job.future.set_result((images[start:start + job.n], info))
                start += job.n
            if self.on_batch is not None:
                self.on_batch(info)
            if self.on_images is not None:
                labels = (None if live[0].labels is None
                          else torch.cat([j.labels for j in live if j.labels is not None]))
                loop.run_in_executor(self._executor, self.on_images, images, labels)

    async def stop(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, finish the waiting ones (up to ``timeout`` s), then stop."""
        self._closing = True
        if self._task is None:
            return
        deadline = time.perf_counter() + timeout
        while (self.depth or self._busy) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for job in self._held:
            if not job.future.done():
                job.future.set_exception(BatcherClosed("the service shut down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = None
