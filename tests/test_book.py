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

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
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


def _build(source: Path, config: dict, out: Path, timeout: float = 600
           ) -> tuple[subprocess.CompletedProcess[str], float]:
    """``jupyter-book build source`` with ``config`` written beside ``out``, -W -n.

    The copy of the config lives elsewhere, so its local extensions' folders (relative to
    the repository) are made absolute."""
    out.mkdir(parents=True, exist_ok=True)
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, folder in local.items():
        local[name] = str(ROOT / folder)
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    cmd = [_jupyter_book(), "build", str(source), "--config", str(config_path),
           "--path-output", str(out), "-W", "-n", "--keep-going"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def _problems(proc: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    log = ANSI.sub("", proc.stdout + proc.stderr)
    problems = [line for line in log.splitlines()
                if "WARNING:" in line or "ERROR:" in line or "CRITICAL:" in line]
    return problems, "\n".join(log.splitlines()[-60:])


@pytest.fixture(scope="module")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.
                                                                  CompletedProcess[str], float]:
    """The book built once for the module (execution off), into a temporary folder."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    out = tmp_path_factory.mktemp("book")
    proc, seconds = _build(ROOT, config, out)
    return out / "_build" / "html", proc, seconds


@pytest.mark.slow
def test_book_builds_without_warnings(built_book: tuple[Path, subprocess.CompletedProcess[str],
                                                        float]) -> None:
    html, proc, seconds = built_book
    problems, tail = _problems(proc)
    assert proc.returncode == 0 and not problems, (
        f"book build failed (exit {proc.returncode}, {seconds:.0f} s); "
        f"{len(problems)} warning(s)/error(s):\n" + "\n".join(problems[:40])
        + f"\n--- log tail ---\n{tail}"
    )
    assert (html / "index.html").is_file(), tail
    for doc in toc_files():
        assert (html / f"{doc}.html").is_file(), f"{doc}.html not built"


# --- the book reads offline -------------------------------------------------------------------

#: a script, stylesheet or font loaded from another machine (links to click are fine)
REMOTE_ASSET = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//"
                          r"(?![^\"']*(?:colab|mybinder|github)\.)[^\"']+[\"']", re.I)
#: pages with equations, one per kind of source (a notebook, a book/ page)
MATH_PAGES = ("notebooks/02_foundations", "notebooks/05_diffusion",
              "notebooks/10_deployment", "book/notation")


@contextmanager
def _served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on a free loopback port (what a browser opens): its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:   # noqa: A002
        pass


def _severe(driver: object) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore


def _check_page(driver: object, url: str, wait_for: Callable[..., object]) -> None:
    """Math typeset, no raw TeX delimiters left, every image decoded, no console error."""
    driver.get(url)                                                       # type: ignore
    wait_for(lambda: driver.execute_script(                               # type: ignore
        "return window.MathJax && MathJax.startup && MathJax.startup.promise && "
        "document.querySelectorAll('mjx-container').length"), timeout=30)
    driver.execute_script("return MathJax.startup.promise")               # type: ignore
    text = driver.execute_script("return document.body.innerText")        # type: ignore
    assert "\\(" not in text and "\\[" not in text, f"raw TeX left on {url}"
    broken = driver.execute_script(                                       # type: ignore
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)")
    assert not broken, f"images not decoded on {url}: {broken}"
    severe = _severe(driver)
    assert not severe, f"console errors on {url}: {severe}"


@pytest.mark.slow
def test_built_book_reads_offline(built_book: tuple[Path, subprocess.CompletedProcess[str],
                                                    float],
                                  chromium: object, wait_for: Callable[..., object]) -> None:
    """Every page loads its scripts and styles from the book itself, and chapter pages
    opened in a browser with the network cut show typeset equations and no errors."""
    html, proc, _ = built_book
    assert proc.returncode == 0, _problems(proc)[1]
    remote = {str(p.relative_to(html)): REMOTE_ASSET.findall(p.read_text(encoding="utf-8"))
              for p in html.rglob("*.html")}
    remote = {page: tags for page, tags in remote.items() if tags}
    assert not remote, f"pages load assets from the internet: {remote}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    with _served(html) as url:
        for page in MATH_PAGES:
            _check_page(chromium, f"{url}/{page}.html", wait_for)


WIDGET_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Offline\n\nA slider, $x^2$."},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
         "source": "import ipywidgets\n\nipywidgets.IntSlider(value=3, description='w')"},
        {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["remove-input"]},
         "outputs": [], "source": "from aigc_course.notebook import prose, record\n\n"
                                  "record('fid', {'gan': 4.1234})\n"
                                  "prose('The GAN scores **FID {fid[gan]:.2f}**, $y^2$.')"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.mark.slow
def test_executed_page_renders_offline(tmp_path: Path, chromium: object,
                                       wait_for: Callable[..., object]) -> None:
    """The book's widget settings (``nb_ipywidgets_js``, the vendored bundle) and its
    rendering of displayed Markdown on an executed page: the slider renders with the
    network cut, and a :func:`~aigc_course.notebook.prose` sentence reads as prose, its
    recorded number filled in, its bold and math rendered (MyST), its code hidden. (The
    chapter build runs with execution off, so its pages carry no outputs.)"""
    book = json.loads(json.dumps(yaml.safe_load((ROOT / "_config.yml").read_text())))
    sphinx = book["sphinx"]
    static = [str(ROOT / p) for p in sphinx["config"]["html_static_path"]]
    config = {"title": "offline", "execute": {"execute_notebooks": "force"},
              "sphinx": {"extra_extensions": [e for e in sphinx["extra_extensions"]
                                              if "mathjax" in e],
                         "local_extensions": sphinx["local_extensions"],
                         "config": {"html_static_path": static,
                                    "html_extra_path": [str(ROOT / p) for p in
                                                        sphinx["config"]["html_extra_path"]],
                                    "html_favicon": str(ROOT / sphinx["config"]["html_favicon"]),
                                    "nb_ipywidgets_js": sphinx["config"]["nb_ipywidgets_js"],
                                    "nb_render_markdown_format":
                                        sphinx["config"]["nb_render_markdown_format"]}}}
    source = tmp_path / "src"
    source.mkdir()
    (source / "page.ipynb").write_text(json.dumps(WIDGET_NOTEBOOK), encoding="utf-8")
    (source / "_toc.yml").write_text("format: jb-book\nroot: page\n", encoding="utf-8")
    proc, _ = _build(source, config, tmp_path / "out", timeout=300)
    problems, tail = _problems(proc)
    assert proc.returncode == 0 and not problems, "\n".join(problems) + tail
    html = tmp_path / "out" / "_build" / "html"
    assert not REMOTE_ASSET.findall((html / "page.html").read_text(encoding="utf-8"))
    with _served(html) as url:
        chromium.get(f"{url}/page.html")                                  # type: ignore
        readout = wait_for(lambda: chromium.execute_script(               # type: ignore
            "const r = document.querySelector('.widget-slider .widget-readout');"
            "return r && r.textContent"), timeout=30)           # rendered by the manager
        assert str(readout).strip() == "3"
        sentence = chromium.execute_script(                               # type: ignore
            "const s = [...document.querySelectorAll('.cell_output p')]"
            ".find(p => p.textContent.includes('GAN scores'));"
            "return s && [s.querySelector('strong').textContent,"
            " s.querySelectorAll('mjx-container').length, document.body.innerText]")
        assert sentence and sentence[0] == "FID 4.12" and sentence[1] == 1, sentence
        assert "prose(" not in sentence[2], "the prose cell's code is shown"
        severe = _severe(chromium)
        assert not severe, severe


PROFILE_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Which profile"},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
         "source": "import os\n\nprint('built with', os.environ.get('AIGC_PROFILE', 'auto'))"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.mark.slow
def test_a_profile_change_rebuilds_every_page(tmp_path: Path) -> None:
    """What an instructor does: ``make book`` on cpu, a quick check on smoke after touching a
    notebook, then a plain ``make book`` again. Each page must show the profile of the
    build that made it (the Makefile's ``book`` recipe, on a one-page book; ``-o setup -o
    assets`` keeps make from reinstalling the venv there). Sphinx keeps executed outputs
    in ``_build/.doctrees`` and re-reads no unchanged source, so clearing only the
    execution cache would publish the smoke page again."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    (tmp_path / "notebooks").mkdir()
    page = tmp_path / "notebooks" / "profile.ipynb"
    page.write_text(json.dumps(PROFILE_NOTEBOOK), encoding="utf-8")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: notebooks/profile\n")
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(
        {"title": "profiles", "execute": {"execute_notebooks": "cache"}}))
    venv = Path(sys.executable).parent.parent

    def build(profile: str) -> str:
        proc = subprocess.run(
            [make, "-f", str(ROOT / "Makefile"), "-o", "setup", "-o", "assets", "book",
             f"VENV={venv}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
            env={**os.environ, "AIGC_PROFILE": profile})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        html = (tmp_path / "_build" / "html" / "notebooks" / "profile.html").read_text()
        return re.search(r"built with (\w+)", html).group(1)          # type: ignore[union-attr]

    assert build("cpu") == "cpu"
    page.touch()
    assert build("smoke") == "smoke"
    assert build("cpu") == "cpu"          # not the smoke page the cached doctrees hold
