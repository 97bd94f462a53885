"""The PUT of a slice to a presigned URL: no token, any Content-Type, an empty 200 when stored.

Refusals (bad signature, wrong size, closed upload) are answered 400/403/404 with the envelope
in the body: a presigned URL belongs to the object store, whose clients look at the status.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from openpan.api.body import BodyReader
from openpan.api.envelope import failure
from openpan.api.routing import context
from openpan.errors import NotFound, OpenpanError
from openpan.services import uploads

log = logging.getLogger("openpan.api")


async def put_slice(request: Request) -> Response:
    ctx = context(request)
    upload_id = request.path_params["upload_id"]
    reader = BodyReader(request)
    try:
        number = _int(request.path_params["number"], "sliceNo")
        expires = _int(request.query_params.get("expires", ""), "expires")
        signature = request.query_params.get("signature", "")
        await uploads.receive_slice(
            ctx, upload_id, number, expires, signature, reader.chunks(), reader.declared
        )
    except NotFound as exc:
        return await _refused(reader, failure(exc.code, exc.message, status_code=404))
    except OpenpanError as exc:
        status = 403 if exc.message.startswith(("signature", "expires")) else 400
        return await _refused(reader, failure(exc.code, exc.message, status_code=status))
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening; the slice did not count
    except Exception:
        # Not the client's fault: a status an object-store client retries on (a 200 here
        # would tell it the slice is stored).
        log.exception(
            "storing slice %s of upload %s failed", request.path_params["number"], upload_id
        )
        return failure(1, "slice 分片保存失败, 请重试 (storage failed, retry)", status_code=503)
    return Response(status_code=200)


async def _refused(reader: BodyReader, answer: Response) -> Response:
    """``answer``, once the slice's unread bytes are read away (so the client hears it)."""
    if not await reader.discard():
        answer.headers["connection"] = "close"
    return answer


def _int(text: str, field: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise OpenpanError(f"{field} 无效 (invalid)")
    return int(text)


routes = [Route("/upload/slice/{upload_id}/{number}", put_slice, methods=["PUT", "POST"])]
