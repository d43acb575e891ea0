"""Notebook tests: conventions of committed notebooks, and each chapter run end to end.

papermill executes every notebook with ``PROFILE="smoke"``; the notebook records its key
results with :func:`aigc_course.notebook.record` into a JSON file, and the checks below
assert on them. The marked outputs are compared by ``pytest --nbval-lax`` (``make test``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from aigc_course.notebook import CHECK_MARKER, RECORD_ENV

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE_BUDGET_S = 120   # "about a minute" on 2 cores, with room for a busy CI machine


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS][:2] == ["00_setup.ipynb", "01_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_conventions(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "google.colab" in cells[1].source, "the second cell installs on Colab only"
    params = [c for c in cells if "parameters" in _tags(c)]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assert not any("injected-parameters" in _tags(c) for c in cells)
    assert 'PROFILE = "auto"' in params[0].source and "SEED = 0" in params[0].source
    for cell in cells:
        if cell.cell_type != "code":
            continue
        if CHECK_MARKER not in cell.source:
            assert not cell.outputs, f"outputs committed in an unmarked cell: {cell.source[:60]}"
            assert cell.execution_count is None
        else:
            assert cell.outputs, f"a marked cell needs its outputs (make outputs): {cell.source}"
        # Thin notebooks: library code lives in the package, not in notebook cells.
        assert "\ndef " not in f"\n{cell.source}" and "\nclass " not in f"\n{cell.source}", (
            f"function or class defined in a notebook cell: {cell.source[:60]}")


def _run(path: Path, tmp_dir: Path) -> tuple[dict, float, int]:
    import papermill

    record_file = tmp_dir / f"{path.stem}.json"
    old = {k: os.environ.get(k) for k in (RECORD_ENV, "AIGC_PROFILE")}
    os.environ.update({RECORD_ENV: str(record_file), "AIGC_PROFILE": "smoke"})
    try:
        start = time.perf_counter()
        papermill.execute_notebook(
            str(path), str(tmp_dir / path.name), parameters={"PROFILE": "smoke", "SEED": 0},
            cwd=str(path.parent), kernel_name="python3", progress_bar=False)
        seconds = time.perf_counter() - start
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    executed = nbformat.read(tmp_dir / path.name, as_version=4)
    figures = sum("image/png" in out.get("data", {}) for cell in executed.cells
                  if cell.cell_type == "code" for out in cell.outputs)
    return json.loads(record_file.read_text()), seconds, figures


def _check_00(r: dict) -> None:
    assert r["profile"] == "smoke" and r["device"] == "cpu"
    assert r["train_sizes"] == {"digits": 1258, "mnist5k": 3500, "shapes": 2099}
    assert r["profile_train_images"] == 256
    assert r["judge_test_accuracy"] >= 0.97
    assert r["judge_fid_test"] < 10
    assert 0 < r["step_ms"] < 2000


def _check_01(r: dict) -> None:
    assert r["n_images"] == 1000 and r["pixel_levels"] == 17      # eq. (eq-01-scale)
    # Planted problems (smoke: 20 copies, 3 corrupt items per kind, 4% flipped labels).
    # Measured, seed 0: duplicates precision 1.00 / recall 1.00; labels 0.89 / 0.97;
    # the cleaning module's multi-seed bars are recall >= 0.9 and 0.72 / 0.88.
    assert r["duplicates"]["recall"] >= 0.9 and r["duplicates"]["precision"] >= 0.8
    assert r["corrupt_found_all"] and r["corrupt_flagged"] == 12
    assert r["labels"]["precision"] >= 0.72 and r["labels"]["recall"] >= 0.88
    copy_bits, random_bits = r["ahash_distances"]
    assert copy_bits < 2 and random_bits > 10
    assert r["split_sizes"] == {"train": 700, "val": 149, "test": 151}
    assert r["split_share_gap"][0] < 0.02 < 0.2 < r["split_share_gap"][1]
    assert r["leaks_found"] >= 5
    assert r["card"]["items"] == 1797 and "CC BY 4.0" in r["card"]["licence"]


CHECKS: dict[str, Callable[[dict], None]] = {"00_setup": _check_00, "01_data": _check_01}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_smoke_profile(path: Path, tmp_path: Path) -> None:
    results, seconds, figures = _run(path, tmp_path)
    print(f"{path.name}: {seconds:.1f} s on the smoke profile, {figures} figures")
    assert figures >= 3, "figures must render as images (PNG), not as their text repr"
    assert path.stem in CHECKS, f"add result checks for {path.name} to CHECKS"
    CHECKS[path.stem](results)
    assert seconds < SMOKE_BUDGET_S
