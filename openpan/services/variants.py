"""Image variants (thumbnails and web-sized copies) asked for on a public link: what the query
asks (``parse``), the concrete variant it leads to for one image (``plan``), and making it
(``render``, libvips through pyvips).

Sizes are rounded up to a ladder and never beyond the original, so one image has a bounded
number of variants and nobody can fill the store by asking for every width. A variant is in
sRGB, turned upright by its EXIF orientation and carries no metadata (EXIF, XMP, GPS);
animated GIF and WebP stay animated in gif and webp variants. The original is never changed.

Storing each variant once and serving it are ``services.variant_store`` and ``api.public``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pyvips

from openpan.services.images import SNIFF_BYTES, sniff_image

# libvips' cache of recent operations helps programs that reuse images; a server making each
# variant once gains nothing from it and would hold decoded tiles and open files for it.
pyvips.cache_set_max(0)

DEFAULT_LADDER = (64, 128, 256, 512, 1024, 2048, 4096)
DEFAULT_QUALITY = 80
DEFAULT_MAX_PIXELS = 100_000_000
FITS = ("contain", "cover", "fill")
FORMATS = ("webp", "avif", "jpeg", "png", "gif")
# Formats browsers show: a variant keeps the original's format when it is one of these.
_SHOWN = frozenset(FORMATS)
_ANIMATED = frozenset({"gif", "webp"})
_LOSSY = frozenset({"webp", "avif", "jpeg"})
PARAMS = ("w", "h", "fit", "format", "q")
# The largest number a size may be written as: anything larger is as good as "the original".
_MAX_SIDE = 100_000
_SAVERS = {
    "webp": "webpsave",
    "avif": "heifsave",
    "jpeg": "jpegsave",
    "png": "pngsave",
    "gif": "gifsave",
}
# libvips' loaders, by the format name the API uses.
_LOADERS = {
    "jpegload": "jpeg",
    "pngload": "png",
    "gifload": "gif",
    "webpload": "webp",
    "heifload": "avif",
    "tiffload": "tiff",
    "bmpload": "bmp",
    "magickload": "bmp",
}


class VariantError(ValueError):
    """The query asks for a variant in a way that makes no sense; the message names the
    parameter (a 400 for the link)."""


class VariantRefused(Exception):
    """This image gets no variant (too many pixels, or it does not decode); the original is
    still served."""


class VariantTimedOut(VariantRefused):
    """Making the variant took longer than allowed (perhaps only this time: a busy machine)."""


@dataclass(frozen=True)
class Ask:
    """What a link's query asks for; ``None`` where it says nothing."""

    width: int | None
    height: int | None
    fit: str
    format: str | None  # one of FORMATS or "auto"
    quality: int | None


@dataclass(frozen=True)
class Source:
    """What is known of an original image: its size, format and frames."""

    width: int
    height: int
    format: str
    pages: int = 1


@dataclass(frozen=True)
class Variant:
    """One concrete variant of one image."""

    width: int | None  # the box; None: unbounded on that side
    height: int | None
    fit: str
    format: str
    quality: int
    animated: bool

    @property
    def name(self) -> str:
        """A name for it, the same for the same variant: the tail of its storage key."""
        box = f"w{self.width or 0}h{self.height or 0}"
        animated = "-anim" if self.animated else ""
        return f"{box}-{self.fit}-q{self.quality}{animated}.{self.format}"


def _integer(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise VariantError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise VariantError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    return value


def _choice(query: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    text = query.get(name)
    if text is None:
        return None
    if text.lower() not in allowed:
        raise VariantError(f"{name} must be one of {', '.join(allowed)}, not {text[:40]!r}")
    return text.lower()


def parse(query: Mapping[str, str]) -> Ask | None:
    """The variant a link's query asks for, or ``None`` when it asks for none (the original,
    byte for byte). ``VariantError`` for a value that makes no sense."""
    if not any(name in query for name in PARAMS):
        return None
    return Ask(
        width=_integer(query, "w", 1, _MAX_SIDE),
        height=_integer(query, "h", 1, _MAX_SIDE),
        fit=_choice(query, "fit", FITS) or "contain",
        format=_choice(query, "format", (*FORMATS, "auto")),
        quality=_integer(query, "q", 1, 100),
    )


def parse_query(query: str) -> Ask | None:
    """``parse`` for a raw query string (``w=512&format=webp``): a parameter given twice is
    refused, the others (``auth_key``, a cache buster) are not this module's business."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in PARAMS:
            if name in values:
                raise VariantError(f"{name} is given more than once")
            values[name] = value
    return parse(values)


def on_ladder(size: int, ladder: Sequence[int]) -> int:
    """The smallest rung at least ``size``; the top rung when ``size`` is above it."""
    rungs = sorted(ladder)
    return next((rung for rung in rungs if rung >= size), rungs[-1])


def preferred(accept: str) -> str | None:
    """The modern format an ``Accept`` header admits, best first (``None``: neither)."""
    accepted = accept.lower()
    if "image/avif" in accepted:
        return "avif"
    if "image/webp" in accepted:
        return "webp"
    return None


def _format(asked: str | None, source: Source, accept: str) -> str:
    if asked == "auto":
        best = preferred(accept)
        if best is not None:
            return best
        return source.format if source.format in ("jpeg", "png", "gif") else "jpeg"
    if asked is not None:
        return asked
    return source.format if source.format in _SHOWN else "webp"


def plan(
    ask: Ask,
    source: Source,
    *,
    accept: str = "",
    ladder: Sequence[int] = DEFAULT_LADDER,
) -> Variant:
    """The variant ``ask`` leads to for ``source``: sizes rounded up on ``ladder`` and never
    beyond the original's, the format chosen (``auto`` from ``accept``)."""
    asked_width, asked_height = ask.width, ask.height
    if asked_width is None and asked_height is None:
        # Only a format or a quality asked: the image at most the top rung in either direction,
        # which bounds the work a request can cause like every other variant.
        asked_width = asked_height = max(ladder)
    width = None if asked_width is None else min(on_ladder(asked_width, ladder), source.width)
    height = None if asked_height is None else min(on_ladder(asked_height, ladder), source.height)
    fit = ask.fit if ask.width is not None and ask.height is not None else "contain"
    format = _format(ask.format, source, accept)
    return Variant(
        width=width,
        height=height,
        fit=fit,
        format=format,
        # Quality means nothing to PNG and GIF: one variant, whatever q says.
        quality=(ask.quality or DEFAULT_QUALITY) if format in _LOSSY else 0,
        animated=source.pages > 1 and format in _ANIMATED,
    )


def media_type(variant: Variant) -> str:
    """The Content-Type of ``variant``."""
    return f"image/{variant.format}"


def read_source(path: str) -> Source:
    """Size (upright, as shown), format and frames of the image at ``path``, from its header
    (no pixel is decoded). ``VariantRefused`` when it is no raster image libvips reads."""
    # Only the raster formats the image bed takes reach libvips, judged by their bytes: an
    # SVG (which libvips would hand to librsvg) or anything else is never parsed here.
    with open(path, "rb") as handle:
        sniffed = sniff_image(handle.read(SNIFF_BYTES))
    if sniffed is None or sniffed == "svg":
        raise VariantRefused("not a raster image")
    try:
        image = pyvips.Image.new_from_file(path, access="sequential")
        loader = str(image.get("vips-loader"))
        if loader not in _LOADERS:
            raise VariantRefused(f"not a format variants are made of ({loader})")
        pages = int(image.get("n-pages")) if image.get_typeof("n-pages") else 1
        height = image.height
        if image.get_typeof("page-height"):
            height = int(image.get("page-height"))  # one frame of an animation
        width = image.width
        if image.get_typeof("orientation") and int(image.get("orientation")) in (5, 6, 7, 8):
            width, height = height, width  # turned by 90 degrees: the size as it is shown
    except pyvips.Error as exc:
        raise VariantRefused(f"not an image libvips can read: {_first_line(exc)}") from exc
    return Source(width, height, _LOADERS.get(loader, loader), max(pages, 1))


def check_pixels(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """``VariantRefused`` when ``source`` has more than ``max_pixels`` pixels, all frames
    together (a decompression bomb, or just too big to make variants of)."""
    pixels = source.width * source.height * source.pages
    if pixels > max_pixels:
        raise VariantRefused(
            f"too many pixels: {source.width}x{source.height}x{source.pages} > {max_pixels}"
        )


def render(path: str, variant: Variant, timeout: float = 30.0) -> bytes:
    """Make ``variant`` of the image at ``path``: the encoded bytes. ``VariantRefused`` when
    the image does not decode, or takes longer than ``timeout`` seconds."""
    options: dict[str, object] = {"height": variant.height or _MAX_SIDE, "size": "down"}
    if variant.fit == "cover":
        options["crop"] = "centre"
    elif variant.fit == "fill":
        options["size"] = "force"
    # Every frame of an animation is read only when the variant stays animated.
    source = f"{path}[n=-1]" if variant.animated else path
    stopped: list[bool] = []
    try:
        # thumbnail turns the image upright by its orientation and into sRGB, and shrinks while
        # it decodes where the format allows (JPEG, WebP): the whole image is never in memory.
        # A cut-off file fails rather than becoming a variant with a grey end.
        image = pyvips.Image.thumbnail(
            source, variant.width or _MAX_SIDE, fail_on="truncated", **options
        )
        _limit_time(image, timeout, stopped)
        save = getattr(image, f"{_SAVERS[variant.format]}_buffer")
        keep = pyvips.enums.ForeignKeep.NONE  # no EXIF, XMP, IPTC, ICC or other metadata
        if variant.format == "avif":
            # heifsave writes HEVC unless told AV1. The AV1 encoder cannot be stopped midway,
            # so it runs at a low effort: 4 (the default) takes ten times as long for a 2048-px
            # image (8 s against 0.85 s here) for files about 5 % smaller.
            return bytes(save(Q=variant.quality, keep=keep, compression="av1", effort=2))
        if variant.format in _LOSSY:
            return bytes(save(Q=variant.quality, keep=keep))
        return bytes(save(keep=keep))
    except pyvips.Error as exc:
        if stopped:
            raise VariantTimedOut(f"took longer than {timeout:g} s to make") from exc
        raise VariantRefused(f"the image does not decode: {_first_line(exc)}") from exc


def _limit_time(image: pyvips.Image, timeout: float, stopped: list[bool]) -> None:
    """Stop the evaluation of ``image`` once it has run ``timeout`` seconds (libvips calls
    back here between tiles with how long it has run); ``stopped`` is told."""

    def on_eval(evaluated: pyvips.Image, progress: Any) -> None:
        if progress.run >= timeout and not stopped:
            stopped.append(True)
            evaluated.set_kill(True)

    image.set_progress(True)
    image.signal_connect("eval", on_eval)


def _first_line(exc: pyvips.Error) -> str:
    return (str(exc).strip().splitlines() or ["unknown error"])[0][:200]
