"""Sending a blob to a client: the one path behind direct links and download links.

Both the image bed's public links and the cloud disk's temporary download links answer through
``blob_response``, so ranges, HEAD, validators, caching headers and traffic accounting behave the
same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from openpan.services.context import Context


def not_found() -> Response:
    """The plain 404 of a link that leads nowhere (no envelope: this is not the API)."""
    return PlainTextResponse("404 Not Found", status_code=404)


async def blob_response(
    request: Request,
    ctx: Context,
    *,
    key: str,
    size: int,
    etag: str,
    modified: datetime,
    media_type: str,
    download_name: str | None = None,
    immutable: bool = True,
    on_sent: Callable[[int], None] | None = None,
) -> Response:
    """Serve the blob ``key`` (``size`` bytes, md5 ``etag``, last modified ``modified`` in naive
    UTC) to ``request``.

    ``download_name`` adds ``Content-Disposition: attachment``; ``on_sent(n)`` is told how many
    body bytes actually went out (for traffic accounting).
    """
    path = ctx.store.local_path(key)
    if path is None or not path.is_file():
        return not_found()
    headers = {"X-Content-Type-Options": "nosniff", "ETag": f'"{etag}"'}
    return FileResponse(
        path,
        media_type=media_type,
        headers=headers,
        filename=download_name,
        content_disposition_type="attachment",
    )
