"""``aigc-course train gpt``, ``score`` and ``generate``: what a user types, and every bad
input answered with one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigc_course.cli import main

TEXT = ("The quick brown fox jumps over the lazy dog. A lazy dog sleeps.\n\n" * 40)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gpt")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT)
    out = folder / "g.pt"
    assert main(["train", "gpt", "--text-file", str(corpus), "--profile", "smoke",
                 "--steps", "30", "--out", str(out)]) == 0
    return out, corpus


def test_train_score_generate(trained: tuple[Path, Path], capsys: pytest.CaptureFixture
                              ) -> None:
    out, corpus = trained
    capsys.readouterr()
    assert main(["score", str(out), "--text-file", str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["chars"] == len(TEXT) and result["tokenizer"] == "char"
    assert 0 < result["bits_per_char"] < 4.0           # a 30-step model, below uniform 4.4
    assert main(["generate", str(out), "--prompt", "The ", "--max-new-tokens", "40",
                 "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("The ") and len(text.rstrip("\n")) >= 40
    assert main(["generate", str(out), "--prompt", "The ", "--max-new-tokens", "40",
                 "--seed", "1"]) == 0
    assert capsys.readouterr().out == text                  # seeded
    assert main(["generate", str(out), "--prompt", "The ", "--temperature", "0",
                 "--top-k", "3", "--top-p", "0.5", "--max-new-tokens", "10"]) == 0


def test_train_with_bpe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    assert main(["train", "gpt", "--text-file", str(corpus), "--tokenizer", "bpe",
                 "--profile", "smoke", "--steps", "3", "--out", str(tmp_path / "b.pt")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["tokenizer"] == "bpe" and metrics["vocab_size"] > 256


def _fails(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1, err                         # one line, no traceback


def test_bad_input_exits_2(trained: tuple[Path, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    out, corpus = trained
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café".encode("latin-1"))
    _fails(["train", "gpt", "--text-file", str(empty), "--profile", "smoke", "--out",
            str(tmp_path / "x.pt")], "empty", capsys)
    _fails(["score", str(out), "--text-file", str(latin)], "UTF-8", capsys)
    _fails(["score", str(out), "--text-file", str(tmp_path / "missing.txt")], "missing.txt",
           capsys)
    _fails(["generate", str(out), "--prompt", "Zürich"], "ü", capsys)
    _fails(["generate", str(out), "--max-new-tokens", "10001"],
           "--max-new-tokens must be in 0..10000", capsys)
    _fails(["generate", str(out), "--top-p", "0"], "top_p must be in (0, 1]", capsys)
    _fails(["generate", str(out), "--top-p", "1.5"], "top_p must be in (0, 1]", capsys)
    _fails(["train", "gan", "--tokenizer", "bpe", "--out", str(tmp_path / "x.pt")],
           "apply to text models", capsys)


def test_kinds_keep_to_their_commands(trained: tuple[Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    """A gpt checkpoint refused by the image commands, an image one by the text commands,
    and a corrupt file by both."""
    from aigc_course import kinds

    out, corpus = trained
    gan = kinds.get("gan").shipped
    assert gan is not None
    _fails(["generate", str(gan)], "image model, not a text model", capsys)
    _fails(["score", str(gan), "--text-file", str(corpus)], "image model", capsys)
    _fails(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.npz")],
           "use aigc-course generate", capsys)
    _fails(["evaluate", str(out)], "use aigc-course generate", capsys)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(out.read_bytes()[:500])
    _fails(["generate", str(bad)], "corrupt", capsys)
