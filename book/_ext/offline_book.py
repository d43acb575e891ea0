"""A Sphinx extension of the course's book: pages that load cleanly, offline.

Jupyter Book 1's theme stack leaves three things a browser console reports as errors on
every page, which would hide a real one (tests/test_book.py opens built pages in headless
Chromium and fails on any console error):

* sphinx-thebe's inline configuration is added twice to notebook pages (``const
  THEBE_JS_URL`` declared twice: a SyntaxError) -- identical script entries are dropped;
* pydata-sphinx-theme logs "Got invalid theme mode" when its page template gets no
  ``default_mode`` -- ``auto`` (follow the reader's system setting) is given when none is;
* the browser asks for ``/favicon.ico`` -- the book declares its own icon (``_config.yml``);
* ipywidgets' manager typesets with MathJax 2's ``MathJax.Hub.Queue``, which MathJax 3 does
  not have (a TypeError on every page with a widget) -- ``_static/mathjax2-shim.js``
  forwards it to MathJax 3, loaded after MathJax (both deferred, in order).

MathJax itself comes from ``sphinx-mathjax-offline`` and the widget bundle from
``book/_static/vendor`` (``make assets``); this extension only keeps the pages clean.
"""

from __future__ import annotations

from typing import Any


def _page(app: Any, pagename: str, templatename: str, context: dict[str, Any],
          doctree: Any) -> None:
    if not context.get("default_mode"):          # the template's localStorage fall-back
        context["default_mode"] = "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        # an inline script is added once with filename None and once with "": one script
        key = (str(getattr(script, "filename", script) or ""), str(attributes.get("body", "")),
               tuple(sorted((k, str(v)) for k, v in attributes.items() if k != "body")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _page, priority=900)
    app.add_js_file("mathjax2-shim.js", priority=900, defer="defer")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
