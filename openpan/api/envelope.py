"""The 123pan envelope: every API answer is HTTP 200 with ``{code, message, data, x-traceID}``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from openpan import ids


class EnvelopeResponse(Response):
    media_type = "application/json"

    def __init__(self, code: int, message: str, data: Any, status_code: int = 200) -> None:
        trace = ids.trace_id()
        body = {"code": code, "message": message, "data": data, "x-traceID": trace}
        super().__init__(
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            status_code=status_code,
            headers={"x-traceID": trace},
        )


def ok(data: Any = None) -> EnvelopeResponse:
    return EnvelopeResponse(0, "ok", data)


def failure(code: int, message: str, status_code: int = 200) -> EnvelopeResponse:
    return EnvelopeResponse(code, message, None, status_code)
