"""Upload steps that the image bed and the cloud disk (V1) answer alike; only the space differs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from openpan.api.params import Params
from openpan.api.routing import context
from openpan.db.models import User
from openpan.services import uploads


def preupload_id(params: Params) -> str:
    return params.string("preuploadID", max_len=256, allow_empty=False)


async def upload_url(request: Request, params: Params, user: User, space: str) -> dict[str, Any]:
    """``get_upload_url``: the presigned URL of one slice."""
    upload_id = preupload_id(params)
    number = params.integer("sliceNo", minimum=1, maximum=100_000)
    url, several = await uploads.upload_url(context(request), user, upload_id, number, space)
    return {"presignedURL": url, "isMultipart": several}


async def upload_parts(request: Request, params: Params, user: User, space: str) -> dict[str, Any]:
    """``list_upload_parts``: the slices received so far (``partNumber`` is a string)."""
    parts = await uploads.list_parts(context(request), user, preupload_id(params), space)
    return {"parts": [{"partNumber": str(p.number), "size": p.size, "etag": p.md5} for p in parts]}
