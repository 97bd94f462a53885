"""What kind of image some bytes are, judged by the bytes themselves, not by their name.

The image bed takes images only: a file called ``cat.jpg`` whose bytes are an HTML error page is
refused, whatever its name says.
"""

from __future__ import annotations

import re

# Enough of the start of a file to tell what it is (an SVG may open with a long XML prologue).
SNIFF_BYTES = 4096

_SVG_PROLOGUE = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*|<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg[\s>/]",
    re.IGNORECASE | re.DOTALL,
)


def sniff_image(head: bytes) -> str | None:
    """The extension of the image format ``head`` (a file's first bytes) starts, or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if _SVG_PROLOGUE.match(head[:SNIFF_BYTES]):
        return "svg"
    return None
