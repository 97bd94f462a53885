"""Rules for names: what a file or directory may be called, and which names are images."""

from __future__ import annotations

import re

from openpan.errors import FieldError

FORBIDDEN = '"\\/:*?|><'
MAX_NAME = 255
IMAGE_EXTENSIONS = frozenset({"png", "gif", "jpeg", "tiff", "webp", "jpg", "tif", "svg", "bmp"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(field: str, name: str) -> str:
    """A valid file or directory name, or a ``FieldError`` saying what is wrong with it."""
    stripped = name.strip()
    if not stripped:
        raise FieldError(field, "不能为空 (must not be empty)")
    if len(name) >= MAX_NAME:
        raise FieldError(
            field, f"要小于{MAX_NAME}个字符 (must be shorter than {MAX_NAME} characters)"
        )
    if any(c in FORBIDDEN for c in name):
        raise FieldError(field, f"不能包含以下任何字符: {FORBIDDEN} (forbidden character)")
    if _CONTROL.search(name):
        raise FieldError(field, "不能包含控制字符 (control characters are not allowed)")
    if stripped in (".", ".."):
        raise FieldError(field, "不能是 . 或 .. (reserved name)")
    return name


def extension(name: str) -> str:
    """The lower-case extension without the dot, or ``""``."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def numbered(name: str, number: int) -> str:
    """``name`` with ``(number)`` before its extension: ``cat.png`` → ``cat(2).png``, ``notes``
    → ``notes(2)``, ``.profile`` → ``.profile(2)``. The stem is shortened where the result would
    otherwise be too long a name (``check_name``), so the result is always a valid name."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    suffix = f"({number}){dot}{ext}"
    return stem[: MAX_NAME - 1 - len(suffix)] + suffix


def check_image_name(field: str, name: str) -> str:
    """A valid name whose extension is one the image bed accepts."""
    check_name(field, name)
    if extension(name) not in IMAGE_EXTENSIONS:
        allowed = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise FieldError(field, f"必须是图片格式: {allowed} (not an image extension)")
    return name
