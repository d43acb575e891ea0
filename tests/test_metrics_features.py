"""Feature extractors: shapes, determinism, torchmetrics compatibility, offline fallback.

Nothing here downloads: the Inception path is tested with the network made unreachable
(``socket.create_connection`` raises) and an empty torch hub folder, and must fail in
well under 10 s with a message that names the offline alternatives.
"""

from __future__ import annotations

import socket
import time

import pytest
import torch

from aigc_course.data.registry import load_images
from aigc_course.metrics.features import (
    FeatureExtractorUnavailable,
    JudgeExtractor,
    PixelExtractor,
    RandomConvExtractor,
    extract,
    get_extractor,
    inception_extractor,
)


def test_shapes_grey_and_rgb() -> None:
    torch.set_num_threads(1)
    grey = torch.rand(5, 1, 16, 16) * 2 - 1
    rgb, _ = load_images("shapes", "test", max_items=5)                 # (5, 3, 32, 32)
    assert extract(grey, JudgeExtractor()).shape == (5, 64)
    assert extract(rgb, JudgeExtractor()).shape == (5, 64)              # RGB -> grey mean
    assert extract(grey, JudgeExtractor(), logits=True).shape == (5, 10)
    assert extract(rgb, RandomConvExtractor()).shape == (5, 256)
    assert extract(grey, RandomConvExtractor()).shape == (5, 256)       # grey -> RGB repeat
    assert extract(grey, PixelExtractor()).shape == (5, 64)
    assert extract(rgb, PixelExtractor(channels=3)).shape == (5, 192)


def test_random_features_are_fixed_by_the_seed() -> None:
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    a, b = RandomConvExtractor(seed=0)(x), RandomConvExtractor(seed=0)(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, RandomConvExtractor(seed=1)(x))


def test_extractors_stay_in_eval_mode() -> None:
    judge = JudgeExtractor()
    torch.nn.Sequential(judge).train()                  # as a torchmetrics metric would
    assert not judge.training and not judge.judge.training   # no dropout in features


def test_no_logits_and_bad_names() -> None:
    with pytest.raises(ValueError, match="has no class logits"):
        extract(torch.zeros(2, 1, 8, 8), RandomConvExtractor(), logits=True)
    with pytest.raises(ValueError, match="valid: judge, random, pixels, inception, auto"):
        get_extractor("vgg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a float tensor of images"):
        extract(torch.zeros(2, 8, 8), PixelExtractor())


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache."""
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))


def test_inception_fails_fast_offline(offline) -> None:
    pytest.importorskip("torchmetrics")
    start = time.perf_counter()
    with pytest.raises(FeatureExtractorUnavailable,
                       match="get_extractor\\(\"judge\", dataset=.*random"):
        inception_extractor()
    assert time.perf_counter() - start < 10.0


def test_gpu_profile_falls_back_offline(offline) -> None:
    pytest.importorskip("torchmetrics")
    with pytest.warns(UserWarning, match="falling back to 'judge'"):
        extractor = get_extractor("auto", profile="gpu")
    assert isinstance(extractor, JudgeExtractor)
    with pytest.warns(UserWarning, match="falling back to 'random'"):
        assert isinstance(get_extractor("inception", channels=3), RandomConvExtractor)
    assert isinstance(get_extractor("auto", profile="cpu"), JudgeExtractor)   # not tried


def test_random_features_in_torchmetrics_fid() -> None:
    tm = pytest.importorskip("torchmetrics.image")
    from aigc_course.metrics.frechet import frechet_distance_from_features

    real, _ = load_images("shapes", "test", max_items=300)
    fake, _ = load_images("shapes", "val", max_items=300)
    extractor = RandomConvExtractor()
    metric = tm.FrechetInceptionDistance(feature=extractor)            # reads num_features
    metric.update(real, real=True)
    metric.update(fake, real=False)
    ours = frechet_distance_from_features(extract(real, extractor), extract(fake, extractor))
    # float64 both sides, different square roots (see test_metrics_parity): measured 4.6e-9
    assert ours == pytest.approx(float(metric.compute()), rel=1e-6)


def test_inception_wrapper_shapes_with_random_weights(offline, monkeypatch) -> None:
    """The wrapper's plumbing (grey -> RGB uint8, two outputs), weights left random."""
    pytest.importorskip("torchmetrics")
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    from aigc_course.metrics.features import InceptionExtractor

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict",
                        lambda self, state_dict, *a, **k: None)
    extractor = InceptionExtractor()
    images = torch.rand(2, 1, 8, 8) * 2 - 1
    assert extract(images, extractor).shape == (2, 2048)
    assert extract(images, extractor, logits=True).shape == (2, 1008)
