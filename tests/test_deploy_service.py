"""The generation service in-process: every route and every bad input through
``TestClient`` with the lifespan (so the model really loads), and the batcher's rules.

Pinned behaviour: a request's images depend only on its seed, label and settings, never
on which other requests shared its forward pass; a refused request never reaches the
model (no forward pass is counted); the queue refuses with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from aigc_course import kinds
from aigc_course.deploy.batching import DynamicBatcher, QueueFull
from aigc_course.deploy.service import ServeConfig, Served, create_app, encode_png, grid_shape
from aigc_course.viz import make_grid

CKPT = Path(kinds.CHECKPOINTS)
GAN, VAE, DDPM = CKPT / "gan_digits16.pt", CKPT / "vae_digits16.pt", CKPT / "ddpm_digits16.pt"


def client(checkpoint: Path, **options: object) -> TestClient:
    return TestClient(create_app(ServeConfig(str(checkpoint), **options)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gan() -> TestClient:
    with client(GAN, max_n=32, max_body_bytes=1024) as c:
        yield c


def png_of(response_content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response_content)))


def forward_passes(c: TestClient) -> float:
    """The ``aigc_batch_size`` histogram's count: forward passes the model ran."""
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("aigc_batch_size_count"):
            return float(line.split()[-1])
    raise AssertionError("no aigc_batch_size_count in /metrics")


# --- routes ---------------------------------------------------------------------------------

def test_probes_info_page_and_docs(gan: TestClient) -> None:
    assert gan.get("/healthz").json() == {"status": "ok"}
    ready = gan.get("/readyz").json()
    assert ready["ready"] and ready["kind"] == "gan" and len(ready["checkpoint_sha256"]) == 64
    info = gan.get("/v1/info").json()
    assert info["conditional"] and info["num_classes"] == 10
    assert info["image_shape"] == [1, 16, 16] and info["max_n"] == 32
    assert info["dataset"] == "digits" and "steps" not in info
    page = gan.get("/")
    assert page.status_code == 200 and "<form" in page.text and "/v1/info" in page.text
    assert gan.get("/docs").status_code == 200
    assert "/v1/generate" in gan.get("/openapi.json").json()["paths"]


def test_png_grid_is_the_seeds_images(gan: TestClient) -> None:
    """The PNG is the grid of exactly what kinds.draw gives for that seed and label."""
    r = gan.post("/v1/generate", json={"n": 5, "label": 7, "seed": 11})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["X-Seed"] == "11" and r.headers["X-Model-Kind"] == "gan"
    grid = png_of(r.content)
    assert grid.shape[:2] == grid_shape(5, 16)
    _, model = kinds.load_model(GAN)
    images, _, _ = kinds.draw(model, 5, label=7, seed=11)
    expected = png_of(encode_png(make_grid(images, padding=1)))
    # one quantisation step: batched and unbatched convolutions may differ by ~1e-6
    assert np.abs(grid.astype(int) - expected.astype(int)).max() <= 1


def test_json_format_carries_images_and_metadata(gan: TestClient) -> None:
    r = gan.post("/v1/generate", json={"n": 3, "seed": 4, "format": "json"})
    body = r.json()
    assert r.status_code == 200
    assert body["kind"] == "gan" and body["seed"] == 4 and body["labels"] == [0, 1, 2]
    assert body["checkpoint_sha256"] == gan.get("/readyz").json()["checkpoint_sha256"]
    images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in body["images"]]
    assert len(images) == 3 and all(im.shape[:2] == (16, 16) for im in images)
    assert body["batch_samples"] >= 3


def test_no_seed_gets_a_random_one_that_reproduces(gan: TestClient) -> None:
    first = gan.post("/v1/generate", json={"n": 2, "format": "json"}).json()
    again = gan.post("/v1/generate", json={"n": 2, "seed": first["seed"], "format": "json"})
    assert again.json()["images"] == first["images"]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"n": 0}, 422, "greater than or equal"),
    ({"n": 33}, 422, "n must be in 1..32"),
    ({"n": "3"}, 422, "valid integer"),
    ({"n": 2.5}, 422, "valid integer"),
    ({"n": True}, 422, "valid integer"),
    ({"label": 10}, 422, "label must be in 0..9"),
    ({"label": -1}, 422, "label must be in 0..9"),
    ({"seed": -1}, 422, "greater than or equal"),
    ({"steps": 10}, 422, "steps do not apply to a 'gan' model"),
    ({"guidance": 1.0}, 422, "guidance does not apply"),
    ({"format": "gif"}, 422, "'png' or 'json'"),
    ({"n": 1, "colour": "red"}, 422, "Extra inputs are not permitted"),
    ([1, 2], 422, "valid dictionary"),
])
def test_bad_input_is_refused_before_any_work(gan: TestClient, body: object, status: int,
                                              says: str) -> None:
    before = forward_passes(gan)
    r = gan.post("/v1/generate", json=body)
    assert r.status_code == status
    assert says in str(r.json()["detail"])
    assert forward_passes(gan) == before


def test_broken_json_oversized_body_unknown_route_and_method(gan: TestClient) -> None:
    before = forward_passes(gan)
    r = gan.post("/v1/generate", content=b"{not json", headers={"content-type":
                                                                   "application/json"})
    assert r.status_code == 422
    big = b'{"n": 1, "pad": "' + b"x" * 2000 + b'"}'
    r = gan.post("/v1/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 1024 bytes" in r.json()["detail"]

    def chunks() -> object:                   # no Content-Length: counted as it arrives
        yield b'{"n": 1, "pad": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    r = gan.post("/v1/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert gan.get("/v2/generate").status_code == 404
    assert gan.get("/v1/generate").status_code == 405
    assert forward_passes(gan) == before
    metrics = gan.get("/metrics").text
    assert 'route="unmatched",status="404"' in metrics            # no per-URL series
    assert "/v2/generate" not in metrics


def test_metrics_count_requests_samples_and_batches(gan: TestClient) -> None:
    def value(text: str, prefix: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(prefix))

    before = gan.get("/metrics").text
    for seed in range(3):
        assert gan.post("/v1/generate", json={"n": 4, "seed": seed}).status_code == 200
    after = gan.get("/metrics").text
    ok = 'aigc_requests_total{method="POST",route="/v1/generate",status="200"}'
    assert value(after, ok) - value(before, ok) == 3
    assert value(after, "aigc_samples_generated_total") - value(
        before, "aigc_samples_generated_total") == 12
    assert "aigc_request_seconds_bucket" in after and "aigc_queue_depth" in after


def test_unconditional_model_refuses_a_label() -> None:
    with client(VAE) as c:
        r = c.post("/v1/generate", json={"n": 2, "label": 3})
        assert r.status_code == 422 and "unconditional" in r.json()["detail"]
        r = c.post("/v1/generate", json={"n": 2, "seed": 1, "format": "json"})
        assert r.status_code == 200 and r.json()["labels"] == [-1, -1]


def test_diffusion_steps_and_guidance() -> None:
    with client(DDPM, max_steps=20) as c:
        info = c.get("/v1/info").json()
        assert info["steps"] == {"min": 1, "max": 20, "default": 50}
        for steps in (0, 21):
            r = c.post("/v1/generate", json={"n": 1, "steps": steps})
            assert r.status_code == 422 and "steps must be in 1..20" in r.json()["detail"]
        assert c.post("/v1/generate", json={"guidance": 25.0}).status_code == 422
        r = c.post("/v1/generate", json={"n": 2, "label": 5, "seed": 3, "steps": 4,
                                         "guidance": 2.0, "format": "json"})
        assert r.status_code == 200
        assert r.json()["settings"] == {"steps": 4, "guidance": 2.0}
        _, model = kinds.load_model(DDPM)
        images, _, _ = kinds.draw(model, 2, label=5, seed=3, steps=4, guidance=2.0)
        served = [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))))
                  for b in r.json()["images"]]
        expected = [png_of(encode_png(make_grid(im[None], padding=0))) for im in images]
        for got, want in zip(served, expected, strict=True):
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_foreign_and_text_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a generative model"):
        Served.load(CKPT / "judge_digits.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        Served.load(bad)
    with pytest.raises(ValueError, match="max_n must be >= 1"):
        ServeConfig(str(GAN), max_n=0)


def test_not_ready_before_the_lifespan() -> None:
    app = create_app(ServeConfig(str(GAN)))
    c = TestClient(app)                       # no `with`: the lifespan has not run
    assert c.get("/healthz").status_code == 200
    assert c.get("/readyz").status_code == 503
    assert c.post("/v1/generate", json={"n": 1}).status_code == 503


# --- the batcher ----------------------------------------------------------------------------

def run_jobs(batcher: DynamicBatcher, jobs: list[tuple[int, dict[str, object]]],
             gate: threading.Event | None = None) -> list[object]:
    """Submit ``(n, options)`` jobs at once; their results (or exceptions)."""
    async def main() -> list[object]:
        await batcher.start()
        try:
            tasks = [asyncio.ensure_future(batcher.submit(torch.full((n, 2), float(i)), None,
                                                          options))
                     for i, (n, options) in enumerate(jobs)]
            await asyncio.sleep(0.05)
            if gate is not None:
                gate.set()
            return list(await asyncio.gather(*tasks, return_exceptions=True))
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_jobs_within_the_wait_share_a_forward_pass_and_get_their_own_rows() -> None:
    calls: list[int] = []

    def run(noise: torch.Tensor, labels: object, options: object) -> torch.Tensor:
        calls.append(len(noise))
        return noise * 10
    results = run_jobs(DynamicBatcher(run, max_batch=64, max_wait_ms=50),
                       [(2, {}), (3, {}), (1, {})])
    assert calls == [6]
    for i, (images, info) in enumerate(results):                 # type: ignore[misc]
        assert torch.equal(images, torch.full_like(images, 10.0 * i))
        assert info.requests == 3 and info.samples == 6


def test_batches_respect_max_batch_and_never_mix_settings() -> None:
    calls: list[tuple[int, object]] = []

    def run(noise: torch.Tensor, labels: object, options: dict[str, object]) -> torch.Tensor:
        calls.append((len(noise), options.get("steps")))
        return noise
    run_jobs(DynamicBatcher(run, max_batch=4, max_wait_ms=50),
             [(2, {"steps": 5}), (2, {"steps": 9}), (2, {"steps": 5}), (3, {"steps": 5})])
    assert all(n <= 4 for n, _ in calls)
    assert sorted(calls, key=str) == sorted([(4, 5), (2, 9), (3, 5)], key=str)


def test_max_batch_one_turns_batching_off() -> None:
    calls: list[int] = []
    run_jobs(DynamicBatcher(lambda x, y, o: calls.append(len(x)) or x, max_batch=1,
                            max_wait_ms=50), [(1, {})] * 4)
    assert calls == [1, 1, 1, 1]


def test_a_full_queue_refuses_and_a_model_error_reaches_every_job() -> None:
    gate = threading.Event()

    def blocked(noise: torch.Tensor, labels: object, options: object) -> torch.Tensor:
        gate.wait(5)
        return noise

    async def main() -> list[object]:
        batcher = DynamicBatcher(blocked, max_batch=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(torch.zeros(1, 2), None))
        await asyncio.sleep(0.05)                        # the first is in its forward pass
        rest = [asyncio.ensure_future(batcher.submit(torch.zeros(1, 2), None))
                for _ in range(4)]
        await asyncio.sleep(0.05)
        assert batcher.depth == 2
        gate.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        await batcher.stop()
        return list(results)
    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, QueueFull)]
    assert len(refused) == 2                  # one running, two waiting, two refused
    assert "the queue holds 2" in str(refused[0])

    def broken(noise: torch.Tensor, labels: object, options: object) -> torch.Tensor:
        raise RuntimeError("out of memory")
    results = run_jobs(DynamicBatcher(broken, max_batch=8, max_wait_ms=20), [(1, {})] * 3)
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)


def test_bad_batcher_settings() -> None:
    for bad in ({"max_batch": 0}, {"max_wait_ms": -1}, {"max_queue": 0}):
        with pytest.raises(ValueError, match="must be >= "):
            DynamicBatcher(lambda x, y, o: x, **bad)               # type: ignore[arg-type]


# --- a text model (chapter 06's gpt) --------------------------------------------------------

@pytest.fixture(scope="module")
def gpt_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aigc_course.cli import main

    folder = tmp_path_factory.mktemp("gpt")
    corpus = folder / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog. A lazy dog sleeps.\n\n" * 40)
    out = folder / "g.pt"
    assert main(["train", "gpt", "--text-file", str(corpus), "--profile", "smoke",
                 "--steps", "20", "--out", str(out)]) == 0
    return out


def test_a_text_model_completes_prompts_and_refuses_the_image_route(gpt_checkpoint: Path
                                                                     ) -> None:
    with client(gpt_checkpoint, max_n=4, max_new_tokens=50) as c:
        info = c.get("/v1/info").json()
        assert info["modality"] == "text" and info["route"] == "/v1/complete"
        body = {"prompt": "The ", "n": 2, "max_new_tokens": 20, "seed": 5,
                "temperature": 0.8}
        first = c.post("/v1/complete", json=body).json()
        assert first["n"] == 2 and len(first["texts"]) == 2 and first["seed"] == 5
        assert all(t.startswith("The ") for t in first["texts"])
        assert c.post("/v1/complete", json=body).json()["texts"] == first["texts"]   # seeded
        _, model = kinds.load_model(gpt_checkpoint)
        ids = model.sample(2, generator=torch.Generator().manual_seed(5), prompt="The ",
                           max_new_tokens=20, temperature=0.8, top_k=None, top_p=None)
        assert first["texts"] == [model.tokenizer.decode(row.tolist()) for row in ids]
        r = c.post("/v1/generate", json={"n": 1})
        assert r.status_code == 404 and "POST /v1/complete" in r.json()["detail"]
        before = forward_passes(c)
        for bad, says in (({"max_new_tokens": 51}, "max_new_tokens must be in 1..50"),
                          ({"n": 5}, "n must be in 1..4"), ({"prompt": ""}, "at least 1"),
                          ({"prompt": "\u2603"}, "vocabulary"), ({"temperature": 0}, "greater"),
                          ({"top_p": 1.5}, "less than or equal"), ({"prompt": 3}, "string")):
            r = c.post("/v1/complete", json={"max_new_tokens": 10, **bad})
            assert r.status_code == 422 and says.lower() in str(r.json()["detail"]).lower(), bad
        assert forward_passes(c) == before


def test_an_image_model_refuses_the_text_route(gan: TestClient) -> None:
    r = gan.post("/v1/complete", json={"prompt": "The "})
    assert r.status_code == 404 and "POST /v1/generate" in r.json()["detail"]
