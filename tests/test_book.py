"""The book: its table of contents matches the files, and it builds without a warning.

The build runs with notebook execution off (the notebook tests execute them) and with
``-W -n --keep-going``, so a broken cross-reference, a missing page, an unknown citation,
glossary term or equation label, or an unknown MyST directive or role fails here rather
than in ``make book``. (Math is typeset by MathJax in the browser: Sphinx does not check
the LaTeX inside ``$...$``.) Jupyter Book 1 has no ``-D``
override, so the test writes a copy of ``_config.yml`` with ``execute_notebooks: "off"``
and passes it with ``--config``; the build goes to a temporary directory, so the
developer's ``_build`` and its execution cache are left alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".md", ".ipynb")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _toc_files(entry: dict) -> Iterator[str]:
    """Every ``file:`` under a jb-book toc entry (root, parts, chapters, sections)."""
    if "file" in entry:
        yield entry["file"]
    for key in ("parts", "chapters", "sections"):
        for child in entry.get(key, []) or []:
            yield from _toc_files(child)


def toc_files() -> list[str]:
    """The documents listed in ``_toc.yml``, without suffix, root first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert toc.get("format") == "jb-book", "_toc.yml must use format: jb-book"
    files = [toc["root"], *_toc_files({k: v for k, v in toc.items() if k != "root"})]
    return [str(Path(f).with_suffix("")) if Path(f).suffix in SUFFIXES else f for f in files]


def test_toc_lists_existing_files_once() -> None:
    files = toc_files()
    missing = [f for f in files if not any((ROOT / f"{f}{s}").is_file() for s in SUFFIXES)]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    duplicates = sorted({f for f in files if files.count(f) > 1})
    assert not duplicates, f"_toc.yml lists files more than once: {duplicates}"


def test_every_notebook_and_page_is_in_the_toc() -> None:
    listed = set(toc_files())
    sources = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md"))
    unlisted = [
        p.relative_to(ROOT).as_posix() for p in sources
        if p.relative_to(ROOT).with_suffix("").as_posix() not in listed
    ]
    assert not unlisted, (
        f"not in _toc.yml, so not in the book (the build skips files outside the toc): "
        f"{unlisted}"
    )


def test_notebooks_are_named_nn_slug() -> None:
    bad = [p.name for p in (ROOT / "notebooks").glob("*.ipynb")
           if not (p.name[:2].isdigit() and p.name[2] == "_")]
    assert not bad, f"chapter notebooks are named NN_slug.ipynb: {bad}"


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return str(exe)
    found = shutil.which("jupyter-book")
    if found is None:
        pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    return found


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config_path = tmp_path / "_config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"

    cmd = [_jupyter_book(), "build", str(ROOT), "--config", str(config_path),
           "--path-output", str(out), "-W", "-n", "--keep-going"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    log = ANSI.sub("", proc.stdout + proc.stderr)
    problems = [line for line in log.splitlines()
                if "WARNING:" in line or "ERROR:" in line or "CRITICAL:" in line]
    tail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0 and not problems, (
        f"book build failed (exit {proc.returncode}, {seconds:.0f} s); "
        f"{len(problems)} warning(s)/error(s):\n" + "\n".join(problems[:40])
        + f"\n--- log tail ---\n{tail}"
    )
    assert (out / "_build" / "html" / "index.html").is_file(), tail
    for doc in toc_files():
        assert (out / "_build" / "html" / f"{doc}.html").is_file(), f"{doc}.html not built"
