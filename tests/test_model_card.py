"""Model cards: every number printed is the one measured, every section is there, no
placeholders, bad files refused, and the environmental arithmetic holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from aigc_course import kinds
from aigc_course.checkpoint import read_checkpoint
from aigc_course.metrics import judge_fid
from aigc_course.reports.model_card import (
    GRID_G_PER_KWH,
    SECTIONS,
    WATTS,
    ModelCard,
    emissions_g,
    energy_kwh,
    make_model_card,
)

GAN = kinds.get("gan").shipped
PLACEHOLDERS = re.compile(r"TODO|TBD|\[More Information Needed\]|\bnan\b|\binf\b", re.I)


@pytest.fixture(scope="module")
def gan_card() -> ModelCard:
    return make_model_card(GAN, n=200, seed=1)


def _printed(markdown: str, metric: str) -> float:
    """The value column of the evaluation table's row ``metric``."""
    row = re.search(rf"^\| {re.escape(metric)} \| ([^|]+) \|", markdown, re.M)
    assert row is not None, f"no row {metric!r}"
    return float(row.group(1).replace(",", ""))


def _check_text(markdown: str) -> None:
    headings = set(re.findall(r"^#+ (.+)$", markdown, re.M))
    assert set(SECTIONS) <= headings, set(SECTIONS) - headings
    assert PLACEHOLDERS.search(markdown) is None, PLACEHOLDERS.search(markdown)


def test_card_prints_the_numbers_it_measured(gan_card: ModelCard) -> None:
    markdown = gan_card.to_markdown()
    _check_text(markdown)
    measured = {m["name"]: m["value"] for m in gan_card.to_dict()["metrics"]}
    # the same draw, recomputed: the card's FID is judge_fid of kinds.draw's samples
    images, _, _ = kinds.draw(kinds.get("gan").load(), 200, seed=1)
    assert measured["judge FID"] == pytest.approx(judge_fid(images, "train", dataset="digits"),
                                                  rel=1e-9)
    for name in ("judge FID", "recognisability", "class coverage", "label accuracy",
                 "class TV distance", "memorised share", "sampling seconds per 1,000"):
        assert _printed(markdown, name) == float(f"{measured[name]:.4g}"), name
    assert "n = 200" in markdown and "digits train split at 16x16" in markdown
    # read from the checkpoint: its recorded FID, and a value it lacks says so
    recorded = read_checkpoint(GAN)["metadata"]["judge"]["fid"]
    assert _printed(markdown, "fid (recorded)") == float(f"{recorded:.4g}")
    assert "| final_loss | not recorded |" in markdown
    assert "--conditional --profile cpu --steps 2000 --seed 0" in gan_card.reproduce


def test_environmental_cost_arithmetic(gan_card: ModelCard) -> None:
    assert energy_kwh(3600.0, 1000.0) == pytest.approx(1.0)           # 1 kW for 1 h
    assert emissions_g(3600.0, 1000.0, 250.0) == pytest.approx(250.0)
    seconds = read_checkpoint(GAN)["metadata"]["seconds"]
    env = gan_card.environment
    assert env["train_seconds"] == seconds and env["watts"] == WATTS
    assert env["train_g"] == pytest.approx(seconds * WATTS / 3.6e6 * GRID_G_PER_KWH)
    markdown = gan_card.to_markdown()
    assert f"| training emissions | {env['train_g']:.4g} gCO2e |" in markdown
    assert "Intel" in markdown and "European Environment Agency" in markdown
    other = make_model_card(GAN, n=50, watts=100.0, g_per_kwh=50.0)
    assert other.environment["train_kwh"] == pytest.approx(seconds * 100.0 / 3.6e6)
    assert other.environment["grid_source"] == "given"


def test_diffusion_and_vae_cards(tmp_path: Path) -> None:
    ddpm = make_model_card(kinds.get("ddpm").shipped, n=100, steps=2)
    assert ddpm.sampling == "100 samples, 2 DDIM steps, guidance w = 0"
    assert ddpm.value("label accuracy") is not None
    _check_text(ddpm.to_markdown())
    vae = make_model_card(kinds.get("vae").shipped, n=100)
    names = [m.name for m in vae.metrics]
    assert "label accuracy" not in names and "psnr (recorded)" in names
    assert "--profile cpu --steps 4000 --seed 0" in vae.reproduce and not vae.notes
    bare = read_checkpoint(kinds.get("vae").shipped)              # a file without its profile
    del bare["metadata"]["profile"]
    torch.save(bare, tmp_path / "vae.pt")
    unknown = make_model_card(tmp_path / "vae.pt", n=50)
    assert "--profile" not in unknown.reproduce
    assert unknown.notes == ["The checkpoint records no profile: the command uses the default one."]
    _check_text(vae.to_markdown())
    with pytest.raises(ValueError, match="no metric 'fid'; the card has: judge FID"):
        vae.value("fid")


def test_bad_files_and_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'judge' checkpoint.*valid kinds: ddpm, gan, gpt, vae"):
        make_model_card(kinds.CHECKPOINTS / "judge_digits.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        make_model_card(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError):
        make_model_card(foreign)
    with pytest.raises(ValueError, match="--steps do not apply to a 'gan' model"):
        make_model_card(GAN, steps=5)
    with pytest.raises(ValueError, match="at least 50"):
        make_model_card(GAN, n=10)
    with pytest.raises(FileNotFoundError):
        make_model_card(tmp_path / "missing.pt")


@pytest.mark.slow
def test_text_model_card(tmp_path: Path) -> None:
    path = tmp_path / "gpt.pt"
    metrics = kinds.train_and_save("gpt", path, "smoke", steps=10, progress=False)
    card = make_model_card(path)
    markdown = card.to_markdown()
    _check_text(markdown)
    # measured now on the same val split it was scored on when trained
    assert card.value("validation bits per character") == pytest.approx(
        metrics["val_bpc"], rel=1e-4)
    assert card.value("validation perplexity per character") == pytest.approx(
        2 ** metrics["val_bpc"], rel=1e-4)
    assert card.sample_text and "```text" in markdown and "judge FID" not in markdown
    assert "--dataset pydoc --profile smoke --steps 10 --seed 0" in card.reproduce
