"""The digits judge: the shipped checkpoint, its loader's errors, a short retrain, the metrics.

Quality bars keep about 2x margin over values measured with the shipped judge
(seed 0, 40 epochs); the measured value is written beside each bar. Re-derive them
whenever the checkpoint is regenerated (`aigc-course judge`).
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aigc_course.checkpoint import FORMAT
from aigc_course.data.registry import load_images
from aigc_course.metrics import (
    class_coverage,
    judge_features,
    judge_fid,
    judge_report,
    label_accuracy,
    recognisability,
)
from aigc_course.metrics.judge import (
    DEFAULT_PATH,
    KIND,
    accuracy,
    default_judge,
    load_judge,
    retrain,
    save_judge,
    train_judge,
)
from aigc_course.models.classifier import ClassifierConfig, DigitClassifier
from aigc_course.utils import count_params


@pytest.fixture(scope="module")
def test_split():
    return load_images("digits", "test")


@pytest.fixture(scope="module")
def noise():
    return torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def blur(images):
    """3x3 box blur with background padding."""
    return F.avg_pool2d(F.pad(images, (1, 1, 1, 1), value=-1.0), 3, stride=1)


# --- the model ------------------------------------------------------------------------

def test_classifier_shapes_and_size():
    model = DigitClassifier().eval()
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, 64)
    assert 100_000 <= count_params(model) <= 150_000


def test_other_sizes_are_area_downsampled():
    model = DigitClassifier().eval()
    x16 = torch.rand(4, 1, 16, 16) * 2 - 1
    x8 = F.avg_pool2d(x16, 2)                                   # area = 2x2 means here
    torch.testing.assert_close(model(x16), model(x8))
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(4, 8, 8), r"\(N, 1, H, W\)"),
    (torch.zeros(4, 3, 8, 8), r"\(N, 1, H, W\)"),
    (torch.zeros(4, 1, 4, 4), "at least 8x8"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), "floating-point"),
])
def test_wrong_inputs_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        DigitClassifier()(bad)
    with pytest.raises(ValueError, match=match):
        judge_fid(bad)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="dropout"):
        ClassifierConfig(dropout=1.5)


# --- the shipped checkpoint --------------------------------------------------------------

def test_shipped_checkpoint_is_plain_and_loads_weights_only():
    checkpoint = torch.load(DEFAULT_PATH, map_location="cpu", weights_only=True)
    assert checkpoint["format"] == FORMAT and checkpoint["kind"] == KIND == "judge"
    assert {"test_accuracy", "seed", "epochs", "torch_version"} <= set(checkpoint["metadata"])
    judge = load_judge()
    assert isinstance(judge, DigitClassifier) and not judge.training
    assert default_judge() is default_judge()                   # cached, loaded once


def test_shipped_judge_accuracy(test_split):
    images, labels = test_split
    acc = accuracy(load_judge(), images, labels)
    assert acc >= 0.98                                          # measured 0.996 (268/269)
    recorded = torch.load(DEFAULT_PATH, weights_only=True)["metadata"]["test_accuracy"]
    assert acc == pytest.approx(recorded)


def test_missing_file_says_how_to_regenerate(tmp_path):
    with pytest.raises(FileNotFoundError, match="aigc-course judge"):
        load_judge(tmp_path / "nothing.pt")


def test_corrupt_files_raise_helpful_value_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(DEFAULT_PATH.read_bytes()[:5000])
    for path in (garbage, truncated):
        with pytest.raises(ValueError, match="corrupt.*aigc-course judge"):
            load_judge(path)


class Foreign:
    """A class a weights-only load must refuse to instantiate."""


def test_foreign_checkpoints_raise_helpful_value_error(tmp_path):
    state_dict = tmp_path / "linear.pt"
    torch.save(nn.Linear(3, 4).state_dict(), state_dict)
    with pytest.raises(ValueError, match="not an aigc_course model checkpoint.*aigc-course judge"):
        load_judge(state_dict)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match="not an aigc_course model checkpoint"):
        load_judge(tensor)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": FORMAT, "payload": Foreign()}, unsafe)
    with pytest.raises(ValueError, match="aigc-course judge"):
        load_judge(unsafe)
    raw_pickle = tmp_path / "raw.pkl"
    raw_pickle.write_bytes(pickle.dumps({"state_dict": {}}, protocol=2))
    with pytest.raises(ValueError, match="aigc-course judge"):
        load_judge(raw_pickle)
    wrong_weights = tmp_path / "wrong.pt"
    torch.save({"format": FORMAT, "kind": "judge", "config": {}, "metadata": {},
                "state_dict": nn.Linear(3, 4).state_dict()}, wrong_weights)
    with pytest.raises(ValueError, match="do not fit an ImageClassifier"):
        load_judge(wrong_weights)
    from aigc_course.kinds import get

    with pytest.raises(ValueError, match="holds a 'vae' model, not 'judge'.*aigc-course judge"):
        load_judge(get("vae").shipped)


# --- a short retrain ---------------------------------------------------------------------

def test_short_retrain_saves_a_loadable_checkpoint(tmp_path):
    model, metrics = train_judge(epochs=2, seed=0, max_train=256, progress=False)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["epochs"] == 2
    path = save_judge(model, tmp_path / "judge.pt", {"test_accuracy": metrics["test_accuracy"]})
    loaded = load_judge(path)
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(loaded(x), model(x))
    assert torch.load(path, weights_only=True)["metadata"]["torch_version"] == torch.__version__


def test_retrain_writes_where_asked(tmp_path):
    out = tmp_path / "sub" / "judge.pt"
    metrics = retrain("digits", out=out, epochs=2, seed=1, progress=False)
    assert metrics["path"] == str(out) and out.is_file()
    assert metrics["test_accuracy"] > 0.4                       # measured 0.78 after 2 epochs
    assert isinstance(load_judge(out), DigitClassifier)


# --- metrics on real digits and on non-digits --------------------------------------------

def test_judge_fid_real_is_small_and_noise_or_blur_is_huge(test_split, noise):
    images, _ = test_split
    val, _ = load_images("digits", "val")
    assert judge_fid(images) < 4.0                              # measured 1.65 (269 samples)
    assert judge_fid(val) < 5.0                                 # measured 2.27 (270 samples)
    assert judge_fid(noise) > 450.0                             # measured 942 (1,000 samples)
    assert judge_fid(blur(images)) > 200.0                      # measured 400


def test_judge_fid_compares_like_with_like_at_other_sizes():
    images16, _ = load_images("digits", "test", image_size=16)
    assert judge_fid(images16) < 3.0                            # measured 1.23
    assert judge_fid(blur(images16)) > 20.0                     # measured 43


def test_judge_fid_against_a_tensor_reference(test_split):
    images, _ = test_split
    assert judge_fid(images, reference=images) == pytest.approx(0.0, abs=1e-6)


def test_recognisability_coverage_and_label_accuracy(test_split, noise):
    images, labels = test_split
    assert recognisability(images) > 0.9                        # measured 0.985
    assert class_coverage(images) > 0.98                        # measured 1.000
    assert label_accuracy(images, labels) > 0.97               # measured 0.996
    assert recognisability(noise) < 0.1                         # measured 0.000
    assert recognisability(-torch.ones(10, 1, 8, 8)) < 0.1      # blank: measured 0.0
    assert class_coverage(images[labels == 3]) < 0.1            # one class: measured 0.0


def test_judge_report_has_every_metric_and_batches_consistently(test_split):
    images, labels = test_split
    report = judge_report(images, labels)
    assert set(report) == {"n", "fid", "recognisability", "coverage", "label_accuracy",
                           "label_accuracy_per_class", "reference"}
    assert report["reference"]["dataset"] == "digits"
    assert report["reference"]["features"] == "judge (digits)"
    per_class = report["label_accuracy_per_class"]
    assert sorted(per_class) == list(range(10))                 # weighted mean = overall
    counts = torch.bincount(labels, minlength=10)
    assert sum(per_class[c] * int(counts[c]) for c in per_class) / len(labels) == (
        pytest.approx(report["label_accuracy"]))
    assert report["n"] == len(images)
    assert report["fid"] == pytest.approx(judge_fid(images))
    many = images.repeat(3, 1, 1, 1)                            # (807, 1, 8, 8): 2 batches
    features = judge_features(many)
    assert features.shape == (len(many), 64)
    torch.testing.assert_close(features[:len(images)], features[-len(images):])
    assert "label_accuracy" not in judge_report(images)


def test_metric_input_errors(test_split):
    images, labels = test_split
    with pytest.raises(ValueError, match="labels"):
        label_accuracy(images, labels[:-1])
    with pytest.raises(ValueError, match="threshold"):
        recognisability(images, threshold=1.5)
    with pytest.raises(ValueError, match="valid: train, val, test"):
        judge_fid(images, reference="everything")
    with pytest.raises(ValueError, match="N = 0"):
        judge_features(images[:0])
    with pytest.raises(ValueError, match="at least 2 samples"):
        judge_fid(images[:1])
