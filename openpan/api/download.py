"""Download links of cloud-disk files: ``/api/v1/file/download_info`` hands one out, and
``GET {public}/download/{fileId}/{name}?expires=…&signature=…`` serves it (no token: the
signature is the authority), through the same ``blob_response`` as the image bed's links.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from openpan.api.disk import file_id
from openpan.api.params import Params
from openpan.api.routing import context, endpoint
from openpan.api.serving import blob_response, not_found
from openpan.db.models import User
from openpan.errors import NotFound, OpenpanError
from openpan.services import download_links


@endpoint("/api/v1/file/download_info")
async def download_info(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    url = await download_links.download_url(ctx, user, file_id(params, "fileId", "fileID"))
    return {"downloadUrl": url}


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


async def serve_link(request: Request) -> Response:
    ctx = context(request)
    number = _number(request.path_params["file_id"])
    expires = _number(request.query_params.get("expires", ""))
    signature = request.query_params.get("signature", "")
    if number is None:
        return not_found()
    if expires is None or not signature:
        return PlainTextResponse("403 Forbidden: unsigned link", status_code=403)
    try:
        opened = await download_links.open_link(ctx, number, expires, signature)
    except NotFound:
        return not_found()
    except OpenpanError as exc:
        return PlainTextResponse(f"403 Forbidden: {exc.message}", status_code=403)
    file = opened.file
    return await blob_response(
        request,
        ctx,
        key=opened.key,
        size=file.size,
        etag=file.etag,
        modified=file.updated_at,
        media_type=mimetypes.guess_type(file.name)[0] or "application/octet-stream",
        download_name=file.name,
        immutable=False,
        on_sent=lambda sent: download_links.count_sent(ctx, opened, sent),
    )


routes = [
    download_info,
    Route(download_links.PATH_PREFIX + "/{file_id}/{name}", serve_link, methods=["GET", "HEAD"]),
]
