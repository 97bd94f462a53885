"""Video transcoding endpoints of the real service (``/api/v1/transcode/*``,
``/api/v1/video/transcode/list`` and the direct-link space's transcoding calls), which openpan
does not provide: openpan stores and serves bytes, it does not transcode video.

Clients call them (p123client has a method for each, see ``docs/api-notes.md``), and an HTTP
404 is what they report as "authorization failed". So each answers the envelope after the
usual token check: the ones that list or report answer code 0 with nothing in them (there are
no transcoded files), the ones that would start or fetch something answer code 1 saying why.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from openpan.api.params import Params
from openpan.api.routing import endpoint
from openpan.db.models import User
from openpan.errors import OpenpanError

NOT_PROVIDED = "openpan 不提供视频转码 (openpan does not transcode video)"

# Listing and reporting: nothing to list. (The real answers' fields are not documented where
# we could read them; ``list``/``total`` is how the service's other lists answer.)
_EMPTY = (
    "/api/v1/video/transcode/list",
    "/api/v1/transcode/folder/info",
    "/api/v1/transcode/video/record",
    "/api/v1/transcode/video/resolutions",
    "/api/v1/transcode/video/result",
    "/api/v1/direct-link/queryTranscode",
)
# Starting, deleting or fetching transcoded output: refused.
_REFUSED = (
    "/api/v1/transcode/video",
    "/api/v1/transcode/upload/from_cloud_disk",
    "/api/v1/transcode/delete",
    "/api/v1/transcode/file/download",
    "/api/v1/transcode/file/download/all",
    "/api/v1/transcode/m3u8_ts/download",
    "/api/v1/direct-link/doTranscode",
    "/api/v1/direct-link/get/m3u8",
)


def _empty(path: str) -> Route:
    async def nothing(request: Request, params: Params, user: User) -> dict[str, Any]:
        return {"list": [], "total": 0}

    nothing.__name__ = "transcode_" + path.rsplit("/", 1)[-1]
    return endpoint(path)(nothing)


def _refused(path: str) -> Route:
    async def refuse(request: Request, params: Params, user: User) -> None:
        raise OpenpanError(NOT_PROVIDED)

    refuse.__name__ = "transcode_" + path.rsplit("/", 1)[-1]
    return endpoint(path)(refuse)


routes = [*(_empty(p) for p in _EMPTY), *(_refused(p) for p in _REFUSED)]
