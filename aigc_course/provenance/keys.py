"""Watermark keys on disk: one small file per key, refused when foreign or damaged.

A key is a kind (``"spread_spectrum"``, ``"tree_ring"``, ``"green_list"``), the settings
its detector needs (image shape, strength, radius...) and a secret seed. The file is the
course's checkpoint-style dict ``{"format": "aigc_course.watermark_key/v1", "kind",
"settings"}`` of plain numbers and strings, written atomically and read back with
``torch.load(weights_only=True)``: a pickle with code in it is refused, and so is a key of
another kind (a Tree-Ring key given to the spread-spectrum detector).

Anyone holding the key file can both detect and forge the mark (it is a symmetric secret,
as in every scheme of this chapter); keep it as you would a password.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import torch

from aigc_course.checkpoint import atomic_write

FORMAT = "aigc_course.watermark_key/v1"
KINDS = ("spread_spectrum", "tree_ring", "green_list")


def new_seed() -> int:
    """A fresh secret seed (63 bits from the OS's random source)."""
    return secrets.randbits(63)


def save_key(path: str | Path, kind: str, settings: dict[str, Any]) -> Path:
    """Write a key of ``kind`` with its ``settings`` (must hold an integer ``seed``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if not isinstance(settings.get("seed"), int):
        raise ValueError("a key's settings need an integer 'seed'")
    for name, value in settings.items():
        if not isinstance(value, (int, float, str, bool, list, tuple)):
            raise ValueError(f"key setting {name!r} must be a plain value, got "
                             f"{type(value).__name__}")
    path = Path(path)
    with atomic_write(path) as scratch:
        torch.save({"format": FORMAT, "kind": kind, "settings": dict(settings)}, scratch)
    return path


def load_key(path: str | Path, kind: str) -> dict[str, Any]:
    """The settings of the key of ``kind`` saved at ``path``.

    Raises:
        FileNotFoundError: no file. ValueError: not a key file (corrupt, foreign, a
            pickle with code), or a key of another kind.
    """
    path = Path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no key file at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:                          # noqa: BLE001 (any unpickling error)
        raise ValueError(f"{path} is not a watermark key file ({type(error).__name__}); "
                         "make one with `aigc-course watermark keygen`") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not a watermark key file (format {found!r}, "
                         f"expected {FORMAT!r})")
    if data.get("kind") != kind:
        raise ValueError(f"{path} holds a {data.get('kind')!r} key, not a {kind!r} key")
    settings = data.get("settings")
    if not isinstance(settings, dict) or not isinstance(settings.get("seed"), int):
        raise ValueError(f"{path}: the key's settings are damaged (no integer seed)")
    return settings
