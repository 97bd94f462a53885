"""Public direct links of image-bed files: ``GET /{uid}/{fileId}.{ext}``, no token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from sqlalchemy import select

from openpan.api.routing import context
from openpan.db.models import SPACE_OSS, Blob, File



async def direct_link(request: Request) -> Response:
    ctx = context(request)
    user_id = request.path_params["uid"]
    oss_id, _, _ext = request.path_params["name"].partition(".")
    if not user_id.isdigit() or len(user_id) > 18 or not oss_id or len(oss_id) > 64:
        return PlainTextResponse("404 Not Found", status_code=404)
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
        return PlainTextResponse("404 Not Found", status_code=404)
    file, key = row
    path = ctx.store.local_path(key)
    if path is None or not path.is_file():
        return PlainTextResponse("404 Not Found", status_code=404)
    return FileResponse(path, headers={"X-Content-Type-Options": "nosniff"}, filename=None,
                        media_type=_media_type(file.ext))


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
