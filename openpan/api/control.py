"""The emulator's control API under ``/_openpan/``: reset, seed, journal, faults, clock,
simulated remote files, switches and review status, for test suites (emulator mode only).

Answers are plain JSON, not the 123pan envelope; bad input is a 4xx with
``{"error": "<field>: <why>"}`` and changes nothing. On a loopback address no token is needed;
on any other the server requires ``Authorization: Bearer $OPENPAN_CONTROL_TOKEN``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openpan import __version__, clock
from openpan.api.routing import context
from openpan.db.models import SPACE_OSS, File, User
from openpan.errors import FieldError, OpenpanError
from openpan.services import emulation_store
from openpan.services.emulation import Emulation, RemoteFile
from openpan.services.public_links import LinkCache

MAX_BODY = 64 * 1024 * 1024  # seeded file contents come base64-encoded in the body
MAX_SEED_SIZE = 1024 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Strict(BaseModel):
    """A control body: unknown fields and wrong types are refused, naming the field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class ContentOrSize(Strict):
    """A body that gives bytes as base64 ``content`` or as a ``size`` to make them up."""

    content: str | None = None
    size: int | None = None

    @model_validator(mode="after")
    def content_or_size(self) -> ContentOrSize:
        if (self.content is None) == (self.size is None):
            raise ValueError("give content (base64) or size, not both")
        return self


class ErrorEffect(Strict):
    code: int
    message: str = Field("emulated fault", max_length=1000)


class FaultBody(Strict):
    method: str = Field("", max_length=10)
    path: str = Field(min_length=1, max_length=1000)
    times: int | None = Field(None, ge=1, le=1_000_000)
    probability: float = Field(1.0, ge=0.0, le=1.0)
    error: ErrorEffect | None = None
    status: int | None = Field(None, ge=100, le=599)
    delay_ms: int | None = Field(None, alias="delayMs", ge=0, le=600_000)
    drop: bool | None = None

    @model_validator(mode="after")
    def one_effect(self) -> FaultBody:
        effects = [self.error, self.status, self.delay_ms, self.drop or None]
        if sum(e is not None for e in effects) != 1:
            raise ValueError("exactly one effect: error, status, delayMs or drop")
        if not self.path.startswith("/"):
            raise ValueError("path must start with /")
        return self


class ResetBody(Strict):
    users: bool = True


class SeedUserBody(Strict):
    name: str = Field(min_length=1, max_length=64)
    client_id: str | None = Field(None, alias="clientID", min_length=8, max_length=64)
    client_secret: str | None = Field(None, alias="clientSecret", min_length=8, max_length=128)
    vip: bool = False


class SeedFileBody(ContentOrSize):
    user: str = Field(min_length=1, max_length=64)
    space: Literal["oss", "disk"] = "oss"
    path: str = Field(min_length=2, max_length=4096)
    size: int | None = Field(None, ge=1, le=MAX_SEED_SIZE)


class SeedBody(Strict):
    users: list[SeedUserBody] = Field(default_factory=list, max_length=1000)
    files: list[SeedFileBody] = Field(default_factory=list, max_length=10_000)


class ClockBody(Strict):
    advance_seconds: float | None = Field(None, alias="advanceSeconds", ge=-(10**9), le=10**9)
    set: datetime | None = None
    reset: bool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=False)

    @model_validator(mode="after")
    def one_change(self) -> ClockBody:
        if sum(v is not None for v in (self.advance_seconds, self.set, self.reset)) != 1:
            raise ValueError("exactly one of advanceSeconds, set, reset")
        if self.set is not None and self.set.tzinfo is None:
            raise ValueError("set needs a time zone (RFC 3339, e.g. 2026-01-01T00:00:00Z)")
        return self


class RemoteBody(ContentOrSize):
    url: str = Field(min_length=8, max_length=4096, pattern=r"^https?://")
    size: int | None = Field(None, ge=0, le=64 * 1024**3)
    status: int = Field(200, ge=100, le=599)
    content_type: str = Field("application/octet-stream", alias="contentType", max_length=200)
    bytes_per_second: int | None = Field(None, alias="bytesPerSecond", ge=1)


class ConfigBody(Strict):
    rate_limits: bool | None = Field(None, alias="rateLimits")
    upload_complete: Literal["async", "sync"] | None = Field(None, alias="uploadComplete")
    async_polls: int | None = Field(None, alias="asyncPolls", ge=0, le=1000)
    random_seed: int | None = Field(None, alias="randomSeed")


class ReviewBody(Strict):
    file_id: str = Field(alias="fileID", min_length=1, max_length=64)
    status: int = Field(ge=0, le=1000)


def _decode(field: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ControlError(400, f"{field}: not base64") from None


async def _body(request: Request, model: type[Strict]) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ControlError(413, f"body: larger than {MAX_BODY} bytes")
    try:
        data = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(400, "body: not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ControlError(400, f"{where}: {first['msg']}") from None


def _checked(request: Request) -> None:
    """Refuse a caller without the control token where one is needed."""
    settings = context(request).settings
    if settings.host in LOOPBACK and not settings.control_token:
        return
    given = request.headers.get("authorization", "")
    expected = f"Bearer {settings.control_token}"
    if not settings.control_token or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ControlError(401, "authorization: Bearer $OPENPAN_CONTROL_TOKEN required")


ControlHandler = Callable[[Request], Awaitable[Any]]


def control(path: str, *methods: str) -> Callable[[ControlHandler], Route]:
    def wrap(handler: ControlHandler) -> Route:
        async def run(request: Request) -> Response:
            try:
                _checked(request)
                result = await handler(request)
            except ControlError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except FieldError as exc:
                return JSONResponse({"error": exc.message}, status_code=400)
            except OpenpanError as exc:
                return JSONResponse({"error": exc.message}, status_code=409)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return Route(path, run, methods=list(methods), name=f"control_{handler.__name__}")

    return wrap


def _state(request: Request) -> Emulation:
    return context(request).part(Emulation)


@control("/_openpan/health", "GET")
async def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "emulator": True}


@control("/_openpan/reset", "POST")
async def reset(request: Request) -> dict[str, Any]:
    body: ResetBody = await _body(request, ResetBody)
    await emulation_store.reset(context(request), keep_users=body.users)
    limiter = request.app.state.limiter
    if hasattr(limiter, "_buckets"):
        limiter._buckets.clear()
    limiter.enabled = True
    return {"reset": True, "users": body.users}


@control("/_openpan/seed", "POST")
async def seed(request: Request) -> dict[str, Any]:
    ctx = context(request)
    body: SeedBody = await _body(request, SeedBody)
    wanted_files = []
    for index, f in enumerate(body.files):
        content = _decode(f"files[{index}].content", f.content) if f.content is not None else None
        emulation_store.split_seed_path(f"files[{index}].path", f.space, f.path)
        wanted_files.append(emulation_store.SeedFile(f.user, f.space, f.path, content, f.size))
    await _check_seed(request, body)
    made = await emulation_store.seed_users(
        ctx,
        [emulation_store.SeedUser(u.name, u.client_id, u.client_secret, u.vip) for u in body.users],
    )
    files = []
    for index, wanted in enumerate(wanted_files):
        path, file_id = await emulation_store.seed_file(ctx, index, wanted)
        files.append({"user": wanted.user, "space": wanted.space, "path": path, "fileID": file_id})
    return {
        "users": [
            {"name": c.name, "clientID": c.client_id, "clientSecret": c.client_secret} for c in made
        ],
        "files": files,
    }


async def _check_seed(request: Request, body: SeedBody) -> None:
    """Everything that could refuse a seed, before any of it is made (nothing half-applied)."""
    ctx = context(request)
    names = [u.name for u in body.users]
    ids = [u.client_id for u in body.users if u.client_id]
    if len(set(names)) != len(names):
        raise ControlError(400, "users: a name appears twice")
    if len(set(ids)) != len(ids):
        raise ControlError(400, "users: a clientID appears twice")
    async with ctx.db.read() as session:
        taken = set(await session.scalars(select(User.name).where(User.name.in_(names))))
        taken_ids = set(
            await session.scalars(select(User.client_id).where(User.client_id.in_(ids)))
        )
        existing = set(
            await session.scalars(
                select(User.name).where(User.name.in_({f.user for f in body.files}))
            )
        )
    for index, user in enumerate(body.users):
        if user.name in taken:
            raise ControlError(409, f"users[{index}].name: user {user.name!r} exists already")
        if user.client_id in taken_ids:
            raise ControlError(409, f"users[{index}].clientID: another user's already")
    seen: set[tuple[str, str, str]] = set()
    for index, f in enumerate(body.files):
        if f.user not in existing and f.user not in names:
            raise ControlError(400, f"files[{index}].user: no such user: {f.user!r}")
        key = (f.user, f.space, f.path.rstrip("/"))
        if key in seen:
            raise ControlError(400, f"files[{index}].path: appears twice")
        seen.add(key)


@control("/_openpan/journal", "GET", "DELETE")
async def journal(request: Request) -> dict[str, Any]:
    state = _state(request)
    if request.method == "DELETE":
        state.journal.clear()
        return {"cleared": True}
    text = request.query_params.get("limit", "")
    if text and not (text.isdigit() and 0 < int(text) <= 1_000_000):
        raise ControlError(400, "limit: a whole number from 1")
    entries = list(state.journal)
    if text:
        entries = entries[-int(text) :]
    return {"requests": entries}


@control("/_openpan/faults", "GET", "POST", "DELETE")
async def faults(request: Request) -> dict[str, Any]:
    state = _state(request)
    if request.method == "GET":
        return {"faults": [f.describe() for f in state.faults]}
    if request.method == "DELETE":
        state.faults = []
        return {"removed": True}
    body: FaultBody = await _body(request, FaultBody)
    rule = state.add_fault(
        method=body.method.upper(),
        path=body.path,
        times=body.times,
        probability=body.probability,
        error=(body.error.code, body.error.message) if body.error else None,
        status=body.status,
        delay_ms=body.delay_ms,
        drop=bool(body.drop),
    )
    return {"id": rule.id}


@control("/_openpan/faults/{fault_id}", "DELETE")
async def fault(request: Request) -> dict[str, Any]:
    text = request.path_params["fault_id"]
    if not (text.isdigit() and _state(request).remove_fault(int(text))):
        raise ControlError(404, f"id: no fault rule {text}")
    return {"removed": int(text)}


def _now() -> str:
    return clock.utcnow().replace(tzinfo=UTC).isoformat(timespec="seconds")


@control("/_openpan/clock", "GET", "POST")
async def clock_control(request: Request) -> dict[str, Any]:
    if request.method == "POST":
        body: ClockBody = await _body(request, ClockBody)
        if body.reset:
            clock.shift(None)
        elif body.advance_seconds is not None:
            clock.shift(timedelta(seconds=body.advance_seconds))
        elif body.set is not None:
            target = body.set.astimezone(UTC).replace(tzinfo=None)
            clock.shift(target - clock.utcnow())
    return {"now": _now(), "shiftedSeconds": clock.shifted().total_seconds()}


@control("/_openpan/remote", "GET", "POST", "DELETE")
async def remote(request: Request) -> dict[str, Any]:
    state = _state(request)
    if request.method == "DELETE":
        state.remotes = {}
        return {"cleared": True}
    if request.method == "POST":
        body: RemoteBody = await _body(request, RemoteBody)
        content = _decode("content", body.content) if body.content is not None else None
        size = len(content) if content is not None else body.size or 0
        state.remotes = {
            **state.remotes,
            body.url: RemoteFile(
                body.url, content, size, body.status, body.content_type, body.bytes_per_second
            ),
        }
    return {
        "remote": [
            {"url": r.url, "size": r.size, "status": r.status, "bytesPerSecond": r.bytes_per_second}
            for r in state.remotes.values()
        ]
    }


@control("/_openpan/config", "POST")
async def config(request: Request) -> dict[str, Any]:
    body: ConfigBody = await _body(request, ConfigBody)
    state = _state(request)
    limiter = request.app.state.limiter
    if body.rate_limits is not None:
        limiter.enabled = body.rate_limits
    if body.upload_complete is not None:
        state.async_uploads = body.upload_complete == "async"
    if body.async_polls is not None:
        state.async_polls = body.async_polls
    if body.random_seed is not None:
        state.rng.seed(body.random_seed)
    return {
        "rateLimits": limiter.enabled,
        "uploadComplete": "async" if state.async_uploads else "sync",
        "asyncPolls": state.async_polls,
    }


@control("/_openpan/review", "POST")
async def review(request: Request) -> dict[str, Any]:
    ctx = context(request)
    body: ReviewBody = await _body(request, ReviewBody)
    async with ctx.db.write() as session:
        changed = await session.execute(
            update(File)
            .where(File.oss_id == body.file_id, File.space == SPACE_OSS, File.is_dir.is_(False))
            .values(status=body.status)
        )
        if not changed.rowcount:
            raise ControlError(404, f"fileID: no image-bed file {body.file_id!r}")
    ctx.part(LinkCache).clear()
    return {"fileID": body.file_id, "status": body.status}


routes = [health, reset, seed, journal, faults, fault, clock_control, remote, config, review]
