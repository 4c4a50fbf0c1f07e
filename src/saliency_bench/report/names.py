"""The report's file names: the HTML pages, and file-name-safe stems of image ids, method ids and
layer names (the figures' names) with their inverse. Kept free of torch, matplotlib and pandas:
the Snakefile's parse reads these names, in every cluster job too."""
from __future__ import annotations

import re
from typing import Sequence

from ..data import IMAGE_EXTENSIONS
from ..errors import require

PAGES = ("summary.html", "per_image.html", "introduction.html")


def file_stem(name: str) -> str:
    """A file-name-safe stem for an image id, method id or layer name.

    'class_a/img 01.png' -> 'class_a__img_01': the image extension is dropped, '/' becomes
    '__', anything outside [A-Za-z0-9._-] becomes '_'.
    """
    stem = name
    if stem.lower().endswith(IMAGE_EXTENSIONS):
        stem = stem.rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem.replace("/", "__"))
    return stem.strip(".") or "_"


def split_stem(stem: str, suffixes: Sequence[str]) -> tuple[str, str]:
    """'<image>-<suffix>' -> (image, suffix): the inverse of the writers' names, for the report's labels.

    Method ids and layer names may contain '-', so the suffix is the longest of the known
    `suffixes` (as `file_stem` writes them) that ends the stem; (stem, "") when none does.
    """
    for suffix in sorted({file_stem(s) for s in suffixes}, key=len, reverse=True):
        if stem.endswith(f"-{suffix}") and len(stem) > len(suffix) + 1:
            return stem[: -len(suffix) - 1], suffix
    return stem, ""


def unique_stems(names: Sequence[str]) -> dict[str, str]:
    """`file_stem` of each name; two names with the same stem would overwrite each other's figures."""
    stems: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name in names:
        stem = file_stem(name)
        require(owner.setdefault(stem, name) == name,
                f"ids {owner[stem]!r} and {name!r} give the same figure file name {stem!r}; rename one of them")
        stems[name] = stem
    return stems
