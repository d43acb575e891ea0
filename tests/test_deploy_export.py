"""Chapter 10's export: .pt2 and ONNX files with a dynamic batch, checked against eager.

Tolerances: both runtimes compute in float32 with other kernels and summation orders than
eager (ONNX Runtime also folds batch norm into the convolution), so outputs of order 1
agree to float32 round-off grown by the depth of the sums: measured at most ~1.2e-6
(ONNX, the DDPM's denoiser) and 0 for .pt2 (the same ATen kernels). ``ATOL = 1e-5``
leaves a margin of ~10x while still catching a wrong weight or a frozen batch. DDIM's
few steps feed each step's error into the next, divided by $\\sqrt{\\bar\\alpha}$ at the
last steps, so the sampled images get ``SAMPLE_ATOL = 1e-4``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aigc_course.checkpoint import atomic_write
from aigc_course.deploy.export import (
    EXPORTS,
    FORMATS,
    ExportReport,
    export_checkpoint,
    exportable,
    load_exported,
    runtime_latency,
    with_exported_denoiser,
)
from aigc_course.kinds import CHECKPOINTS, load_model
from aigc_course.utils import file_sha256

ATOL = 1e-5
SAMPLE_ATOL = 1e-4
SHIPPED = {"gan": "gan_digits16.pt", "vae": "vae_digits16.pt", "ddpm": "ddpm_digits16.pt",
           "gan_student": "gan_student_digits16.pt"}
CASES = [(name, fmt) for name in ("gan", "vae", "ddpm") for fmt in FORMATS]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], ExportReport]:
    """Every shipped image kind in both formats, exported once for the module."""
    out = tmp_path_factory.mktemp("exported")
    return {(name, fmt): export_checkpoint(CHECKPOINTS / SHIPPED[name], fmt,  # type: ignore[arg-type]
                                           out / f"{name}.{fmt}")
            for name, fmt in CASES}


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_batch_stays_dynamic_after_a_batch_1_example(exported, name, fmt):
    # export_checkpoint traces from a batch-1 example; the file still runs any batch
    report = exported[name, fmt]
    kind, model = load_model(CHECKPOINTS / SHIPPED[name])
    net = exportable(kind.name, model)
    runner = load_exported(report.path)
    for batch in (1, 3, 17):
        inputs = net.example(batch, seed=batch)
        got = runner(*inputs)
        assert got.shape[0] == batch
        torch.testing.assert_close(got, net(*inputs), rtol=0, atol=ATOL)


def test_plain_torch_export_freezes_a_batch_of_1():
    # why the exporter widens a batch-1 example: torch.export specialises a size-1 dim
    _, model = load_model(CHECKPOINTS / SHIPPED["vae"])
    net = exportable("vae", model)
    batch = torch.export.Dim("batch")
    with pytest.raises(Exception, match="specialized it to be a constant"):
        torch.export.export(net.network, net.example(1), dynamic_shapes=({0: batch},))


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_report_describes_the_file(exported, name, fmt):
    report = exported[name, fmt]
    checkpoint = CHECKPOINTS / SHIPPED[name]
    assert (report.kind, report.format, report.network) == (name, fmt, EXPORTS[name])
    assert report.bytes == Path(report.path).stat().st_size > 10_000
    assert report.checkpoint_sha256 == file_sha256(checkpoint)
    assert set(report.max_abs_error) == {1, 64}
    assert all(0 <= e <= ATOL for e in report.max_abs_error.values())
    assert report.dynamic_dims == {n: [0] for n in report.input_names}
    assert all(shape[0] == "batch" for shape in report.input_shapes.values())
    assert load_exported(report.path).input_names == tuple(report.input_names)
    json.dumps(report.as_dict())                                   # what the CLI prints


def test_inputs_of_each_kind(exported):
    assert exported["gan", "onnx"].input_shapes == {"z": ["batch", 32], "y": ["batch"]}
    assert exported["vae", "pt2"].input_shapes == {"z": ["batch", 16]}
    assert exported["ddpm", "pt2"].input_shapes == {"xt": ["batch", 1, 16, 16],
                                                    "t": ["batch"], "y": ["batch"]}
    assert exported["ddpm", "onnx"].output_name == "eps"


def test_distilled_student_exports(tmp_path):
    report = export_checkpoint(CHECKPOINTS / SHIPPED["gan_student"], "pt2",
                               tmp_path / "student.pt2")
    assert report.kind == "gan" and max(report.max_abs_error.values()) <= ATOL


@pytest.mark.parametrize("fmt", FORMATS)
def test_ddim_with_the_exported_denoiser_draws_the_same_images(exported, fmt):
    _, model = load_model(CHECKPOINTS / SHIPPED["ddpm"])
    served = with_exported_denoiser(model, load_exported(exported["ddpm", fmt].path))
    y = torch.tensor([0, 3, 7])
    options = {"steps": 4, "guidance": 1.0, "y": y}                # guidance doubles the batch
    eager = model.sample(3, generator=torch.Generator().manual_seed(0), **options)
    images = served.sample(3, generator=torch.Generator().manual_seed(0), **options)
    assert images.shape == (3, 1, 16, 16)
    torch.testing.assert_close(images, eager, rtol=0, atol=SAMPLE_ATOL)
    assert served.network is not model.network                     # the model is left alone


def test_latency_of_eager_and_exported_files(exported):
    net = exportable("gan", load_model(CHECKPOINTS / SHIPPED["gan"])[1])
    files = {fmt: exported["gan", fmt].path for fmt in FORMATS}
    timed = runtime_latency(net, files, batches=(2,), rounds=3, warmup=1, round_seconds=0.002)
    assert list(timed[2]) == ["eager", "pt2", "onnx"]
    assert all(latency.seconds > 0 for latency in timed[2].values())


# --- what is refused ------------------------------------------------------------------

def test_unknown_format_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid: pt2, onnx"):
        export_checkpoint(CHECKPOINTS / SHIPPED["vae"], "tflite",  # type: ignore[arg-type]
                          tmp_path / "vae.tflite")
    assert not list(tmp_path.iterdir())


def test_refuses_to_overwrite_the_checkpoint(tmp_path):
    checkpoint = tmp_path / "vae.pt"
    checkpoint.write_bytes((CHECKPOINTS / SHIPPED["vae"]).read_bytes())
    before = file_sha256(checkpoint)
    with pytest.raises(ValueError, match="overwrite the checkpoint"):
        export_checkpoint(checkpoint, "pt2", tmp_path / "." / "vae.pt")
    assert file_sha256(checkpoint) == before


def test_refuses_corrupt_foreign_and_missing_checkpoints(tmp_path):
    corrupt, foreign = tmp_path / "corrupt.pt", tmp_path / "foreign.pt"
    corrupt.write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (corrupt, foreign):
        with pytest.raises(ValueError):
            export_checkpoint(path, "onnx", tmp_path / "out.onnx")
    with pytest.raises(FileNotFoundError):
        export_checkpoint(tmp_path / "missing.pt", "onnx", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_text_models_are_refused():
    with pytest.raises(ValueError, match=r"kind 'gpt'\) is not supported yet.*gan, vae, ddpm"):
        exportable("gpt", object())


def test_a_failed_parity_check_writes_nothing(tmp_path):
    out = tmp_path / "vae.pt2"
    out.write_bytes(b"the previous export")
    with pytest.raises(ValueError, match="differs from eager"):
        export_checkpoint(CHECKPOINTS / SHIPPED["vae"], "pt2", out, tolerance=-1.0)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["vae.pt2"]     # no scratch file left


def test_load_exported_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(ValueError, match="valid: pt2, onnx"):
        load_exported(tmp_path / "model.tflite")
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "missing.onnx")
    for name in ("junk.pt2", "junk.onnx"):
        with atomic_write(tmp_path / name) as scratch:
            scratch.write_bytes(b"junk")
        with pytest.raises(ValueError, match="is not"):
            load_exported(tmp_path / name)
