"""``aigc-course watermark keygen|embed|detect`` and ``aigc-course card`` as a user types
them: the output of a good call, and exit status 2 with one line for each bad one (nothing
written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fails
from PIL import Image

from aigc_course import kinds
from aigc_course.cli import main
from aigc_course.data import load_images

GAN = kinds.CHECKPOINTS / "gan_digits16.pt"


def test_watermark_marks_samples_and_finds_only_the_marked(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    key, samples, marked = tmp_path / "key.pt", tmp_path / "s.npz", tmp_path / "m.npz"
    assert main(["watermark", "keygen", "--seed", "7", "--out", str(key)]) == 0
    assert main(["sample", str(GAN), "--n", "40", "--out", str(samples)]) == 0
    assert main(["watermark", "embed", str(samples), "--key", str(key), "--out",
                 str(marked)]) == 0
    with np.load(samples) as before, np.load(marked) as after:
        assert after["images"].shape == before["images"].shape == (40, 1, 16, 16)
        assert np.array_equal(after["labels"], before["labels"])   # other arrays kept
    capsys.readouterr()
    for path, expected in ((marked, 40), (samples, 0)):
        assert main(["watermark", "detect", str(path), "--key", str(key), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["threshold"] == pytest.approx(3.0902, abs=1e-4)   # N(0, 1)'s 0.999
        assert sum(row["marked"] for row in report["images"]) == expected


def test_watermark_on_a_png_and_its_refusals(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    key, png = tmp_path / "key.pt", tmp_path / "digit.png"
    main(["watermark", "keygen", "--seed", "3", "--out", str(key)])
    digit = load_images("digits", "test", image_size=16)[0][0, 0]          # a real digit
    Image.fromarray(((digit + 1) * 127.5).round().byte().numpy()).save(png)
    assert main(["watermark", "embed", str(png), "--key", str(key), "--out",
                 str(tmp_path / "marked.png")]) == 0
    capsys.readouterr()
    assert main(["watermark", "detect", str(tmp_path / "marked.png"), "--key", str(key)]) == 0
    assert "1 of 1 images marked" in capsys.readouterr().out
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "big.png")
    fails(["watermark", "detect", str(tmp_path / "big.png"), "--key", str(key)],
          "expected (C, H, W) = (1, 16, 16)", capsys)
    fails(["watermark", "detect", str(png), "--key", str(GAN)], "not a watermark key file",
          capsys)
    fails(["watermark", "detect", str(png), "--key", str(key), "--fpr", "2"],
          "--fpr must be in (0, 1)", capsys)
    fails(["watermark", "keygen", "--shape", "16x16", "--out", str(tmp_path / "k2.pt")],
          "--shape must be C,H,W", capsys)
    fails(["watermark", "embed", str(png), "--key", str(key), "--out",
           str(tmp_path / "out.npz")], "cannot write", capsys)
    assert not (tmp_path / "k2.pt").exists() and not (tmp_path / "out.npz").exists()


def test_card_prints_measured_markdown_and_refuses_a_judge(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "card.md"
    assert main(["card", str(GAN), "--n", "100", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Model card: gan_digits16.pt") and "## Evaluation" in text
    assert "judge FID" in text
    fails(["card", str(kinds.CHECKPOINTS / "judge_digits.pt")], "valid kinds: ddpm, gan",
          capsys)
    fails(["card", str(tmp_path / "missing.pt")], "missing.pt", capsys)
