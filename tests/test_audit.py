"""Audits of image generators: class balance statistics checked against scipy, and the
shipped models' class bias and memorisation pinned with measured margins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy import stats

from aigc_course import kinds
from aigc_course.data import load_images
from aigc_course.metrics import label_accuracy, memorising_model
from aigc_course.metrics.judge import judge_for
from aigc_course.reports.audit import (
    audit_generator,
    audit_samples,
    audit_table,
    class_balance,
    plot_class_shares,
)


def test_tv_ratios_and_chi_square_by_hand() -> None:
    # p_hat = (3/4, 1/4), q = (1/2, 1/2): TV = (|0.75-0.5| + |0.25-0.5|) / 2 = 0.25;
    # E = (2, 2): chi2 = (3-2)^2/2 + (1-2)^2/2 = 1, one degree of freedom.
    out = class_balance([0, 0, 0, 1], [0, 1], 2)
    assert out["tv"] == pytest.approx(0.25)
    assert out["max_ratio"] == pytest.approx(1.5) and out["min_ratio"] == pytest.approx(0.5)
    assert out["chi2"] == pytest.approx(1.0) and out["dof"] == 1
    assert out["p_value"] == pytest.approx(math.erfc(math.sqrt(0.5)))   # P(Z^2 >= 1)
    same = class_balance([0, 1, 2, 2], [2, 1, 0, 2], 3)
    assert same["tv"] == 0.0 and same["chi2"] == 0.0 and same["p_value"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chi_square_matches_scipy(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    reference = torch.multinomial(torch.tensor([3.0, 1, 2, 2, 5, 1, 1, 4, 2, 3]), 900,
                                  replacement=True, generator=g)
    pred = torch.randint(10, (400,), generator=g)
    out = class_balance(pred, reference, 10)
    ref = stats.chisquare(out["counts"], out["expected"])
    assert out["chi2"] == pytest.approx(ref.statistic, rel=1e-12)
    assert out["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    q = np.bincount(reference.numpy(), minlength=10) / 900
    p = np.bincount(pred.numpy(), minlength=10) / 400
    assert out["tv"] == pytest.approx(0.5 * np.abs(p - q).sum())


@pytest.mark.slow
def test_chi_square_rejects_at_its_level_under_the_null() -> None:
    # Monte Carlo: samples drawn from the reference shares are rejected at p < 0.05 about
    # 5% of the time (1,000 draws: standard error 0.007); wrong degrees of freedom would
    # move it far (K = 10 taken as 9 dof; with 10 dof the rate is about 3%).
    rng = np.random.default_rng(0)
    q = np.array([0.05, 0.1, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.15])
    reference = np.repeat(np.arange(10), (q * 1000).astype(int))
    rejected = [class_balance(rng.choice(10, 300, p=q), reference, 10)["p_value"] < 0.05
                for _ in range(1000)]
    assert 0.03 < np.mean(rejected) < 0.07


def test_class_balance_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="never has"):
        class_balance([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match=r"labels_pred must be in 0..2, got 0..3"):
        class_balance([0, 3], [0, 1, 2], 3)
    with pytest.raises(ValueError, match="at least 2"):
        class_balance([0], [0], 1)
    with pytest.raises(ValueError, match="empty"):
        class_balance([], [0, 1], 2)


def test_unconditional_vae_is_class_biased_and_does_not_copy() -> None:
    # Measured (n = 200, seeds 0 / 1 / 2): TV 0.169 / 0.123 / 0.116, p 2e-4 / 0.015 / 1e-3,
    # copy fraction 0.005 / 0 / 0.005 (test baseline 0.011). The VAE under-draws 2, 5, 7.
    model = kinds.get("vae").load()
    result = audit_generator(model, "VAE", dataset="digits", n=200, seed=0, kind="vae")
    assert not result.conditional and result.label_accuracy is None
    assert sum(result.shares.values()) == pytest.approx(1.0)
    assert "train split" in result.reference
    assert result.tv > 0.06 and result.p_value < 0.05           # bar: half the smallest TV
    assert result.min_ratio < 1 < result.max_ratio
    assert result.copy_fraction < 0.03 and 0.7 < result.median_ratio < 1.6
    assert result.worst_classes[0] == min(result.shares, key=lambda k: result.shares[k])


def test_conditional_gan_is_audited_for_label_accuracy() -> None:
    # Measured (n = 200, seeds 0 / 1 / 2): TV 0.015 / 0.015 / 0.025, label accuracy
    # 0.980 / 0.965 / 0.975, copy fraction 0. Bars keep about 2x margin.
    model = kinds.get("gan").load()
    images, labels, _ = kinds.draw(model, 200, seed=0)
    result = audit_samples(images, labels, "GAN", "gan", dataset="digits")
    assert result.conditional and "requested" in result.reference
    assert result.reference_shares == {k: 0.1 for k in range(10)}
    assert result.label_accuracy == pytest.approx(
        label_accuracy(images, labels, judge_for("digits")))
    assert result.label_accuracy_per_class is not None
    assert result.label_accuracy > 0.93 and result.tv < 0.05 and result.copy_fraction < 0.03
    worst = result.worst_classes[0]
    assert result.label_accuracy_per_class[worst] == min(result.label_accuracy_per_class
                                                         .values())


def test_audit_flags_a_copier_and_a_dropped_class() -> None:
    train, labels = load_images("digits", "train", image_size=16)
    copier = audit_samples(memorising_model(train, 200), None, "copier", "copy",
                           dataset="digits")
    assert copier.copy_fraction > 0.9 and copier.median_ratio < 0.1   # measured 1.0 / 0.0
    zeros = train[labels != 0][:200]                         # a generator that drops 0s
    dropped = audit_samples(zeros, None, "no zeros", "data", dataset="digits")
    # class 0 alone adds E_0 = n q_0 (about 19.9) to chi2: p <= chi2_9.sf(19.9) = 0.019
    assert dropped.shares[0] == 0.0 and dropped.min_ratio == 0.0
    assert dropped.chi2 >= 200 * dropped.reference_shares[0] and dropped.p_value < 0.02
    assert dropped.worst_classes[0] == 0
    table = audit_table([copier, dropped])
    assert list(table["model"]) == ["copier", "no zeros"]
    assert table["label_accuracy"].isna().all()
    fig = plot_class_shares([copier, dropped])
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 20
    with pytest.raises(ValueError, match="at least one"):
        plot_class_shares([])
    with pytest.raises(ValueError, match="at least 50 samples"):
        audit_samples(zeros[:10], None, "few", "data", dataset="digits")
