"""``/api/v1/access_token``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from openpan.api.params import Params
from openpan.api.routing import context, limiter, public_endpoint
from openpan.clock import format_rfc3339
from openpan.services import tokens


@public_endpoint("/api/v1/access_token")
async def access_token(request: Request, params: Params) -> dict[str, Any]:
    ctx = context(request)
    client_id = params.string("clientID", "client_id", max_len=128, allow_empty=False)
    client_secret = params.string("clientSecret", "client_secret", max_len=256, allow_empty=False)
    await limiter(request).check(client_id, "/api/v1/access_token")
    token, expires = await tokens.issue_token(ctx, client_id, client_secret)
    return {"accessToken": token, "expiredAt": format_rfc3339(expires, ctx.settings.timezone)}


routes = [access_token]
