"""Image variants (thumbnails and web-sized copies) asked for on a public link: what the query
asks (``parse``), the concrete variant it leads to for one image (``plan``), and making it
(``render``, libvips through pyvips).

Sizes are rounded up to a ladder and never beyond the original, so one image has a bounded
number of variants and nobody can fill the store by asking for every width. A variant is in
sRGB, turned upright by its EXIF orientation and carries no metadata (EXIF, XMP, GPS);
animated GIF and WebP stay animated in gif and webp variants. The original is never changed.

Not wired to the links yet: serving, storing and making each variant once are the next step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyvips

DEFAULT_LADDER = (64, 128, 256, 512, 1024, 2048, 4096)
DEFAULT_QUALITY = 80
DEFAULT_MAX_PIXELS = 100_000_000
FITS = ("contain", "cover", "fill")
FORMATS = ("webp", "avif", "jpeg", "png", "gif")
# Formats browsers show: a variant keeps the original's format when it is one of these.
_SHOWN = frozenset(FORMATS)
_ANIMATED = frozenset({"gif", "webp"})
_LOSSY = frozenset({"webp", "avif", "jpeg"})
_PARAMS = ("w", "h", "fit", "format", "q")
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
    if not any(name in query for name in _PARAMS):
        return None
    return Ask(
        width=_integer(query, "w", 1, _MAX_SIDE),
        height=_integer(query, "h", 1, _MAX_SIDE),
        fit=_choice(query, "fit", FITS) or "contain",
        format=_choice(query, "format", (*FORMATS, "auto")),
        quality=_integer(query, "q", 1, 100),
    )


def on_ladder(size: int, ladder: Sequence[int]) -> int:
    """The smallest rung at least ``size``; the top rung when ``size`` is above it."""
    rungs = sorted(ladder)
    return next((rung for rung in rungs if rung >= size), rungs[-1])


def _format(asked: str | None, source: Source, accept: str) -> str:
    if asked == "auto":
        accepted = accept.lower()
        if "image/avif" in accepted:
            return "avif"
        if "image/webp" in accepted:
            return "webp"
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
    width = None if ask.width is None else min(on_ladder(ask.width, ladder), source.width)
    height = None if ask.height is None else min(on_ladder(ask.height, ladder), source.height)
    fit = ask.fit if width is not None and height is not None else "contain"
    format = _format(ask.format, source, accept)
    return Variant(
        width=width,
        height=height,
        fit=fit,
        format=format,
        quality=ask.quality or DEFAULT_QUALITY,
        animated=source.pages > 1 and format in _ANIMATED,
    )


def read_source(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Source:
    """Size (upright, as shown), format and frames of the image at ``path``, from its header
    (nothing decoded).
    ``VariantRefused`` when it is no image libvips reads, or has more than ``max_pixels``."""
    try:
        image = pyvips.Image.new_from_file(path, access="sequential")
        loader = str(image.get("vips-loader"))
        pages = int(image.get("n-pages")) if image.get_typeof("n-pages") else 1
    except pyvips.Error as exc:
        raise VariantRefused(f"not an image libvips can read: {_first_line(exc)}") from exc
    height = image.height
    if image.get_typeof("page-height"):
        height = int(image.get("page-height"))  # one frame of an animation
    width = image.width
    if width * height * pages > max_pixels:
        raise VariantRefused(f"too many pixels: {width}x{height}x{pages} > {max_pixels}")
    if image.get_typeof("orientation") and int(image.get("orientation")) in (5, 6, 7, 8):
        width, height = height, width  # turned by 90 degrees: the size as it is shown
    return Source(width, height, _LOADERS.get(loader, loader), pages)


def render(path: str, variant: Variant) -> bytes:
    """Make ``variant`` of the image at ``path``: the encoded bytes. ``VariantRefused`` when
    the image does not decode."""
    options: dict[str, object] = {"height": variant.height or _MAX_SIDE}
    if variant.fit == "cover":
        options["crop"] = "centre"
    elif variant.fit == "fill":
        options["size"] = "force"
    # Every frame of an animation is read only when the variant stays animated.
    source = f"{path}[n=-1]" if variant.animated else path
    try:
        # thumbnail turns the image upright by its orientation and into sRGB, and shrinks while
        # it decodes where the format allows (JPEG, WebP): the whole image is never in memory.
        # A cut-off file fails rather than becoming a variant with a grey end.
        image = pyvips.Image.thumbnail(
            source, variant.width or _MAX_SIDE, fail_on="truncated", **options
        )
        save = getattr(image, f"{_SAVERS[variant.format]}_buffer")
        keep = pyvips.enums.ForeignKeep.NONE  # no EXIF, XMP, IPTC, ICC or other metadata
        if variant.format == "avif":  # heifsave writes HEVC unless told AV1
            return bytes(save(Q=variant.quality, keep=keep, compression="av1"))
        if variant.format in _LOSSY:
            return bytes(save(Q=variant.quality, keep=keep))
        return bytes(save(keep=keep))
    except pyvips.Error as exc:
        raise VariantRefused(f"the image does not decode: {_first_line(exc)}") from exc


def _first_line(exc: pyvips.Error) -> str:
    return (str(exc).strip().splitlines() or ["unknown error"])[0][:200]
