"""The generation service behind ``aigc-course serve``: FastAPI, one model, batched.

Routes (OpenAPI docs at ``/docs``):

* ``POST /v1/generate`` -- ``{"n", "label", "seed", "steps", "guidance", "format"}``:
  a PNG grid (``format="png"``, the default), or JSON with one base64 PNG per sample
  and the metadata (model kind, checkpoint SHA-256, seed, labels, the settings used).
* ``POST /v1/complete`` -- a text model's (chapter 06's ``gpt``) routes instead:
  ``{"prompt", "n", "max_new_tokens", "temperature", "top_k", "top_p", "seed"}`` -> JSON
  with the continuations and the same metadata. Text requests never share a forward pass
  (continuing different prompts together needs padding and per-row positions, which
  chapter 06's sampler does not do), but they queue, are capped and counted the same way.
* ``GET /v1/info`` -- what the model is and which inputs it takes (the page reads it).
* ``GET /healthz`` (the process answers), ``GET /readyz`` (the model is loaded),
  ``GET /metrics`` (Prometheus' text format), ``GET /`` (a small page).

What makes it a service you can trust, each tested in ``tests/test_deploy_service.py``:

* **Work off the event loop, batched.** Handlers draw their own starting noise from
  their seed and hand it to a :class:`~aigc_course.deploy.batching.DynamicBatcher`,
  whose one worker thread runs the network; so ``/healthz`` answers while a batch runs,
  batching never changes an image, and a seed gives the images ``aigc-course sample
  --seed`` gives.
* **Refuse before working.** A body over ``max_body_bytes`` is answered 413 before it
  is read; wrong JSON types, unknown fields, ``n`` outside ``1..max_n``, a label out of
  range or on an unconditional model, steps outside ``1..max_steps`` or on a model
  without steps get 422 before any noise is drawn; a full queue gets 503 with
  ``Retry-After``.
* **Loaded once, safely.** The checkpoint is read once at start-up with
  ``weights_only=True`` (:func:`aigc_course.kinds.load_model`); ``/readyz`` is 503 until
  then.
* **Graceful shutdown.** On SIGTERM uvicorn stops accepting connections and waits for
  the open requests; the lifespan then drains the batcher.
* **Metrics from every worker.** With ``PROMETHEUS_MULTIPROC_DIR`` set (``aigc-course
  serve --workers N`` sets it), each worker writes its metrics to files there and
  ``/metrics`` on any worker reports the sum over all of them.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from aigc_course import kinds
from aigc_course.checkpoint import read_checkpoint
from aigc_course.deploy.batching import BatcherClosed, BatchInfo, DynamicBatcher, QueueFull
from aigc_course.utils import file_sha256
from aigc_course.viz import make_grid

Tensor = torch.Tensor
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STATIC = Path(__file__).resolve().parent / "static"
CONFIG_ENV = "AIGC_SERVE_CONFIG"        # the JSON ServeConfig of a multi-worker server
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the grid's padding between tiles, in pixels (:func:`aigc_course.viz.make_grid`)
GRID_PADDING = 1


@dataclass(frozen=True)
class ServeConfig:
    """The knobs of one service (``aigc-course serve`` flags of the same names).

    Attributes:
        checkpoint: the model checkpoint (any image kind).
        max_batch: the most samples per forward pass (1: no batching).
        max_wait_ms: how long a batch waits for more requests after its first.
        max_n: the most samples one request may ask for.
        max_queue: the most requests waiting for the model before 503.
        max_steps: the most sampling steps one request may ask for (diffusion).
        max_new_tokens: the most tokens one text request may ask for.
        max_prompt_chars: the longest prompt a text request may send.
        max_body_bytes: the largest request body read (413 above it).
        retry_after_s: the ``Retry-After`` of a 503.
        threads: torch's intra-op threads (``None``: torch's default).
        drift: a drift-monitor calibration file (``None``: no monitor).
        device: where the network runs (``"cpu"``, ``"cuda"``; ``"auto"``: CUDA when
            available). The noise is drawn on the CPU, so a seed gives the same images on
            every device (to float round-off).
    """

    checkpoint: str
    max_batch: int = 64
    max_wait_ms: float = 0.0
    max_n: int = 64
    max_queue: int = 256
    max_steps: int = 250
    max_new_tokens: int = 256
    max_prompt_chars: int = 1000
    max_body_bytes: int = 4096
    retry_after_s: int = 1
    threads: int | None = None
    drift: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_n", "max_queue", "max_steps", "max_new_tokens",
                     "max_prompt_chars", "max_body_bytes", "retry_after_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"unknown device {self.device!r}; valid: cpu, cuda, auto")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


class GenerateRequest(BaseModel):
    """The body of ``POST /v1/generate`` (strict types: ``"3"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    n: int = Field(1, ge=1, description="how many samples (1..max_n)")
    label: int | None = Field(None, description="the class (conditional models; "
                                                "none: the classes in turn)")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="none: a random one, "
                                                                   "returned")
    steps: int | None = Field(None, description="sampling steps (diffusion; none: the "
                                                "model's own)")
    guidance: float | None = Field(None, ge=0.0, le=20.0,
                                   description="classifier-free guidance w (diffusion)")
    format: Literal["png", "json"] = "png"


class CompleteRequest(BaseModel):
    """The body of ``POST /v1/complete`` (a text model; strict types)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field("\n", min_length=1, description="the text to continue")
    n: int = Field(1, ge=1, description="how many continuations (1..max_n)")
    max_new_tokens: int = Field(100, ge=1, description="tokens to add (1..max_new_tokens)")
    temperature: float = Field(1.0, gt=0.0, le=5.0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="none: a random one, "
                                                                   "returned")


class Monitor(Protocol):
    """What the service needs of a drift monitor (:mod:`aigc_course.deploy.drift`)."""

    def observe(self, images: Tensor, labels: Tensor | None) -> Any: ...

    def gauges(self) -> dict[str, float]: ...


# --- the model behind the service --------------------------------------------------------

@dataclass
class Served:
    """The loaded model and what the routes need to know about it."""

    kind: kinds.ModelKind
    model: Any
    sha256: str
    image_shape: tuple[int, int, int] | None           # None: a text model
    dataset: str | None = None
    device: torch.device = torch.device("cpu")

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu") -> Served:
        """Read ``checkpoint`` once (``weights_only=True``): any model kind.

        Raises:
            ValueError: a foreign or corrupt checkpoint, or ``"cuda"`` without CUDA.
        """
        kind, model = kinds.load_model(checkpoint)
        shape = None
        if kind.modality == "image":
            c = model.config
            shape = (int(c.channels), int(c.image_size), int(c.image_size))
        dataset = read_checkpoint(checkpoint).get("metadata", {}).get("dataset")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda, but torch sees no CUDA device")
        target = torch.device(device)
        if target.type != "cpu":
            model.to(target)
        return cls(kind, model, file_sha256(checkpoint), shape,
                   None if dataset is None else str(dataset), target)

    @property
    def text(self) -> bool:
        return self.kind.modality == "text"

    @property
    def has_steps(self) -> bool:
        return "steps" in self.kind.sample_options

    @property
    def max_steps_of_model(self) -> int:
        return int(self.model.schedule.T) if self.has_steps else 0

    def info(self, config: ServeConfig) -> dict[str, Any]:
        model = self.model
        info: dict[str, Any] = {
            "kind": self.kind.name, "modality": self.kind.modality,
            "checkpoint_sha256": self.sha256, "conditional": model.conditional,
            "num_classes": model.num_classes,
            "sample_options": list(self.kind.sample_options),
            "max_n": config.max_n, "max_batch": 1 if self.text else config.max_batch,
            "dataset": self.dataset, "device": str(self.device),
        }
        if self.text:
            info.update(route="/v1/complete", tokenizer=model.tokenizer.name,
                        max_new_tokens=config.max_new_tokens,
                        max_prompt_chars=config.max_prompt_chars)
            return info
        assert self.image_shape is not None
        info.update(route="/v1/generate", image_shape=list(self.image_shape),
                    noise_shape=list(model.noise_shape))
        if self.has_steps:
            info["steps"] = {"min": 1, "max": min(config.max_steps, self.max_steps_of_model),
                             "default": int(model.sampling_steps)}
        return info

    def run(self, noise: Tensor, labels: Tensor | None, options: dict[str, Any]) -> Tensor:
        """One forward pass of a batch (called on the batcher's worker thread).

        Images: ``noise`` ``(B, *noise_shape)`` and labels in, ``(B, C, H, W)`` out. Text:
        ``noise`` ``(n, 0)`` only counts the continuations, the options hold the prompt,
        the settings and the request's seed; token ids ``(n, T)`` out.
        """
        if self.text:
            options = dict(options)
            generator = torch.Generator().manual_seed(options.pop("seed"))
            return self.model.sample(len(noise), generator=generator, **options)
        if labels is not None:
            labels = labels.to(self.device)
        images = self.model.sample(len(noise), y=labels, noise=noise.to(self.device),
                                   **options)
        return images.float().clamp(-1, 1).cpu()


def check_request(request: GenerateRequest, served: Served, config: ServeConfig
                  ) -> dict[str, Any]:
    """The sampling options of a valid request; HTTP 422 naming the problem otherwise."""
    def refuse(message: str) -> HTTPException:
        return HTTPException(status_code=422, detail=message)

    model = served.model
    if request.n > config.max_n:
        raise refuse(f"n must be in 1..{config.max_n}, got {request.n}")
    if request.label is not None:
        if not model.conditional:
            raise refuse(f"label needs a class-conditional model; this {served.kind.name!r} "
                         "model is unconditional")
        if not 0 <= request.label < model.num_classes:
            raise refuse(f"label must be in 0..{model.num_classes - 1}, got {request.label}")
    options: dict[str, Any] = {}
    if request.steps is not None:
        if not served.has_steps:
            raise refuse(f"steps do not apply to a {served.kind.name!r} model")
        top = min(config.max_steps, served.max_steps_of_model)
        if not 1 <= request.steps <= top:
            raise refuse(f"steps must be in 1..{top}, got {request.steps}")
        options["steps"] = request.steps
    if request.guidance is not None:
        if "guidance" not in served.kind.sample_options:
            raise refuse(f"guidance does not apply to a {served.kind.name!r} model")
        if request.guidance and not model.conditional:
            raise refuse("guidance needs a class-conditional model")
        options["guidance"] = float(request.guidance)
    return options


def check_completion(request: CompleteRequest, served: Served, config: ServeConfig
                     ) -> dict[str, Any]:
    """The sampling options of a valid text request; HTTP 422 naming the problem."""
    def refuse(message: str) -> HTTPException:
        return HTTPException(status_code=422, detail=message)

    if request.n > config.max_n:
        raise refuse(f"n must be in 1..{config.max_n}, got {request.n}")
    if request.max_new_tokens > config.max_new_tokens:
        raise refuse(f"max_new_tokens must be in 1..{config.max_new_tokens}, got "
                     f"{request.max_new_tokens}")
    if len(request.prompt) > config.max_prompt_chars:
        raise refuse(f"the prompt has {len(request.prompt)} characters; at most "
                     f"{config.max_prompt_chars}")
    try:
        served.model.encode(request.prompt)              # a char vocabulary may refuse it
    except ValueError as error:
        raise refuse(str(error)) from error
    return {"prompt": request.prompt, "max_new_tokens": request.max_new_tokens,
            "temperature": request.temperature, "top_k": request.top_k,
            "top_p": request.top_p}


def encode_png(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` in ``[0, 1]`` as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def grid_shape(n: int, image_size: int, padding: int = GRID_PADDING) -> tuple[int, int]:
    """``(height, width)`` of the PNG grid of ``n`` images (about square, as make_grid)."""
    nrow = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    return rows * (image_size + padding) + padding, nrow * (image_size + padding) + padding


# --- metrics -------------------------------------------------------------------------------

class Metrics:
    """The service's Prometheus metrics, in its own registry (or the multiprocess files)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # one registry per app (tests build many); multiprocess values go to files instead
        self.registry: CollectorRegistry | None = (None if self.multiprocess
                                                   else CollectorRegistry())
        reg = self.registry
        self.requests = Counter("aigc_requests", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=reg)
        self.latency = Histogram("aigc_request_seconds", "HTTP request latency",
                                 ["route"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1,
                                                     2.5, 5, 10), registry=reg)
        self.samples = Counter("aigc_samples_generated", "samples generated", registry=reg)
        self.batch_size = Histogram("aigc_batch_size", "samples per forward pass",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=reg)
        self.batch_requests = Histogram("aigc_batch_requests", "requests per forward pass",
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=reg)
        self.rejected = Counter("aigc_rejected", "requests refused by the full queue", registry=reg)
        self.queue_depth = Gauge("aigc_queue_depth", "requests waiting for the model",
                                 multiprocess_mode="livesum", registry=reg)
        self.drift = Gauge("aigc_drift", "drift monitor readings", ["reading"],
                           multiprocess_mode="max", registry=reg)

    def batch(self, info: BatchInfo) -> None:
        self.samples.inc(info.samples)
        self.batch_size.observe(info.samples)
        self.batch_requests.observe(info.requests)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.registry is not None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)     # every worker's files
        return generate_latest(registry), CONTENT_TYPE_LATEST


class Guard:
    """ASGI middleware: 413 for a body over the cap (before it is read), and metrics.

    The cap holds for a declared ``Content-Length`` and for a chunked body alike (the
    stream is counted as it arrives). Routes are labelled by their path template, and an
    unknown path by ``"unmatched"``, so a scan of random URLs cannot grow the metrics.
    """

    def __init__(self, app: Any, max_body_bytes: int, metrics: Metrics,
                 routes: set[str]) -> None:
        self.app, self.max_body, self.metrics, self.routes = app, max_body_bytes, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.routes else "unmatched"
        start = time.perf_counter()
        status = {"code": 500}

        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.metrics.requests.labels(route, scope["method"], str(status["code"])).inc()
                self.metrics.latency.labels(route).observe(time.perf_counter() - start)

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()              # before the last byte leaves: a scrape that follows
            await send(message)       # the response always counts it

        declared = dict(scope["headers"]).get(b"content-length")
        too_big = declared is not None and (not declared.isdigit()
                                            or int(declared) > self.max_body)
        if too_big:
            await self._refuse(send_counted)
        else:
            received = 0

            async def receive_capped() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:         # a chunked body grew too big
                        raise HTTPException(status_code=413, detail=self._detail)
                return message

            await self.app(scope, receive_capped, send_counted)
        record()

    @property
    def _detail(self) -> str:
        return f"the request body is over {self.max_body} bytes"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": self._detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# --- the app -------------------------------------------------------------------------------

def create_app(config: ServeConfig, monitor: Monitor | None = None) -> FastAPI:
    """The FastAPI app of one service (the model loads in its lifespan).

    Args:
        config: the service's knobs and checkpoint.
        monitor: a drift monitor fed every batch's images (``None``: the one in
            ``config.drift``, if any).
    """
    metrics = Metrics()
    state: dict[str, Any] = {"served": None, "batcher": None, "monitor": monitor}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        served = Served.load(config.checkpoint, config.device)
        if state["monitor"] is None and config.drift is not None:
            from aigc_course.deploy.drift import load_monitor

            state["monitor"] = load_monitor(config.drift, served.model)
        mon = state["monitor"]

        def watch(images: Tensor, labels: Tensor | None) -> None:
            mon.observe(images, labels)
            for name, value in mon.gauges().items():
                metrics.drift.labels(name).set(value)

        if mon is not None and served.text:
            raise ValueError("the drift monitor watches images; this is a text model")
        batcher = DynamicBatcher(served.run, max_batch=1 if served.text else config.max_batch,
                                 max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
                                 on_batch=metrics.batch,
                                 on_images=watch if mon is not None else None)
        await batcher.start()
        state.update(served=served, batcher=batcher)
        # Everything loaded so far (torch, FastAPI, the model) lives as long as the
        # process: move it out of the collector's view, so a full collection walks only
        # the objects requests make. Without it, a gen-2 pass over torch's ~10^6 objects
        # paused every request in flight for ~200 ms (measured: 16 requests at once).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            state["served"] = None
            await batcher.stop()
            if metrics.multiprocess:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(title="aigc-course generation service", version="1",
                  description="Samples from one of the course's image models.",
                  lifespan=lifespan)

    def served_or_503() -> Served:
        served = state["served"]
        if served is None:
            raise HTTPException(status_code=503, detail="the model is not loaded")
        return served

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive (whether or not the model is loaded)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        """200 once the model is loaded (503 before)."""
        served = served_or_503()
        return {"ready": True, "kind": served.kind.name, "checkpoint_sha256": served.sha256,
                "worker_pid": os.getpid()}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        """The model's kind, classes, image shape, caps and sampling options."""
        return served_or_503().info(config)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        batcher = state["batcher"]
        metrics.queue_depth.set(batcher.depth if batcher is not None else 0)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def submit(served: Served, noise: Tensor, labels: Tensor | None,
                     options: dict[str, Any]) -> tuple[Tensor, BatchInfo]:
        try:
            return await state["batcher"].submit(noise, labels, options)
        except QueueFull as error:
            metrics.rejected.inc()
            raise HTTPException(status_code=503, detail=str(error),
                                headers={"Retry-After": str(config.retry_after_s)}) from error
        except BatcherClosed as error:
            raise HTTPException(status_code=503, detail=str(error),
                                headers={"Retry-After": str(config.retry_after_s)}) from error

    def wrong_route(served: Served) -> HTTPException:
        route = "/v1/complete" if served.text else "/v1/generate"
        return HTTPException(status_code=404, detail=f"this server serves a {served.kind.name!r} "
                                                     f"{served.kind.modality} model: POST {route}")

    @app.post("/v1/complete", responses={404: {}, 413: {}, 422: {}, 503: {}})
    async def complete(body: CompleteRequest) -> JSONResponse:
        """A text model's continuations of a prompt, as JSON."""
        served = served_or_503()
        if not served.text:
            raise wrong_route(served)
        options = check_completion(body, served, config)         # 422 before any work
        seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
        start = time.perf_counter()
        # the seed is part of the options, so no two requests share a pass (see above)
        ids, _ = await submit(served, torch.zeros(body.n, 0), None, {**options, "seed": seed})
        tokenizer = served.model.tokenizer
        texts = [tokenizer.decode(row.tolist()) for row in ids]
        return JSONResponse({"kind": served.kind.name, "checkpoint_sha256": served.sha256,
                             "seed": seed, "n": body.n, "settings": options,
                             "texts": texts, "tokens": int(ids.shape[1]),
                             "seconds": round(time.perf_counter() - start, 6),
                             "worker_pid": os.getpid()})

    @app.post("/v1/generate", responses={200: {"content": {"image/png": {}}},
                                         404: {}, 413: {}, 422: {}, 503: {}})
    async def generate(body: GenerateRequest) -> Response:
        """Samples as a PNG grid, or JSON with one base64 PNG per sample."""
        served = served_or_503()
        if served.text:
            raise wrong_route(served)
        options = check_request(body, served, config)            # 422 before any work
        seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
        model = served.model
        labels = kinds.sample_labels(body.n, body.label,
                                     model.num_classes if model.conditional else 0)
        noise = torch.randn(body.n, *model.noise_shape,
                            generator=torch.Generator().manual_seed(seed))
        start = time.perf_counter()
        images, batch = await submit(served, noise, labels if model.conditional else None,
                                     options)
        seconds = time.perf_counter() - start
        settings = dict(options)
        if served.has_steps:
            settings.setdefault("steps", int(model.sampling_steps))
            settings.setdefault("guidance", 0.0)
        meta = {"kind": served.kind.name, "checkpoint_sha256": served.sha256, "seed": seed,
                "n": body.n, "labels": labels.tolist(), "settings": settings,
                "image_shape": list(served.image_shape or ()), "batch_samples": batch.samples,
                "batch_requests": batch.requests, "seconds": round(seconds, 6),
                "worker_pid": os.getpid()}
        if body.format == "json":
            pngs = [base64.b64encode(encode_png(make_grid(image[None], padding=0))).decode()
                    for image in images]
            return JSONResponse({**meta, "images": pngs})
        png = encode_png(make_grid(images, padding=GRID_PADDING))
        headers = {"X-Model-Kind": served.kind.name, "X-Checkpoint-SHA256": served.sha256,
                   "X-Seed": str(seed), "X-Settings": json.dumps(settings),
                   "X-Batch-Samples": str(batch.samples), "X-Worker-PID": str(os.getpid())}
        return Response(png, media_type="image/png", headers=headers)

    routes = {getattr(r, "path", "") for r in app.routes}
    app.add_middleware(Guard, max_body_bytes=config.max_body_bytes, metrics=metrics,
                       routes=routes)
    app.state.metrics = metrics
    app.state.service = state
    return app


def app_from_environment() -> FastAPI:
    """The app of a multi-worker server: its :class:`ServeConfig` is ``$AIGC_SERVE_CONFIG``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise RuntimeError(f"${CONFIG_ENV} is not set: start the server with aigc-course serve")
    return create_app(ServeConfig.from_json(text))
