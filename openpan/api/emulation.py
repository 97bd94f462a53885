"""Emulator mode around the whole application: every request but the control API's is checked
against the fault rules and written to the journal. Outermost, so the rules reach what the
application answers before its own routing — slice PUTs and public links included.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openpan import ids
from openpan.clock import utcnow
from openpan.services.emulation import Emulation, Fault

CONTROL = "/_openpan/"
# Query keys whose values the journal never shows.
SECRET_KEYS = ("secret", "token", "auth_key", "password", "signature", "key")
# How much of an answer is read to find its envelope code.
ENVELOPE_PEEK = 64 * 1024


def redact(query: str) -> str:
    """The query string with the values of secret-looking keys replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(k, "***" if any(s in k.lower() for s in SECRET_KEYS) else v) for k, v in pairs]
    return urlencode(shown)


def client_of(headers: dict[bytes, bytes]) -> str:
    """The clientID a bearer token claims (read, not verified: the API verifies it)."""
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or token.count(".") != 2:
        return ""
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return ""
    found = claims.get("client_id", "") if isinstance(claims, dict) else ""
    return found if isinstance(found, str) else ""


class Emulated:
    """``app`` with the emulator's faults and journal (``state`` found on the running app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # ``state`` and the rest, as the wrapped app has them

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL):
            await self.app(scope, receive, send)
            return
        state: Emulation = self.app.state.ctx.part(Emulation)  # type: ignore[attr-defined]
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        seen: dict[str, Any] = {"status": 0, "code": None, "trace": "", "peek": b""}
        rule = state.match(method, path)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-traceid":
                        seen["trace"] = value.decode("latin-1")
                    if name.lower() == b"content-type":
                        seen["json"] = value.startswith(b"application/json")
            elif (
                message["type"] == "http.response.body"
                and seen.get("json")
                and len(seen["peek"]) < ENVELOPE_PEEK
            ):
                seen["peek"] += message.get("body", b"")[:ENVELOPE_PEEK]
            await send(message)

        try:
            if rule is None:
                await self.app(scope, receive, watch)
            else:
                await self._fault(rule, scope, receive, send, watch)
        finally:
            state.journal.append(
                {
                    "time": utcnow().isoformat(timespec="milliseconds") + "Z",
                    "method": method,
                    "path": path,
                    "query": redact(scope.get("query_string", b"").decode("latin-1")),
                    "status": seen["status"],
                    "code": _code(seen["peek"]),
                    "durationMs": round((time.perf_counter() - started) * 1000, 1),
                    "clientID": client_of(headers),
                    "traceID": seen["trace"],
                    **({"fault": rule.id} if rule is not None else {}),
                }
            )

    async def _fault(
        self, rule: Fault, scope: Scope, receive: Receive, send: Send, watch: Send
    ) -> None:
        if rule.delay_ms is not None:
            await asyncio.sleep(rule.delay_ms / 1000)
            await self.app(scope, receive, watch)
        elif rule.error is not None:
            trace = ids.trace_id()
            body = json.dumps(
                {"code": rule.error[0], "message": rule.error[1], "data": None, "x-traceID": trace},
                ensure_ascii=False,
            ).encode()
            await _answer(watch, 200, body, b"application/json", trace)
        elif rule.status is not None:
            await _answer(watch, rule.status, b"", b"text/plain", "")
        else:
            await _drop(send)


async def _answer(send: Send, status: int, body: bytes, media: bytes, trace: str) -> None:
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    if trace:
        headers.append((b"x-traceid", trace.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    """Close the connection with no answer at all. uvicorn's ``send`` is a method of the
    request's cycle, which holds the transport; closing it, then letting the loop notice,
    makes the server see a client gone rather than a missing answer."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("emulated drop")  # another server: it gets no answer
    transport.close()
    await asyncio.sleep(0.01)


def _code(peek: bytes) -> int | None:
    if not peek:
        return None
    try:
        answer = json.loads(peek)
    except (ValueError, UnicodeDecodeError):
        return None
    code = answer.get("code") if isinstance(answer, dict) else None
    return code if isinstance(code, int) else None
