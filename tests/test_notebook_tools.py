import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from aigc_course import notebook
from aigc_course.notebook import exercises, record, strip_outputs, student_version

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_record_writes_plain_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import torch

    path = tmp_path / "r.json"
    monkeypatch.setenv(notebook.RECORD_ENV, str(path))
    assert record("a", torch.tensor(0.5)) is None
    record("b", {"x": np.float64(2.0), "y": [torch.tensor([1, 2])]})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": {"x": 2.0, "y": [[1, 2]]}}
    with pytest.raises(ValueError, match="numbers, strings"):
        record("c", object())


def _exercise_notebook() -> nbformat.NotebookNode:
    solution = new_code_cell("from aigc_course.exercises.ch01 import average_hash")
    solution.metadata.update(tags=["solution"], aigc={
        "exercise": "ex-hash", "solution": "aigc_course.exercises.ch01:average_hash"})
    gate = new_markdown_cell("```{solution-start} ex-hash\n```")
    gate.metadata["tags"] = ["solution"]
    checked = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")
    checked.outputs = [new_output("stream", name="stdout", text="1\n")]
    plain = new_code_cell("print(2)", execution_count=3)
    plain.outputs = [new_output("stream", name="stdout", text="2\n")]
    return new_notebook(cells=[
        new_markdown_cell("```{exercise} Write a hash\n:label: ex-hash\n\nText.\n```"),
        gate, solution, checked, plain])


def test_strip_keeps_only_marked_outputs() -> None:
    nb = strip_outputs(_exercise_notebook())
    assert nb.cells[3].outputs and not nb.cells[4].outputs
    assert nb.cells[4].execution_count is None


def test_student_version_stubs_solutions() -> None:
    nb = _exercise_notebook()
    assert exercises(nb) == {"ex-hash": ["aigc_course.exercises.ch01:average_hash"]}
    student = student_version(nb)
    sources = [c.source for c in student.cells]
    assert not any("solution-start" in s for s in sources)
    stub = next(s for s in sources if "NotImplementedError" in s)
    assert "def average_hash(images: 'Tensor', hash_size: 'int' = 8) -> 'Tensor':" in stub
    namespace: dict = {}          # the stub runs without the solution's imports
    exec(stub, namespace)
    with pytest.raises(NotImplementedError, match="Exercise ex-hash"):
        namespace["average_hash"](None)


def test_solution_for_unknown_exercise_is_an_error() -> None:
    nb = _exercise_notebook()
    nb.cells[2].metadata["aigc"]["exercise"] = "ex-other"
    with pytest.raises(ValueError, match="ex-other"):
        exercises(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_solution_and_student_versions_are_valid(path: Path,
                                                                      tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for label, solutions in exercises(nb).items():
        assert solutions, f"exercise {label} in {path.name} has no solution cell"
        for spec in solutions:
            assert callable(notebook.resolve_solution(spec))
    assert notebook.main(["student", str(path), "--out", str(tmp_path)]) == 0
    student = nbformat.read(tmp_path / path.name, as_version=4)
    nbformat.validate(student)
    text = "\n".join(c.source for c in student.cells)
    assert "aigc_course.exercises" not in text, "a solution leaked into the student version"
    assert text.count("raise NotImplementedError") == sum(len(s) for s in exercises(nb).values())
    for cell in student.cells:
        if "exercise-stub" in cell.metadata.get("tags", []):
            namespace: dict = {}
            exec(cell.source, namespace)          # defines the stub without the package
            assert any(callable(v) for k, v in namespace.items() if not k.startswith("__"))


def test_chapter_01_has_exercises() -> None:
    nb = nbformat.read(ROOT / "notebooks" / "01_data.ipynb", as_version=4)
    assert len(exercises(nb)) >= 2


def test_package_tour_lists_modules() -> None:
    text = notebook.package_tour().data
    assert "`aigc_course.data.registry`" in text and "`aigc_course.profiles`" in text


def _marked(*outputs: dict) -> nbformat.NotebookNode:
    cell = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(table)", outputs=list(outputs))
    return new_notebook(cells=[new_markdown_cell("# t"), cell, new_code_cell("x = 1")])


def test_checked_outputs_compare_text_but_not_times_or_addresses() -> None:
    committed = _marked(new_output("stream", name="stdout", text="FID 5.5 in 1.2 s at 0x7f00\n"))
    same = _marked(new_output("stream", name="stdout", text="FID 5.5 in 3 s "),
                   new_output("stream", name="stdout", text="at 0xabc\n"))     # split, re-joined
    assert notebook.compare_checked_outputs(committed, same) == []
    changed = _marked(new_output("stream", name="stdout", text="FID 5.6 in 1.2 s at 0x7f00\n"))
    [problem] = notebook.compare_checked_outputs(committed, changed)
    assert "FID 5.5" in problem and "FID 5.6" in problem
    failed = _marked(new_output("error", ename="ValueError", evalue="bad", traceback=[]))
    assert notebook.compare_checked_outputs(committed, failed)
    other = new_notebook(cells=[new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(other)")])
    assert "not run" in notebook.compare_checked_outputs(committed, other)[0]


# --- numbers in prose ------------------------------------------------------------------

def test_prose_fills_fields_from_the_recorded_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notebook, "RESULTS", {})
    record("fid", {"gan": 4.1234, "10": [3, 5.25]})
    record("steps", 25)
    text = notebook.prose("GAN {fid[gan]:.2f}, S = 10: {fid[10][1]:.1f} after {steps} steps").data
    assert text == "GAN 4.12, S = 10: 5.2 after 25 steps"
    with pytest.raises(KeyError, match=r"'kid', which is not recorded.*recorded: fid, steps"):
        notebook.prose("{kid:.2f}")
    with pytest.raises(KeyError, match=r"fid has no \[vae\] \(it has \['gan', '10'\]\)"):
        notebook.prose("{fid[vae]}")
    with pytest.raises(KeyError, match=r"fid\[10\] has no \[7\]"):
        notebook.prose("{fid[10][7]}")


def _markdown(*sources: str, typed: list[str] | None = None) -> nbformat.NotebookNode:
    cells = [new_markdown_cell(s) for s in sources]
    if typed is not None:
        cells[-1].metadata["aigc"] = {"typed": typed}
    return new_notebook(cells=cells)


def test_a_typed_result_that_a_recorded_value_contradicts_is_reported() -> None:
    nb = _markdown("# Title", "The memoriser's judge FID is about 4.1, near the real floor.")
    found = notebook.hand_typed_results(nb, {"fid": {"memoriser": 3.7, "real": 1.65},
                                             "steps": 200})
    assert len(found) == 1, found
    assert found[0].startswith("cell 1: '4.1' typed by hand after fid")
    assert "fid[memoriser] = 3.7" in found[0] and "fid[real] = 1.65" in found[0]
    assert "steps" not in found[0]                       # not a value the number claims
    # percentages, the word after the number, and numbers of a sentence in a list item
    assert len(notebook.hand_typed_results(_markdown("Label accuracy climbs to 100%."))) == 1
    assert len(notebook.hand_typed_results(_markdown("* it reaches 0.93 recall here"))) == 1


def test_inputs_code_math_and_declared_numbers_are_not_results() -> None:
    quiet = _markdown(
        "Adam with learning rate 0.0002 and $\\beta_1 = 0.5$; 1,000 samples at 16x16.",
        "The call `judge_fid(x, y) = 4.1` and $$\\text{FID} = 1.65$$ (eq-08-fid)",
        "```python\nfid = 4.1  # a code block\n```",
        "The FID of chapter 08 over 2,000 samples, seed 0.",
        "<!-- FID 4.1 --> see [the FID paper](https://example.org/fid-4.1).",
    )
    assert notebook.hand_typed_results(quiet, {"fid": 4.1}) == []
    bar = _markdown("The test holds the gap under 0.02 nats.", typed=["0.02"])
    assert notebook.hand_typed_results(bar) == []
    assert len(notebook.hand_typed_results(_markdown("The gap is under 0.02 nats."))) == 1


def test_directive_text_is_read_and_its_options_are_not() -> None:
    exercise = _markdown("```{exercise} A bar\n:label: ex-1.5\n\nShow that recall "
                         "reaches 0.93 here.\n```")
    (found,) = notebook.hand_typed_results(exercise)
    assert "'0.93' typed by hand after recall" in found
