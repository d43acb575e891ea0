"""``aigc-course export``, ``calibrate-drift`` and ``serve`` as a user types them: the
output of a good call, and exit status 2 with one line for each bad one (nothing written,
nothing bound)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import fails

from aigc_course import kinds
from aigc_course.cli import main
from aigc_course.deploy.drift import DriftCalibration
from aigc_course.deploy.export import load_exported

GAN = kinds.CHECKPOINTS / "gan_digits16.pt"


def test_export_writes_a_file_that_runs(tmp_path: Path, capsys: pytest.CaptureFixture
                                        ) -> None:
    out = tmp_path / "gan.onnx"
    assert main(["export", str(GAN), "--format", "onnx", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "gan" and report["format"] == "onnx" and out.is_file()
    assert report["dynamic_dims"] == {"z": [0], "y": [0]}
    assert max(report["max_abs_error"].values()) < 1e-5
    assert list(load_exported(out).input_names) == ["z", "y"]


def test_export_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fails(["export", str(GAN), "--format", "gif", "--out", str(tmp_path / "g")],
          "invalid choice: 'gif'", capsys)
    fails(["export", str(GAN), "--format", "pt2", "--out", str(GAN)], "refusing to overwrite",
          capsys)
    fails(["export", str(kinds.CHECKPOINTS / "judge_digits.pt"), "--format", "pt2",
           "--out", str(tmp_path / "j.pt2")], "not a generative model", capsys)
    fails(["export", str(tmp_path / "missing.pt"), "--format", "pt2", "--out",
           str(tmp_path / "m.pt2")], "no checkpoint", capsys)
    assert not list(tmp_path.iterdir())                        # nothing written


def test_calibrate_drift_writes_a_calibration(tmp_path: Path, capsys: pytest.CaptureFixture
                                              ) -> None:
    out = tmp_path / "drift.json"
    assert main(["calibrate-drift", str(GAN), "--window", "64", "--windows", "10",
                 "--out", str(out)]) == 0
    calibration = DriftCalibration.load(out)
    assert calibration.window_size == 64 and calibration.false_alarm_rate == 0.01
    fails(["calibrate-drift", str(GAN), "--out", str(GAN)], "must not be the checkpoint",
          capsys)
    fails(["calibrate-drift", str(GAN), "--windows", "3", "--out", str(tmp_path / "d.json")],
          "windows", capsys)


def test_serve_refuses_before_binding(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fails(["serve", str(kinds.CHECKPOINTS / "judge_digits.pt")], "not a generative model",
          capsys)
    fails(["serve", str(GAN), "--max-n", "0"], "max_n must be >= 1", capsys)
    fails(["serve", str(GAN), "--drift", str(tmp_path / "none.json")],
          "no drift calibration file", capsys)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    fails(["serve", str(GAN), "--drift", str(bad), "--port", "1"],
          "is not a drift calibration", capsys)
