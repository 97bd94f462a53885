"""The name a downloaded file gets: the one asked for, else the origin's suggestion, made safe,
with an image extension in the image bed."""

from __future__ import annotations

import email.message
import unicodedata
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from yarl import URL

from openpan.db.models import SPACE_OSS, OfflineTask
from openpan.services.names import FORBIDDEN, IMAGE_EXTENSIONS, MAX_NAME, extension


def safe_name(name: str) -> str | None:
    """A name an origin suggested, made acceptable: no path, forbidden or control characters,
    shorter than the limit (the extension kept). ``None`` if nothing usable is left."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        "_" if ch in FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in name
    ).strip()
    if not cleaned.strip(".") or cleaned in (".", ".."):
        return None
    if len(cleaned) >= MAX_NAME:
        ext = extension(cleaned)
        keep = MAX_NAME - 1 - (len(ext) + 1 if ext and len(ext) <= 16 else 0)
        cleaned = cleaned[:keep].rstrip() + (f".{ext}" if ext and len(ext) <= 16 else "")
    return cleaned


def name_from_response(headers: Mapping[str, str], urls: Iterable[URL]) -> str | None:
    """``Content-Disposition``'s file name (from an answer's ``headers``), else the last segment
    of the first URL path (the one asked for, then the redirects) that has one."""
    disposition = headers.get("content-disposition")
    if disposition:
        try:
            message = email.message.Message()
            message["content-disposition"] = disposition
            suggested = message.get_filename()
        except Exception:  # a malformed header only means no name from it
            suggested = None
        if suggested and (name := safe_name(str(suggested))):
            return name
    for url in urls:
        segment = unquote(url.path.rsplit("/", 1)[-1])
        if segment and (name := safe_name(segment)):
            return name
    return None


def final_name(task: OfflineTask, sniffed: str | None) -> str:
    """The name the task's file is made under (before a clash makes it ``name(1).ext``)."""
    name = task.file_name or task.origin_name
    if task.space != SPACE_OSS:
        return name or "download"
    name = name or "image"
    if extension(name) in IMAGE_EXTENSIONS:
        return name
    suffix = f".{sniffed or 'jpg'}"
    return name[: MAX_NAME - 1 - len(suffix)] + suffix
