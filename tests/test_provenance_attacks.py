"""The perturbations a watermark must survive, the threshold at a false-positive rate,
the ROC AUC, and the key files of chapter 11."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from aigc_course.provenance import attacks
from aigc_course.provenance.keys import load_key, new_seed, save_key


def _images(n: int = 6, size: int = 16, channels: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", sorted(attacks.standard_attacks()))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_attack_keeps_the_shape_and_the_range(name: str, channels: int) -> None:
    x = _images(channels=channels)
    y = attacks.standard_attacks()[name](x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= -1 and float(y.max()) <= 1
    if name == "none":
        assert torch.equal(x, y)
    else:
        assert not torch.equal(x, y)


def test_jpeg_is_pillows_codec_and_stronger_at_lower_quality() -> None:
    x = _images(1)
    pixels = ((x[0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="JPEG", quality=70)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 127.5 - 1
    assert torch.allclose(attacks.jpeg(x, 70)[0, 0], torch.from_numpy(expected))
    errors = [float((attacks.jpeg(x, q) - x).abs().mean()) for q in (90, 70, 50)]
    assert errors[0] < errors[1] < errors[2]


def test_noise_has_the_stated_sigma_and_resize_and_crop_keep_a_constant_image() -> None:
    flat = torch.zeros(64, 1, 16, 16)
    noisy = attacks.gaussian_noise(flat, 0.1, seed=3)
    assert abs(float(noisy.std()) - 0.1) < 0.005               # 16,384 draws: se 0.0006
    assert torch.equal(noisy, attacks.gaussian_noise(flat, 0.1, seed=3))
    constant = torch.full((2, 1, 16, 16), 0.3)
    assert torch.allclose(attacks.resize(constant, 0.5), constant)
    assert torch.allclose(attacks.crop(constant, 0.75), constant)


def test_crop_zooms_into_the_centre() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 6:10, 6:10] = 1                                      # a 4x4 centre square
    zoomed = attacks.crop(x, 0.5)                               # the central 8x8, doubled
    assert float(zoomed[..., 6:10, 6:10].mean()) == pytest.approx(1.0)
    assert float((zoomed > 0.5).float().sum()) > 4 * float((x > 0.5).float().sum()) * 0.8


@pytest.mark.parametrize("call", [lambda: attacks.jpeg(_images(), 0),
                                  lambda: attacks.gaussian_noise(_images(), -1.0),
                                  lambda: attacks.resize(_images(), 0.0),
                                  lambda: attacks.crop(_images(), 1.5),
                                  lambda: attacks.jpeg(torch.zeros(16, 16), 50)])
def test_bad_arguments_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_threshold_leaves_at_most_the_rate_above_it() -> None:
    scores = torch.randn(10_000, generator=torch.Generator().manual_seed(1))
    held_out = torch.randn(200_000, generator=torch.Generator().manual_seed(2))
    op = attacks.operating_point(scores, 1e-3, held_out)
    assert (op.calibration, op.held_out) == (10_000, 200_000)
    assert op.guarantee == 10 / 10_001 <= 1e-3
    assert int((scores > op.threshold).sum()) == 9            # k - 1 = 9 of them above it
    assert op.threshold == pytest.approx(3.09, abs=0.15)      # the normal's 0.999 quantile
    # on new scores the rate is the promised k / (n + 1): 200,000 of them, sd 7e-5
    assert op.false_positive_rate == pytest.approx(op.guarantee, abs=3e-4)
    assert attacks.operating_point(scores, 1e-3).false_positive_rate is None
    assert attacks.threshold_at_fpr(scores[:999], 1e-3) == float(scores[:999].max())
    with pytest.raises(ValueError, match="at least 999"):
        attacks.threshold_at_fpr(scores[:998], 1e-3)
    assert attacks.detection_rate(torch.tensor([0.0, 1.0, 2.0, 3.0]), 1.5) == 0.5


def test_the_conformal_rate_holds_over_many_calibrations() -> None:
    """$P(S > s_{(k)}) = k/(n+1)$ averaged over calibration draws, not only for one."""
    g = torch.Generator().manual_seed(3)
    calibrations = torch.randn(4000, 99, generator=g)          # n = 99: k = 1 at 1e-2
    new = torch.randn(4000, generator=g)
    above = [float(new[i] > attacks.threshold_at_fpr(calibrations[i], 1e-2))
             for i in range(4000)]
    assert sum(above) / 4000 == pytest.approx(1 / 100, abs=0.005)   # sd 0.0016


def test_roc_auc_matches_sklearn_with_ties() -> None:
    g = torch.Generator().manual_seed(2)
    negative = torch.randint(0, 5, (300,), generator=g).float()
    positive = torch.randint(1, 7, (200,), generator=g).float()
    expected = roc_auc_score([0] * 300 + [1] * 200, torch.cat([negative, positive]).numpy())
    assert attacks.roc_auc(negative, positive) == pytest.approx(expected, abs=1e-12)
    assert attacks.roc_auc(torch.zeros(3), torch.ones(2)) == 1.0
    with pytest.raises(ValueError):
        attacks.roc_auc(torch.zeros(0), torch.ones(2))


def test_key_files_round_trip_and_refuse_what_is_not_theirs(tmp_path: Path) -> None:
    path = save_key(tmp_path / "k.pt", "tree_ring", {"seed": new_seed(), "radius": 3})
    assert load_key(path, "tree_ring")["radius"] == 3
    with pytest.raises(ValueError, match="holds a 'tree_ring' key"):
        load_key(path, "spread_spectrum")
    (tmp_path / "bad.pt").write_bytes(b"not a key")
    with pytest.raises(ValueError, match="not a watermark key file"):
        load_key(tmp_path / "bad.pt", "tree_ring")
    torch.save({"format": "aigc_course.checkpoint/v1", "kind": "gan"}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="expected 'aigc_course.watermark_key/v1'"):
        load_key(tmp_path / "ckpt.pt", "tree_ring")
    with pytest.raises(FileNotFoundError):
        load_key(tmp_path / "missing.pt", "tree_ring")
    with pytest.raises(ValueError, match="valid kinds"):
        save_key(tmp_path / "x.pt", "rot13", {"seed": 1})
    with pytest.raises(ValueError, match="integer 'seed'"):
        save_key(tmp_path / "x.pt", "tree_ring", {"radius": 3})


def test_attainable_rate_is_the_target_or_what_n_scores_can_promise() -> None:
    assert attacks.attainable_rate(9_999) == 5e-4
    assert attacks.attainable_rate(199) == 1 / 200
    with pytest.raises(ValueError):
        attacks.attainable_rate(0)


def test_clean_images_mix_real_and_generated_and_two_parities_share_no_real_image() -> None:
    class Constant:                                   # a stand-in generator: value v, (1, 4, 4)
        conditional, num_classes = False, 0

        def __init__(self, v: float) -> None:
            self.v = v

        def sample(self, n: int, *, y=None, generator=None) -> torch.Tensor:
            return torch.full((n, 1, 4, 4), self.v)

    real = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 4, 4)
    a = attacks.clean_images(real, [Constant(-1.0), Constant(-2.0)], 9, seed=0)
    b = attacks.clean_images(real, [Constant(-1.0), Constant(-2.0)], 9, seed=1)
    assert a.shape == (9, 1, 4, 4)
    first = a[:, 0, 0, 0].tolist()
    assert first[:4] == [0, 1, 2, 3] and sorted(first[4:]) == [-2, -2, -1, -1, -1]
    assert set(b[:4, 0, 0, 0].tolist()) == {5, 6, 7, 8}          # the other half of real
    with pytest.raises(ValueError):
        attacks.clean_images(real, [], 5, seed=0)
