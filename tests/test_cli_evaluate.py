"""``aigc-course evaluate``: every metric of a checkpoint against its own dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from aigc_course import kinds
from aigc_course.cli import main
from aigc_course.metrics.judge import DEFAULT_PATH as JUDGE_PATH


@pytest.fixture(scope="module")
def mnist_gan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditional GAN on mnist5k at 32x32 (the gpu profile's shape), a few steps."""
    out = tmp_path_factory.mktemp("eval") / "gan_mnist5k.pt"
    assert main(["train", "gan", "--dataset", "mnist5k", "--image-size", "32",
                 "--conditional", "--profile", "smoke", "--steps", "3", "--out", str(out)]) == 0
    return out


def test_evaluate_prints_the_report_with_its_reference(
        capsys: pytest.CaptureFixture[str]) -> None:
    ddpm = kinds.get("ddpm").shipped
    capsys.readouterr()
    assert main(["evaluate", str(ddpm), "--n", "50", "--steps", "5", "--guidance", "2"]) == 0
    out = capsys.readouterr().out
    assert "reference   digits train split at 16x16, judge (digits) features" in out
    assert "options {'steps': 5, 'guidance': 2.0}" in out
    for label in ("judge FID", "precision", "recall", "class coverage", "label accuracy",
                  "label accuracy per class        0: "):
        assert label in out


def test_evaluate_json_of_an_mnist5k_model_names_mnist5k(
        mnist_gan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["evaluate", str(mnist_gan), "--n", "40", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "mnist5k" and report["kind"] == "gan"
    assert report["reference"]["text"] == ("mnist5k train split at 32x32, judge (mnist5k) "
                                           "features")
    assert report["n"] == 40 and report["seed"] == 3 and report["conditional"]
    assert sorted(report["label_accuracy_per_class"], key=int) == [str(c) for c in range(10)]
    assert 0 <= report["label_accuracy"] <= 1 and report["fid"] > 0


@pytest.mark.parametrize("case", ["missing", "corrupt", "foreign", "judge", "n", "steps"])
def test_bad_input_exits_2_with_one_clear_line(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.pt"
    args = ["evaluate", str(path)]
    expected = {"missing": "no checkpoint at",
                "corrupt": "not a readable torch checkpoint.*corrupt or truncated",
                "foreign": "not an aigc_course model checkpoint",
                "judge": "holds a 'judge' checkpoint, not a generative model; valid kinds",
                "n": "--n must be at least 10",
                "steps": "--steps do not apply to a 'vae' model"}[case]
    if case == "corrupt":
        path.write_bytes(b"PK\x03\x04 half a zip")
    elif case == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    elif case == "judge":
        args = ["evaluate", str(JUDGE_PATH)]
    elif case in ("n", "steps"):
        args = ["evaluate", str(kinds.get("vae").shipped),
                *(["--n", "5"] if case == "n" else ["--steps", "4"])]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert re.search(expected, err, re.IGNORECASE), err
