"""``aigc-course train`` / ``sample`` / ``reconstruct``: generic over model kinds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_course.cli import MODEL_KINDS, main
from aigc_course.metrics.judge import DEFAULT_PATH as JUDGE_PATH


def _train_pair(kind: str, out: Path) -> dict[str, Path]:
    """A plain smoke model (8x8) and a conditional one (16x16) of ``kind``, via the CLI."""
    paths = {"plain": out / f"{kind}.pt", "conditional": out / f"c{kind}.pt"}
    assert main(["train", kind, "--profile", "smoke", "--steps", "5",
                 "--out", str(paths["plain"])]) == 0
    assert main(["train", kind, "--dataset", "digits", "--image-size", "16", "--conditional",
                 "--profile", "smoke", "--steps", "3", "--out", str(paths["conditional"])]) == 0
    return paths


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _train_pair("vae", tmp_path_factory.mktemp("ckpt"))


def test_vae_is_a_registered_kind() -> None:
    assert MODEL_KINDS["vae"] == "aigc_course.train.vae"


def test_train_prints_metrics_and_sample_writes_npz(
        checkpoints: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    out = tmp_path / "s.npz"
    assert main(["sample", str(checkpoints["plain"]), "--n", "20", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "vae"
    data = np.load(out)
    assert data["images"].shape == (20, 1, 8, 8) and data["images"].dtype == np.float32
    assert data["images"].min() >= -1 and data["images"].max() <= 1
    assert (data["labels"] == -1).all()


def test_conditional_sample_with_label(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c.npz"
    assert main(["sample", str(checkpoints["conditional"]), "--n", "7", "--label", "3",
                 "--out", str(out)]) == 0
    data = np.load(out)
    assert data["images"].shape == (7, 1, 16, 16) and (data["labels"] == 3).all()
    assert main(["sample", str(checkpoints["conditional"]), "--n", "4", "--label", "12",
                 "--out", str(out)]) == 2


def test_label_on_unconditional_model_is_an_error(
        checkpoints: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(checkpoints["plain"]), "--label", "1",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "conditional" in capsys.readouterr().err


def test_corrupt_and_foreign_checkpoints(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["sample", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
    assert "corrupt" in capsys.readouterr().err
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert main(["sample", str(foreign), "--out", str(tmp_path / "x.npz")]) == 2
    assert "not an aigc_course model checkpoint" in capsys.readouterr().err
    assert main(["sample", str(JUDGE_PATH), "--out", str(tmp_path / "x.npz")]) == 2
    assert ("holds a 'judge' checkpoint, not a generative model; valid kinds: ddpm, gan, gpt, vae"
            in capsys.readouterr().err)
    assert not (tmp_path / "x.npz").exists()


def test_reconstruct(checkpoints: dict[str, Path], tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    out = tmp_path / "r.npz"
    assert main(["reconstruct", str(checkpoints["plain"]), "--n", "10", "--out", str(out)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 10 and scores["psnr"] > 0
    assert np.load(out)["images"].shape == np.load(out)["originals"].shape == (10, 1, 8, 8)


def test_unknown_kind_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as err:
        main(["train", "flow", "--out", "x.pt"])
    assert err.value.code == 2


# --- kind "gan" (chapter 03) ------------------------------------------------------------

@pytest.fixture(scope="module")
def gan_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _train_pair("gan", tmp_path_factory.mktemp("gan"))


def test_gan_is_a_registered_kind() -> None:
    assert MODEL_KINDS["gan"] == "aigc_course.train.gan"


def test_gan_train_and_sample(gan_checkpoints: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    out = tmp_path / "g.npz"
    assert main(["sample", str(gan_checkpoints["plain"]), "--n", "12", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "gan"
    data = np.load(out)
    assert data["images"].shape == (12, 1, 8, 8) and data["images"].dtype == np.float32
    assert data["images"].min() >= -1 and data["images"].max() <= 1
    assert (data["labels"] == -1).all()


def test_gan_conditional_sample_with_label(gan_checkpoints: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cg.npz"
    assert main(["sample", str(gan_checkpoints["conditional"]), "--n", "6", "--label", "4",
                 "--out", str(out)]) == 0
    data = np.load(out)
    assert data["images"].shape == (6, 1, 16, 16) and (data["labels"] == 4).all()
    assert main(["sample", str(gan_checkpoints["conditional"]), "--n", "10",
                 "--out", str(out)]) == 0
    assert np.load(out)["labels"].tolist() == list(range(10))
    capsys.readouterr()
    assert main(["sample", str(gan_checkpoints["conditional"]), "--label", "10",
                 "--out", str(tmp_path / "bad.npz")]) == 2
    assert "--label must be in 0..9" in capsys.readouterr().err
    assert main(["sample", str(gan_checkpoints["plain"]), "--label", "1",
                 "--out", str(tmp_path / "bad.npz")]) == 2
    assert "conditional" in capsys.readouterr().err
    assert main(["sample", str(gan_checkpoints["plain"]), "--steps", "5",
                 "--out", str(tmp_path / "bad.npz")]) == 2
    assert not (tmp_path / "bad.npz").exists()


def test_gan_cannot_reconstruct(gan_checkpoints: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconstruct", str(gan_checkpoints["plain"])]) == 2
    assert "cannot reconstruct" in capsys.readouterr().err
