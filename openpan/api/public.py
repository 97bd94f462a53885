"""Public direct links of image-bed files: ``GET /{uid}/{fileId}.{ext}``, no token."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openpan.api.routing import context
from openpan.api.serving import blob_response, not_found
from openpan.db.models import SPACE_OSS, Blob, File


async def direct_link(request: Request) -> Response:
    ctx = context(request)
    user_id = request.path_params["uid"]
    oss_id, _, _ext = request.path_params["name"].partition(".")
    if not user_id.isdigit() or len(user_id) > 18 or not oss_id or len(oss_id) > 64:
        return not_found()
    async with ctx.db.read() as session:
        row = (
            await session.execute(
                select(File, Blob.key)
                .join(Blob, Blob.id == File.blob_id)
                .where(
                    File.oss_id == oss_id,
                    File.user_id == int(user_id),
                    File.space == SPACE_OSS,
                    File.is_dir.is_(False),
                )
            )
        ).first()
    if row is None:
        return not_found()
    file, key = row
    return await blob_response(
        request,
        ctx,
        key=key,
        size=file.size,
        etag=file.etag,
        modified=file.created_at,
        media_type=_media_type(file.ext),
    )


def _media_type(ext: str) -> str:
    return {
        "png": "image/png",
        "gif": "image/gif",
        "jpeg": "image/jpeg",
        "jpg": "image/jpeg",
        "tiff": "image/tiff",
        "tif": "image/tiff",
        "webp": "image/webp",
        "svg": "image/svg+xml",
        "bmp": "image/bmp",
    }.get(ext, "application/octet-stream")


routes = [Route("/{uid}/{name}", direct_link, methods=["GET", "HEAD"])]
