"""Parity of FID, KID, IS and precision/recall with torchmetrics and torch-fidelity.

The references get our feature extractors as custom modules (torchmetrics'
``feature=nn.Module``; a torch-fidelity feature extractor registered under a new
name), so nothing is downloaded. Real digits (test split) against the validation split
and against uniform noise, in the judge's 64-d feature space. Tolerances:

* FID: relative 1e-5 against both. All see the same float32 features and compute in
  float64, but the matrix square root differs (ours: symmetric ``eigh`` of
  $\\Sigma_1^{1/2}\\Sigma_2\\Sigma_1^{1/2}$, negative round-off clipped; theirs:
  ``eigvals`` of the non-symmetric $\\Sigma_1\\Sigma_2$). The judge has 10 dead ReLU
  features, so both covariances are singular: eigenvalues that are round-off (~1e-13)
  enter as $\\sqrt{\\lambda}$ ~ 3e-7 each. Measured: 1.1e-6 relative (3e-6 absolute)
  on a real-vs-real FID of 2.7; torchmetrics also returns float32.
* KID, IS, precision/recall against torch-fidelity's feature-level functions: with the
  same seed we draw the same subsets / shuffles, so agreement is to float64 round-off
  (1e-9 relative; P/R: the same counts, theirs a float32 mean).
* KID against torchmetrics: its subsets come from torch's global RNG, so we compare one
  subset of the whole set (``subset_size = N``, where every draw is the whole set);
  its kernel runs in the features' dtype, float32, on features of size ~100, cubed:
  relative 1e-4 of the noise KID's scale.
* IS against torchmetrics: ``splits=1`` (its shuffle uses torch's global RNG), float32
  softmax: relative 1e-5.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from aigc_course.data.registry import load_images
from aigc_course.metrics._inception_score import inception_score_from_logits
from aigc_course.metrics._precision_recall import precision_recall_from_features
from aigc_course.metrics.features import JudgeExtractor, extract
from aigc_course.metrics.frechet import frechet_distance_from_features
from aigc_course.metrics.kid import kid_from_features

torchmetrics_image = pytest.importorskip("torchmetrics.image")
torch_fidelity = pytest.importorskip("torch_fidelity")


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    real, _ = load_images("digits", "test")                              # (269, 1, 8, 8)
    val, _ = load_images("digits", "val")                                # (270, 1, 8, 8)
    noise = torch.rand(269, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return {"real": real, "val": val[:269], "noise": noise}


@pytest.fixture(scope="module")
def judge() -> JudgeExtractor:
    return JudgeExtractor()


class Logits(nn.Module):
    """The judge's logits as a module's output (what torchmetrics' IS calls)."""

    def __init__(self, extractor: JudgeExtractor) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor.logits(images)


@pytest.mark.parametrize("fake", ["val", "noise"])
def test_fid_matches_torchmetrics_and_torch_fidelity(data, judge, fake) -> None:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    real_f, fake_f = extract(data["real"], judge), extract(data[fake], judge)
    ours = frechet_distance_from_features(real_f, fake_f)
    metric = torchmetrics_image.FrechetInceptionDistance(feature=judge)
    metric.update(data["real"], real=True)
    metric.update(data[fake], real=False)
    theirs_tm = float(metric.compute())
    theirs_tf = fid_statistics_to_metric(fid_features_to_statistics(real_f.double()),
                                         fid_features_to_statistics(fake_f.double()),
                                         verbose=False)["frechet_inception_distance"]
    assert ours == pytest.approx(theirs_tm, rel=1e-5)
    assert ours == pytest.approx(theirs_tf, rel=1e-5)


@pytest.mark.parametrize("fake", ["val", "noise"])
def test_kid_matches_torch_fidelity_with_subsets(data, judge, fake) -> None:
    from torch_fidelity.metric_kid import kid_features_to_metric

    real_f = extract(data["real"], judge).double()
    fake_f = extract(data[fake], judge).double()
    ours = kid_from_features(real_f, fake_f, subsets=20, subset_size=100, seed=3)
    theirs = kid_features_to_metric(fake_f, real_f, kid_subsets=20, kid_subset_size=100,
                                    rng_seed=3, verbose=False, kid_kernel="poly",
                                    kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                    kid_kernel_poly_coef0=1)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-9)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-9)


# torchmetrics' own warning about its feature buffer (harmless at this size)
@pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")
def test_kid_matches_torchmetrics_on_the_whole_set(data, judge) -> None:
    n = len(data["real"])
    scale = None
    for fake in ("noise", "val"):          # noise first: its KID sets the absolute tolerance
        ours = kid_from_features(extract(data["real"], judge), extract(data[fake], judge),
                                 subsets=1, subset_size=n)[0]
        metric = torchmetrics_image.KernelInceptionDistance(feature=judge, subsets=1,
                                                             subset_size=n)
        metric.update(data["real"], real=True)
        metric.update(data[fake], real=False)
        theirs = float(metric.compute()[0])
        scale = scale or abs(ours)
        assert ours == pytest.approx(theirs, abs=1e-4 * scale)


# torchmetrics warns about its feature buffer, and about std() of one split (splits=1)
@pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")
@pytest.mark.filterwarnings("ignore:std\\(\\)..degrees of freedom:UserWarning")
def test_inception_score_matches_both(data, judge) -> None:
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = extract(data["real"], judge, logits=True)                   # (269, 10)
    ours = inception_score_from_logits(logits, splits=10, seed=2020)
    theirs = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9)
    metric = torchmetrics_image.InceptionScore(feature=Logits(judge), splits=1)
    metric.update(data["real"])
    assert inception_score_from_logits(logits, splits=1)[0] == pytest.approx(
        float(metric.compute()[0]), rel=1e-5)


@pytest.mark.parametrize("fake", ["val", "noise"])
def test_precision_recall_matches_torch_fidelity(data, judge, fake) -> None:
    from torch_fidelity.metric_prc import prc_features_to_metric

    real_f = extract(data["real"], judge).double()
    fake_f = extract(data[fake], judge).double()
    ours = precision_recall_from_features(real_f, fake_f, k=3)
    theirs = prc_features_to_metric(fake_f, real_f, prc_neighborhood=3, prc_batch_size=10000,
                                    save_cpu_ram=False, verbose=False)
    n = len(real_f)                                  # equal counts; theirs is a float32 mean
    assert round(ours["precision"] * n) == round(theirs["precision"] * n)
    assert round(ours["recall"] * n) == round(theirs["recall"] * n)


class FidelityJudge(torch_fidelity.FeatureExtractorBase):
    """The judge registered as a torch-fidelity feature extractor (no download)."""

    def __init__(self, name: str, features_list: list[str], **kwargs) -> None:
        super().__init__(name, features_list)
        self.extractor = JudgeExtractor()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits"}.get(metric, "features")

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 8, 8)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = {"features": self.extractor(images), "logits": self.extractor.logits(images)}
        return tuple(out[name].double() for name in self.features_list)


class Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def test_torch_fidelity_end_to_end_with_a_registered_extractor(data, judge) -> None:
    name = "aigc-digits-judge"
    if name not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(name, FidelityJudge)
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(data["val"]), input2=Images(data["real"]), cuda=False, fid=True, kid=True,
        prc=True, feature_extractor=name, kid_subsets=10, kid_subset_size=100, rng_seed=1,
        save_cpu_ram=True, verbose=False, cache=False)
    real_f, fake_f = extract(data["real"], judge), extract(data["val"], judge)
    assert frechet_distance_from_features(real_f, fake_f) == pytest.approx(
        theirs["frechet_inception_distance"], rel=1e-5)  # see FID above
    kid_mean = kid_from_features(real_f, fake_f, subsets=10, subset_size=100, seed=1)[0]
    assert kid_mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    pr = precision_recall_from_features(real_f, fake_f)
    assert pr["precision"] == pytest.approx(theirs["precision"], abs=1e-6)   # float32 mean
    assert pr["recall"] == pytest.approx(theirs["recall"], abs=1e-6)
    assert not math.isnan(theirs["frechet_inception_distance"])
