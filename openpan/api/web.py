"""The web app's own JSON endpoints, under ``/web/api/``: sign-in, account, admin, gallery
pages, breadcrumbs and folder shares.

Everything else the page does goes through the 123pan API itself (the session cookie stands
in for the token, ``routing.authenticate``), so nothing here bypasses a check the API makes.
Answers are the 123pan envelope; every endpoint but sign-in needs the session cookie and its
CSRF token, and the admin ones check the role here, on the server.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openpan.api.envelope import failure, ok
from openpan.api.oss import ID_LEN
from openpan.api.params import Params, read_params
from openpan.api.routing import answer, context, session_user
from openpan.clock import epoch, format_api_time, utcnow
from openpan.db.models import SPACE_DISK, SPACE_OSS, CopyTask, File, OfflineTask, User
from openpan.db.statuses import OfflineStatus
from openpan.errors import FieldError, OpenpanError
from openpan.services import callbacks, links, oss, public_links, shares, tree, users, web_auth
from openpan.services.context import Context
from openpan.services.public_links import LinkCache

WebHandler = Callable[[Request, Params, User], Awaitable[Any]]
FORBIDDEN = "需要管理员权限 (administrators only)"
# The query of the gallery's thumbnails: a 256-pixel square, in the best format the browser
# takes (a variant made once, then served like any link).
THUMB_QUERY = "w=256&h=256&fit=cover&format=auto"
PREVIEW_QUERY = "w=1024&h=1024&format=auto"
# Signed thumbnail links (for users with a link secret) live a day, from the start of the hour,
# so the browser's cache keeps working between page loads.
SIGNED_FOR = 24 * 3600


def web_endpoint(
    path: str, *, methods: tuple[str, ...] = ("POST",), admin: bool = False
) -> Callable[[WebHandler], Route]:
    """A web-app endpoint for the signed-in user (and, with ``admin``, for administrators)."""

    def wrap(handler: WebHandler) -> Route:
        async def work(request: Request) -> Any:
            user = await session_user(request)
            if admin and not user.is_admin:
                raise OpenpanError(FORBIDDEN, code=403)
            params = await read_params(request, context(request).settings.max_body_size)
            return await handler(request, params, user)

        async def run(request: Request) -> Response:
            return await answer(request, lambda: work(request))

        return Route(path, run, methods=list(methods), name=f"web_{handler.__name__}")

    return wrap


def _secure(ctx: Context) -> bool:
    return ctx.settings.effective_public_url.startswith("https://")


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def login(request: Request) -> Response:
    """``POST /web/api/login`` ``{name, password}``: a session cookie and the user."""

    async def work() -> Any:
        ctx = context(request)
        params = await read_params(request, ctx.settings.max_body_size)
        name = params.string("name", max_len=64, allow_empty=False)
        password = params.string("password", max_len=web_auth.MAX_PASSWORD, allow_empty=False)
        return await web_auth.sign_in(ctx, name, password, _address(request))

    try:
        signed = await work()
    except OpenpanError as exc:
        return failure(exc.code, exc.message)
    ctx = context(request)
    response = ok(_me(ctx, signed.user, signed.csrf))
    response.set_cookie(
        web_auth.COOKIE,
        signed.cookie,
        max_age=web_auth.SESSION_DAYS * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=_secure(ctx),
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    """``POST /web/api/logout``: the session ends on the server; the cookie is cleared."""

    async def work() -> None:
        await session_user(request)  # a cross-site form cannot sign anyone out
        await web_auth.sign_out(context(request), request.cookies.get(web_auth.COOKIE, ""))

    response = await answer(request, work)
    response.delete_cookie(web_auth.COOKIE, path="/", httponly=True, samesite="lax")
    return response


def _me(ctx: Context, user: User, csrf: str) -> dict[str, Any]:
    return {
        "name": user.name,
        "uid": user.id,
        "clientID": user.client_id,
        "isAdmin": user.is_admin,
        "vip": user.vip,
        "csrf": csrf,
        "publicURL": ctx.settings.effective_public_url,
        "customDomain": user.custom_domain or "",
        "refererAllow": user.referer_allow or "",
        "refererAllowEmpty": bool(user.referer_allow_empty),
        "linkSecretSet": bool(user.link_sign_secret),
    }


async def me(request: Request) -> Response:
    """``GET /web/api/me``: who is signed in, with the session's CSRF token (kept in the
    page's memory, never in storage). No CSRF token needed: it is how the page learns it,
    and no other site can read the answer."""

    async def work() -> dict[str, Any]:
        ctx = context(request)
        cookie = request.cookies.get(web_auth.COOKIE, "")
        user, csrf = await web_auth.session_user(ctx, cookie)
        return _me(ctx, user, csrf)

    return await answer(request, work)


@web_endpoint("/web/api/account/secret")
async def rotate_secret(request: Request, params: Params, user: User) -> dict[str, Any]:
    """A new clientSecret, shown once; tokens made with the old one stop working."""
    creds = await users.reset_secret(context(request).db, user.name)
    return {"clientID": creds.client_id, "clientSecret": creds.client_secret}


@web_endpoint("/web/api/account/settings")
async def account_settings(request: Request, params: Params, user: User) -> dict[str, Any]:
    """The link options ``openpan user set`` changes: custom domain, referer allowlist, empty
    referers, link secret (each left as it is when absent; ``""`` clears)."""
    ctx = context(request)
    fields: dict[str, Any] = {}
    if params.has("customDomain"):
        fields["custom_domain"] = params.string("customDomain", max_len=253)
    if params.has("refererAllow"):
        fields["referer_allow"] = params.string("refererAllow", max_len=4096)
    if params.has("refererAllowEmpty"):
        fields["referer_allow_empty"] = params.boolean("refererAllowEmpty")
    if params.has("linkSecret"):
        secret = params.string("linkSecret", max_len=128)
        if secret and len(secret) < 8:
            raise FieldError("linkSecret", "至少8个字符 (at least 8 characters)")
        fields["link_sign_secret"] = secret
    try:
        updated = await users.update_user(ctx.db, user.name, **fields)
    except OpenpanError as exc:
        raise FieldError("customDomain", exc.message) from exc
    # This process's link cache learns at once; others within the cache's TTL.
    ctx.part(LinkCache).clear()
    # The session's CSRF token is the one this request carried (``web_endpoint`` checked it).
    return _me(ctx, updated, request.headers["x-csrf-token"])


@web_endpoint("/web/api/account/password")
async def change_password(request: Request, params: Params, user: User) -> None:
    """A new password, given the current one; every session ends (sign in again)."""
    ctx = context(request)
    current = params.string("current", max_len=web_auth.MAX_PASSWORD, allow_empty=False)
    new = params.string("password", max_len=web_auth.MAX_PASSWORD, allow_empty=False)
    await web_auth.check_current(ctx, user, current, _address(request))
    await web_auth.set_password(ctx.db, user.name, new)


def _user_row(user: User, tz: str) -> dict[str, Any]:
    return {
        "name": user.name,
        "uid": user.id,
        "clientID": user.client_id,
        "vip": user.vip,
        "isAdmin": user.is_admin,
        "disabled": user.disabled,
        "hasPassword": bool(user.password_hash),
        "createAt": format_api_time(user.created_at, tz),
    }


@web_endpoint("/web/api/admin/users", methods=("GET",), admin=True)
async def admin_users(request: Request, params: Params, user: User) -> dict[str, Any]:
    ctx = context(request)
    everyone = await users.list_users(ctx.db)
    return {"users": [_user_row(u, ctx.settings.timezone) for u in everyone]}


@web_endpoint("/web/api/admin/users/add", admin=True)
async def admin_add(request: Request, params: Params, user: User) -> dict[str, Any]:
    """A new user with a web password; its clientSecret is shown once, here."""
    ctx = context(request)
    name = params.string("name", max_len=64, allow_empty=False)
    password = web_auth.check_password(
        params.string("password", max_len=web_auth.MAX_PASSWORD, allow_empty=False)
    )
    vip = params.boolean("vip")
    creds = await users.create_user(ctx.db, name, vip=vip)
    await web_auth.set_password(ctx.db, name, password)
    return {"name": name, "clientID": creds.client_id, "clientSecret": creds.client_secret}


@web_endpoint("/web/api/admin/users/update", admin=True)
async def admin_update(request: Request, params: Params, user: User) -> dict[str, Any]:
    """Disable or enable a user, or set VIP."""
    ctx = context(request)
    name = params.string("name", max_len=64, allow_empty=False)
    fields: dict[str, Any] = {}
    if params.has("disabled"):
        fields["disabled"] = params.boolean("disabled")
    if params.has("vip"):
        fields["vip"] = params.boolean("vip")
    async with ctx.db.read() as session:
        await users.get_by_name(session, name)  # "no such user" before anything else
    updated = await users.update_user(ctx.db, name, **fields)
    return _user_row(updated, ctx.settings.timezone)


def thumbnail_url(user: User, file: File, url: str, query: str = THUMB_QUERY) -> str:
    """A variant of a public link (signed when the owner signs links): by default the
    gallery's thumbnail."""
    if user.link_sign_secret and file.oss_id:
        path = links.direct_path(file.user_id, file.oss_id, file.ext)
        now = epoch(utcnow())
        expires = now - now % 3600 + SIGNED_FOR
        key = public_links.sign(path, user.link_sign_secret, expires, "web", user.id)
        query += f"&auth_key={key}"
    return f"{url}?{query}"


def gallery_item(ctx: Context, user: User, f: File) -> dict[str, Any]:
    """An entry as the gallery shows it: its public link, custom-domain link and thumbnail."""
    url = links.download_url(ctx.settings, f)
    return {
        "fileId": f.oss_id,
        "filename": f.name,
        "type": 1 if f.is_dir else 0,
        "size": f.size,
        "etag": f.etag,
        "extension": f.ext,
        "createAt": format_api_time(f.created_at, ctx.settings.timezone),
        "url": url,
        "selfURL": links.user_self_url(ctx.settings, user, f),
        "thumbURL": thumbnail_url(user, f, url) if url else "",
    }


@web_endpoint("/web/api/gallery", methods=("GET",))
async def gallery(request: Request, params: Params, user: User) -> dict[str, Any]:
    """A page of an image-bed folder, newest first, folders and images alike. The cursor is
    ``lastFileId`` as in ``/api/v1/oss/file/list``."""
    ctx = context(request)
    parent = params.string("parentFileId", required=False, max_len=ID_LEN)
    last = params.string("lastFileId", required=False, max_len=ID_LEN)
    limit = params.integer("limit", required=False, default=60, minimum=1, maximum=100)
    page = await oss.list_dir(ctx, user, parent, limit, last, None, None, newest_first=True)
    return {
        "lastFileId": page.last_file_id,
        "items": [gallery_item(ctx, user, f) for f in page.files],
    }


@web_endpoint("/web/api/file", methods=("GET",))
async def image_detail(request: Request, params: Params, user: User) -> dict[str, Any]:
    """One image for the detail view: the gallery's fields, its size in pixels, a preview."""
    ctx = context(request)
    file_id = params.string("fileId", max_len=ID_LEN, allow_empty=False)
    entry, source = await oss.image_info(ctx, user, file_id)
    item = gallery_item(ctx, user, entry)
    item.update(
        {
            "width": source.width if source else 0,
            "height": source.height if source else 0,
            "frames": source.pages if source else 0,
            "previewURL": thumbnail_url(user, entry, item["url"], PREVIEW_QUERY),
        }
    )
    return item


@web_endpoint("/web/api/path", methods=("GET",))
async def folder_path(request: Request, params: Params, user: User) -> dict[str, Any]:
    """The breadcrumbs of a folder: ``space`` ``oss`` (``fileId`` an oss ID) or ``disk``."""
    ctx = context(request)
    space = params.string("space", required=False, default=SPACE_OSS, max_len=8)
    if space not in (SPACE_OSS, SPACE_DISK):
        raise FieldError("space", "必须是 oss 或 disk (must be oss or disk)")
    raw = params.string("fileId", required=False, max_len=ID_LEN)
    async with ctx.db.read() as session:
        if space == SPACE_OSS:
            folder = await oss.resolve_dir(session, user, "fileId", raw) if raw else None
            chain = await tree.ancestors(session, user.id, space, folder.id) if folder else []
            return {"path": [{"fileId": d.oss_id, "name": d.name} for d in chain]}
        try:
            dir_id = int(raw or 0)
        except ValueError:
            raise FieldError("fileId", "必须是整数 (must be an integer)") from None
        chain = await tree.ancestors(session, user.id, space, dir_id)
        return {"path": [{"fileId": d.id, "name": d.name} for d in chain]}


@web_endpoint("/web/api/tasks", methods=("GET",))
async def task_list(request: Request, params: Params, user: User) -> dict[str, Any]:
    """The user's latest offline downloads and copy tasks (the API has no list of them),
    newest first: the page polls this while any is unfinished."""
    ctx = context(request)
    limit = params.integer("limit", required=False, default=50, minimum=1, maximum=200)
    tz = ctx.settings.timezone
    async with ctx.db.read() as session:
        downloads = list(
            await session.scalars(
                select(OfflineTask)
                .where(OfflineTask.user_id == user.id)
                .order_by(OfflineTask.id.desc())
                .limit(limit)
            )
        )
        copies = list(
            await session.scalars(
                select(CopyTask)
                .where(CopyTask.user_id == user.id)
                .order_by(CopyTask.created_at.desc())
                .limit(limit)
            )
        )
    made = await _made_files(ctx, user, downloads)
    offline_rows = [
        {
            "taskID": task.id,
            "space": task.space,
            "url": task.url,
            "fileName": task.file_name or task.origin_name or "",
            "status": task.status,
            "process": task.process,
            "bytesDone": task.bytes_done,
            "bytesTotal": task.bytes_total or 0,
            "failReason": task.fail_reason,
            "fileID": callbacks.made_file_id(task, made.get(task.file_id or 0)),
            "createAt": format_api_time(task.created_at, tz),
        }
        for task in downloads
    ]
    copy_rows = [
        {
            "taskID": c.id,
            "count": len(json.loads(c.source_ids or "[]")),
            "status": c.status,
            "failMsg": c.fail_msg,
            "createAt": format_api_time(c.created_at, tz),
        }
        for c in copies
    ]
    return {"offline": offline_rows, "copy": copy_rows}


async def _made_files(ctx: Context, user: User, tasks: list[OfflineTask]) -> dict[int, File]:
    """The files the succeeded ``tasks`` made, in one query (the page polls every second)."""
    wanted = [t.file_id for t in tasks if t.status == OfflineStatus.SUCCEEDED and t.file_id]
    if not wanted:
        return {}
    async with ctx.db.read() as session:
        found = await session.scalars(
            select(File).where(File.id.in_(wanted), File.user_id == user.id)
        )
        return {f.id: f for f in found}


def _share_row(request: Request, share: shares.Share) -> dict[str, Any]:
    base = context(request).settings.effective_public_url
    return {
        "token": share.token,
        "url": f"{base}/s/{share.token}",
        "folderId": share.folder_oss_id,
        "folderName": share.folder_name,
    }


@web_endpoint("/web/api/shares", methods=("GET",))
async def share_list(request: Request, params: Params, user: User) -> dict[str, Any]:
    found = await shares.list_for(context(request), user)
    return {"shares": [_share_row(request, s) for s in found]}


@web_endpoint("/web/api/shares/create")
async def share_create(request: Request, params: Params, user: User) -> dict[str, Any]:
    folder = params.string("fileId", max_len=ID_LEN, allow_empty=False)
    return _share_row(request, await shares.create(context(request), user, folder))


@web_endpoint("/web/api/shares/revoke")
async def share_revoke(request: Request, params: Params, user: User) -> None:
    token = params.string("token", max_len=shares.MAX_TOKEN, allow_empty=False)
    await shares.revoke(context(request), user, token)


routes = [
    Route("/web/api/login", login, methods=["POST"]),
    Route("/web/api/logout", logout, methods=["POST"]),
    Route("/web/api/me", me, methods=["GET"]),
    rotate_secret,
    account_settings,
    change_password,
    admin_users,
    admin_add,
    admin_update,
    gallery,
    image_detail,
    folder_path,
    task_list,
    share_list,
    share_create,
    share_revoke,
]
