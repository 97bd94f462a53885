"""Public direct links of image-bed files: ``GET /{uid}/{fileId}.{ext}``, no token.

They are the hottest path of an image host, so the application (``DirectLinksFirst``) answers
them in raw ASGI before Starlette's middleware and routing: one regular expression, cached
lookups (``services.public_links``) and ``send_blob``. Everything else goes on to the routes.

A query asking for a variant (``?w=256&format=webp``, ``services.variants``) is answered with
that variant, stored once (``services.variant_store``) and then sent like any blob: ETag,
ranges, traffic and the owner's access rules as for the original.
"""

from __future__ import annotations

import logging
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from openpan.api.serving import BlobInfo, not_found, send_blob, send_plain
from openpan.services import public_links, variant_store, variants
from openpan.services.context import Context
from openpan.services.traffic import FileTraffic

log = logging.getLogger("openpan.api")

# /{uid}/{fileId}.{ext}: IDs are base36, extensions short; anything else is not a link.
_LINK = re.compile(r"/([0-9]{1,18})/([0-9A-Za-z]{1,64})(?:\.([0-9A-Za-z]{1,32}))?")

# The blob description (with its prepared headers) of each recently served file, reused for as
# long as the link cache hands out the same lookup.
_blobs: dict[int, tuple[public_links.LinkedFile, BlobInfo]] = {}

# The stored variants recently served, by original's key, query and preferred format: a hot
# thumbnail costs what a hot original does.
_variant_blobs: dict[tuple[str, bytes, str | None], BlobInfo] = {}

MEDIA_TYPES = {
    "png": "image/png",
    "gif": "image/gif",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "tiff": "image/tiff",
    "tif": "image/tiff",
    "webp": "image/webp",
    "svg": "image/svg+xml",
    "bmp": "image/bmp",
}


def media_type(ext: str) -> str:
    """The Content-Type of an image-bed file, from its stored extension."""
    return MEDIA_TYPES.get(ext, "application/octet-stream")


class DirectLinksFirst(Starlette):
    """The application: direct links are answered before Starlette's middleware and routing
    see them (they are the hottest path by far); everything else goes the usual way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            match = _LINK.fullmatch(scope["path"])
            if match is not None:
                scope["app"] = self
                await serve_link(scope, receive, send, *match.groups())
                return
        await super().__call__(scope, receive, send)


async def serve_link(
    scope: Scope, receive: Receive, send: Send, uid: str, oss_id: str, ext: str | None
) -> None:
    """Answer one direct-link request (``scope["app"]`` is the running application)."""
    head = scope["method"] == "HEAD"
    host = ""
    referer = None
    accept = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"referer":
            referer = value.decode("latin-1")
        elif name == b"accept":
            accept = value
    try:
        ctx: Context = scope["app"].state.ctx
        linked = await public_links.open_link(
            ctx,
            user_id=int(uid),
            oss_id=oss_id,
            ext=ext or "",
            path=scope["path"],
            host=host,
            referer=referer,
            query=scope["query_string"].decode("latin-1"),
        )
    except public_links.LinkNotFound:
        await send_plain(send, 404, b"404 Not Found", head)
        return
    except public_links.LinkForbidden:
        await send_plain(send, 403, b"403 Forbidden", head)
        return
    except Exception:
        # The database is unreachable or similar: say so plainly, never with a stack trace.
        log.exception("direct link %s failed", scope["path"])
        await send_plain(send, 503, b"503 Service Unavailable", head)
        return
    traffic = ctx.part(FileTraffic)
    file_id = linked.file_id
    query = scope["query_string"]
    if query:
        try:
            variant = await _variant(ctx, linked, query, accept)
        except variants.VariantError as exc:
            await send_plain(send, 400, b"400 Bad Request: %s" % str(exc).encode(), head)
            return
        except Exception:
            log.exception("variant of %s failed", scope["path"])
            await send_plain(send, 503, b"503 Service Unavailable", head)
            return
        if variant is not None:
            await send_blob(
                scope, receive, send, ctx, variant, lambda sent: traffic.add(file_id, sent)
            )
            return
    known = _blobs.get(linked.file_id)
    if known is not None and known[0] is linked:
        blob = known[1]
    else:
        blob = BlobInfo(
            linked.key, linked.size, linked.etag, linked.modified, media_type(linked.ext)
        )
        if len(_blobs) >= 10_000:
            _blobs.clear()
        _blobs[linked.file_id] = (linked, blob)
    await send_blob(scope, receive, send, ctx, blob, lambda sent: traffic.add(file_id, sent))


async def _variant(
    ctx: Context, linked: public_links.LinkedFile, query: bytes, accept: bytes
) -> BlobInfo | None:
    """The stored variant the link's ``query`` asks for, made if need be; ``None`` for the
    original (no variant asked for, or none this image can have). ``VariantError`` for a query
    that makes no sense."""
    # Only the format the Accept header leads to matters, and only for format=auto.
    preferred = variants.preferred(accept.decode("latin-1")) if b"auto" in query.lower() else None
    cached = (linked.key, query, preferred)
    blob = _variant_blobs.get(cached)
    if blob is not None:
        return blob
    ask = variants.parse_query(query.decode("latin-1"))
    if ask is None or linked.ext == "svg":  # an SVG is never rasterised: always the original
        return None
    source = await variant_store.image_source(ctx, linked.blob_id, linked.key)
    if source is None:
        return None
    variant = variants.plan(
        ask, source, accept=accept.decode("latin-1"), ladder=ctx.settings.variant_ladder
    )
    stored = await variant_store.stored_variant(ctx, linked.blob_id, linked.key, variant)
    if stored is None:
        return None
    blob = BlobInfo(
        stored.key,
        stored.size,
        stored.md5,
        stored.created,
        stored.media_type,
        vary_accept=ask.format == "auto",
    )
    if len(_variant_blobs) >= 10_000:
        _variant_blobs.clear()
    _variant_blobs[cached] = blob
    return blob


async def _no_such_link(request: Request) -> Response:
    return not_found()


# Paths shaped like a link but not matching one (``/a/b``) get the same plain 404.
routes = [Route("/{uid}/{name}", _no_such_link, methods=["GET", "HEAD"])]
