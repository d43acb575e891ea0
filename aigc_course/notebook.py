"""Notebook plumbing: recording results, showing solutions, stripping, student versions.

* :func:`record` -- a notebook states a key result (a metric, a wall time) by name;
  when ``$AIGC_RECORD_FILE`` is set (the notebook tests set it) the value is also
  written to that JSON file, so tests assert on real results of a real run.
* :func:`prose` -- a sentence whose numbers are recorded results: ``{name:.2f}`` fields
  are filled from what :func:`record` holds, so the number a student reads (in Jupyter or
  in the built book, on any profile) is the one this run measured. Markdown cells hold no
  result numbers; :func:`hand_typed_results` finds any that do (the notebook tests run it
  on every chapter and report the recorded values a typed number contradicts).
* :func:`show_source` -- a solution cell shows the package's solution code.
* ``python -m aigc_course.notebook strip NB...`` -- remove outputs, except cells
  marked ``# NBVAL_CHECK_OUTPUT`` (``make strip``).
* ``python -m aigc_course.notebook refresh NB...`` -- execute on the smoke profile and
  keep the marked cells' outputs (``make outputs``), which :func:`compare_checked_outputs`
  compares with a later run's (the notebook tests: one execution serves the recorded
  results and the marked outputs, as ``nbval --nbval-lax`` would compare them).
* ``python -m aigc_course.notebook student NB... --out DIR`` -- student versions:
  each code cell tagged ``solution`` becomes a stub that raises
  ``NotImplementedError("Exercise ...")``, markdown cells tagged ``solution`` (the
  ``{solution-start}``/``{solution-end}`` gates) are dropped (``make student``).

A solution code cell carries ``metadata.aigc = {"exercise": LABEL, "solution":
"module:function"}``; the stub gets that function's signature and docstring.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import json
import math
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat

RECORD_ENV = "AIGC_RECORD_FILE"
CHECK_MARKER = "NBVAL_CHECK_OUTPUT"
RESULTS: dict[str, Any] = {}
_EXERCISE_LABEL = re.compile(r"```\{exercise\}.*?:label:\s*(\S+)", re.S)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types (tensors and numpy scalars/arrays become lists/numbers)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"record() takes numbers, strings, lists or dicts, got {type(value).__name__}")


def record(name: str, value: Any) -> None:
    """Record a notebook's key result under ``name`` (returns nothing, so prints nothing)."""
    RESULTS[name] = _plain(value)
    path = os.environ.get(RECORD_ENV)
    if path:
        file = Path(path)
        data = json.loads(file.read_text()) if file.exists() and file.stat().st_size else {}
        data[name] = RESULTS[name]
        file.write_text(json.dumps(data, indent=1, sort_keys=True))


_FIELD = re.compile(r"(\w+)((?:\[[^\]]*\])*)")


class _Recorded(string.Formatter):
    """``str.format`` over :data:`RESULTS`: ``{a[b][0]}`` indexes a recorded dict by the
    *string* ``b`` (recorded keys are strings) and a list by the integer 0."""

    def get_field(self, field_name: str, args: Sequence[Any],
                  kwargs: Mapping[str, Any]) -> tuple[Any, str]:
        match = _FIELD.fullmatch(field_name)
        if match is None:
            raise ValueError(f"prose() fields are name[key][...], not {field_name!r}")
        first, rest = match.group(1), re.findall(r"\[([^\]]*)\]", match.group(2))
        if first not in RESULTS:
            known = ", ".join(sorted(RESULTS)) or "nothing yet"
            raise KeyError(f"prose() names {first!r}, which is not recorded; record() it "
                           f"first (recorded: {known})")
        value, path = RESULTS[first], str(first)
        for key in rest:
            try:
                value = value[str(key)] if isinstance(value, dict) else value[int(key)]
            except (KeyError, IndexError, ValueError, TypeError):
                keys = list(value) if isinstance(value, dict) else f"{len(value)} items"
                raise KeyError(f"prose(): {path} has no [{key}] (it has {keys})") from None
            path += f"[{key}]"
        return value, first


def prose(template: str) -> Any:
    """Markdown of ``template`` with its ``{name:format}`` fields filled from the recorded
    results (:func:`record`), the course's one way to put a measured number into prose.

    ``prose("Real test digits score FID {fid_real:.2f}.")`` after
    ``record("fid_real", 1.234)`` displays *Real test digits score FID 1.23.* Fields index
    recorded dicts and lists: ``{sweep[10][fid]:.1f}``. A name that is not recorded is a
    ``KeyError`` that lists the recorded names. Tag the cell ``remove-input`` so the built
    book shows only the sentence.
    """
    from IPython.display import Markdown

    return Markdown(_Recorded().format(template))


#: Words that mark a number in prose as a measured result: the course's metrics and units.
RESULT_WORDS = frozenset("""
    fid kid recall precision coverage accuracy recognisability recognisable nats bits bpc
    psnr ssim auc kl elbo loss perplexity speedup speed-up ratio gap error floor spread
    throughput latency detection mse correlation entropy seconds faster slower score scores
    scored""".split())
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)
_CODE = re.compile(r"^```[^\n]*\n.*?^```", re.M | re.S)
_HIDDEN = re.compile(r"^(```|:::|:\w+:)[^\n]*$|`[^`\n]*`|<!--.*?-->|\]\([^)]*\)|https?://\S+",
                     re.M | re.S)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z-]*|\d[\d,]*\d(?:\.\d+)?(?:\s?%)?|\d(?:\.\d+)?(?:\s?%)?")
_MEASURED = re.compile(r"\d[\d,]*\.\d+|\d[\d,]*\s?%")     # 1.65, 0.5, 97%: not 16, 2,000


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}


def _flat(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{prefix}[{key}]")
    elif isinstance(value, list) and len(value) <= 8:
        for i, item in enumerate(value):
            yield from _flat(item, f"{prefix}[{i}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield prefix, value


def _prose_text(source: str) -> str:
    """A markdown cell's running text: no code (fenced or inline), math, directive fences
    and options, comments, link targets or URLs."""
    code_fences = [m for m in _CODE.finditer(source) if not m.group().startswith("```{")]
    for match in reversed(code_fences):
        source = source[:match.start()] + " " + source[match.end():]
    return _HIDDEN.sub(" ", _MATH.sub(" ", source))


def hand_typed_results(nb: nbformat.NotebookNode,
                       results: Mapping[str, Any] | None = None,
                       window: int = 6) -> list[str]:
    """Measured numbers typed into markdown cells, which a run's records may contradict.

    A decimal or a percentage (``1.65``, ``0.54``, ``97%``) in a markdown cell's running text
    within ``window`` words after, or two words before, a word that names a measurement
    (:data:`RESULT_WORDS`: FID, recall, accuracy, nats, ...) in the same sentence is
    reported: a measured number belongs in :func:`prose`, filled from the recorded results,
    or it contradicts them on another profile or run. Code, math (equations hold constants),
    directive options, comments and links are skipped; integers are not reported (they
    count inputs: 1,000 samples, 16x16, T = 1000). With ``results`` (a run's recorded
    results) each report lists the recorded values whose names share the word, the values
    the typed number claims to be. A number that is an input or a bar, not a result (a
    test's tolerance, a chosen quantile), is declared in the cell's metadata,
    ``{"aigc": {"typed": ["0.02"]}}``, and is then not reported.

    Returns:
        One line per finding: the cell index, the typed number in its context, and the
        recorded values it contradicts.
    """
    flat = [(path, v) for name, value in (results or {}).items() for path, v in _flat(value, name)]
    findings = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = _prose_text(cell.source)
        declared = set(cell.get("metadata", {}).get("aigc", {}).get("typed", []))
        for sentence in re.split(r"(?<=[.!?;:])\s+(?=[A-Z(*])|\n\s*\n", text):
            tokens = _TOKEN.findall(sentence)
            for i, token in enumerate(tokens):
                if not _MEASURED.fullmatch(token) or token in declared:
                    continue
                near = tokens[max(0, i - window):i] + tokens[i + 1:i + 3]
                hits = sorted({w.lower() for w in near} & RESULT_WORDS)
                if not hits:
                    continue
                claims = [f"{path} = {v:.4g}" for path, v in flat if set(hits) & _words(path)]
                context = " ".join(tokens[max(0, i - window):i + 3])
                recorded = f"; this run recorded {', '.join(claims[:4])}" if claims else ""
                findings.append(f"cell {index}: {token!r} typed by hand after "
                                f"{'/'.join(hits)} ({context!r}){recorded}: record() it "
                                f"and write the sentence with prose()")
    return findings


def show_source(obj: Any) -> Any:
    """Display the source code of a function or class (a solution) as a code block."""
    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj)}```")


def package_tour() -> Any:
    """A table of the package's modules and what each holds (their docstrings' first line)."""
    import pkgutil

    from IPython.display import Markdown

    import aigc_course

    rows = ["| module | what it holds |", "|---|---|"]
    for module in pkgutil.walk_packages(aigc_course.__path__, "aigc_course."):
        if module.name.split(".")[-1].startswith("_") or ".exercises." in module.name:
            continue
        doc = inspect.getdoc(importlib.import_module(module.name)) or ""
        rows.append(f"| `{module.name}` | {doc.splitlines()[0] if doc else ''} |")
    return Markdown("\n".join(rows))


# --- strip and student versions --------------------------------------------------------

def is_checked(cell: dict) -> bool:
    """Whether a code cell's output is committed and compared by :func:`compare_checked_outputs`."""
    return cell.get("cell_type") == "code" and CHECK_MARKER in cell.get("source", "")


#: What may differ between two runs of a marked cell: (regular expression, replacement),
#: applied to both texts before they are compared (nbval's ``--nbval-sanitize-with``).
SANITIZE: tuple[tuple[str, str], ...] = (
    (r"0x[0-9a-fA-F]+", "0xADDRESS"),          # memory addresses
    (r"\d+(\.\d+)? ?(ms|s)\b", "TIME"),        # wall times
)


def _output_texts(cell: dict) -> list[tuple[str, str]]:
    """A code cell's outputs as ``(kind, text)``: streams, plain-text results and errors.

    Images and HTML are left out, as ``nbval --nbval-lax`` leaves out what it cannot compare
    as text (a PNG's bytes change with the matplotlib version).
    """
    texts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            texts.append((f"stream {out.get('name')}", out.get("text", "")))
        elif kind in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            if "image/png" not in out["data"]:  # a figure's repr ("<Figure ...>") is noise
                texts.append((kind, out["data"]["text/plain"]))
        elif kind == "error":
            texts.append(("error", f"{out.get('ename')}: {out.get('evalue')}"))
    return [(k, _sanitized(t if isinstance(t, str) else "".join(t))) for k, t in texts]


def _sanitized(text: str) -> str:
    for pattern, replacement in SANITIZE:
        text = re.sub(pattern, replacement, text)
    return text


def compare_checked_outputs(committed: nbformat.NotebookNode,
                            executed: nbformat.NotebookNode) -> list[str]:
    """The marked cells whose outputs in ``executed`` differ from the committed ones.

    Cells are matched by their source (papermill adds an ``injected-parameters`` cell).
    Streams of the same name are joined first, as a kernel may split one print into
    several messages. Returns one message per difference, with both texts; ``[]`` when
    all agree.
    """
    runs = {c.source: c for c in executed.cells if is_checked(c)}
    problems = []
    for cell in (c for c in committed.cells if is_checked(c)):
        ran = runs.get(cell.source)
        if ran is None:
            problems.append(f"marked cell not run: {cell.source[:60]!r}")
            continue
        want, got = _joined(_output_texts(cell)), _joined(_output_texts(ran))
        if want != got:
            problems.append(f"marked cell {cell.source[:60]!r}:\n committed {want}\n now {got}")
    return problems


def _joined(texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    joined: list[tuple[str, str]] = []
    for kind, text in texts:
        if joined and joined[-1][0] == kind and kind.startswith("stream"):
            joined[-1] = (kind, joined[-1][1] + text)
        else:
            joined.append((kind, text))
    return joined


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs and execution counts except in :func:`is_checked` cells."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_checked(cell):
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    return nb


def exercises(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Map each exercise label in the notebook to the ``module:function`` solutions for it."""
    found: dict[str, list[str]] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for label in _EXERCISE_LABEL.findall(cell.source):
                found.setdefault(label, [])
    for cell in nb.cells:
        meta = cell.metadata.get("aigc", {})
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            label = meta.get("exercise")
            if label not in found:
                raise ValueError(f"solution cell names exercise {label!r}, which is not defined")
            found[label].append(meta.get("solution", ""))
    return found


def resolve_solution(spec: str) -> Any:
    """Import ``"module:function"`` and return the function."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"solution must be 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)


def _annotation_text(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _quoted(parameter: inspect.Parameter) -> str:
    return repr(_annotation_text(parameter.annotation))


def stub_source(label: str, spec: str) -> str:
    """The student's stub for the solution ``spec`` of exercise ``label``."""
    fn = resolve_solution(spec)
    signature = inspect.signature(fn)
    params = []
    # Annotations are quoted so the stub runs without the solution module's imports.
    for p in signature.parameters.values():
        text = p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {_quoted(p)}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        params.append(text)
    returns = "" if signature.return_annotation is inspect.Signature.empty \
        else f" -> {_annotation_text(signature.return_annotation)!r}"
    doc = inspect.getdoc(fn) or ""
    doc_lines = "\n".join(f"    {line}" if line else "" for line in doc.splitlines()).lstrip()
    return (
        f"# Exercise {label}: write `{fn.__name__}` yourself, then run the check below.\n"
        f"def {fn.__name__}({', '.join(params)}){returns}:\n"
        f'    r"""{doc_lines}\n    """\n'
        f'    raise NotImplementedError("Exercise {label}: implement {fn.__name__}")\n'
    )


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with every solution replaced by a stub (outputs stripped)."""
    exercises(nb)  # validates that each solution names a defined exercise
    out = strip_outputs(nb)
    cells = []
    for cell in out.cells:
        tags = cell.metadata.get("tags", [])
        if "solution" not in tags:
            cells.append(cell)
        elif cell.cell_type == "code":
            meta = cell.metadata.get("aigc", {})
            stub = nbformat.v4.new_code_cell(stub_source(meta["exercise"], meta["solution"]))
            stub.metadata["tags"] = ["exercise-stub"]
            cells.append(stub)
    out.cells = cells
    nbformat.validate(out)
    return out


def execute(path: Path, out: Path, profile: str = "smoke",
            env: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """Run notebook ``path`` with papermill on ``profile``, writing the result to ``out``.

    ``PROFILE`` is injected as a parameter and ``$AIGC_PROFILE`` set for the kernel, with
    ``env`` added to the kernel's environment for the run only.
    """
    import papermill

    run_env = {"AIGC_PROFILE": profile, **(env or {})}
    old = {k: os.environ.get(k) for k in run_env}
    os.environ.update(run_env)
    try:
        papermill.execute_notebook(str(path), str(out), cwd=str(path.parent),
                                   parameters={"PROFILE": profile}, progress_bar=False)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nbformat.read(out, as_version=4)


def refresh(path: Path) -> None:
    """Execute ``path`` on the smoke profile and keep only the marked cells' outputs."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        executed = execute(path, Path(tmp) / path.name)
    nbformat.write(strip_outputs(executed), path)


def main(argv: Sequence[str] | None = None) -> int:
    """``strip NB...`` (in place), ``refresh NB...`` or ``student NB... --out DIR``."""
    parser = argparse.ArgumentParser(prog="python -m aigc_course.notebook")
    sub = parser.add_subparsers(dest="command", required=True)
    strip = sub.add_parser("strip", help="remove outputs except NBVAL_CHECK_OUTPUT cells")
    strip.add_argument("notebooks", nargs="+", type=Path)
    fresh = sub.add_parser("refresh", help="run on smoke, keep NBVAL_CHECK_OUTPUT outputs")
    fresh.add_argument("notebooks", nargs="+", type=Path)
    student = sub.add_parser("student", help="write student versions (solutions stubbed)")
    student.add_argument("notebooks", nargs="+", type=Path)
    student.add_argument("--out", type=Path, default=Path("_student"))
    args = parser.parse_args(argv)
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if args.command == "strip":
            nbformat.write(strip_outputs(nb), path)
            print(f"stripped {path}")
        elif args.command == "refresh":
            refresh(path)
            print(f"refreshed the checked outputs of {path}")
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(student_version(nb), args.out / path.name)
            print(f"wrote {args.out / path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
