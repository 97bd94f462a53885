"""The web app's pages: the single-page shell at ``/``, its fingerprinted static assets, and
the server-rendered public gallery of a shared folder at ``/s/<token>``.

Assets ship inside the package (``openpan/web/static``; nothing is built at install time).
Their URLs carry a hash of all of them, ``/static/<hash>/app.js``, so they are cached for a
year and a new release is fetched at once; each is kept in memory with its gzip form. The
shell and the share page carry a Content-Security-Policy without inline script.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from openpan.api.routing import context
from openpan.api.web import thumbnail_url
from openpan.services import links, oss, shares
from openpan.services.context import Context

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = WEB / "static"
YEAR = "public, max-age=31536000, immutable"
SHARE_PAGE = 60


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    """Every static file, by its path under ``static/``, and the hash that fingerprints them."""

    build: str
    files: dict[str, Asset]


@cache
def assets() -> Assets:
    """The static files, read once (they are part of the installed package)."""
    files: dict[str, Asset] = {}
    whole = hashlib.sha256()
    for path in sorted(p for p in STATIC.rglob("*") if p.is_file()):
        name = path.relative_to(STATIC).as_posix()
        body = path.read_bytes()
        whole.update(name.encode() + b"\0" + body)
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith((".js", ".mjs")):
            media = "text/javascript"
        if media.startswith("text/") or media.endswith(("json", "javascript", "svg+xml")):
            media += "; charset=utf-8"
        digest = hashlib.sha256(body).hexdigest()[:16]
        files[name] = Asset(body, gzip.compress(body, 9, mtime=0), media, f'"{digest}"')
    return Assets(whole.hexdigest()[:12], files)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def app_policy(ctx: Context) -> str:
    """The shell's CSP: scripts only from this origin (and WebAssembly, for the md5 worker),
    images from here and the public-link origin, nothing inline, no framing."""
    images = " ".join(dict.fromkeys(["'self'", _origin(ctx.settings.effective_public_url)]))
    return (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
        f"img-src {images} data: blob:; connect-src 'self'; worker-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _page_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


@cache
def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(WEB / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def language(request: Request) -> str:
    """``zh`` or ``en``: the ``lang`` cookie the app sets, else the browser's first choice."""
    chosen = request.cookies.get("openpan_lang", "")
    if chosen in ("zh", "en"):
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";", 1)[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"


async def shell(request: Request) -> Response:
    """``/``: the web app (signed out it shows the sign-in form, signed in the gallery)."""
    ctx = context(request)
    html = templates().get_template("app.html").render(build=assets().build, lang=language(request))
    return HTMLResponse(html, headers=_page_headers(app_policy(ctx)))


async def static(request: Request) -> Response:
    """``/static/<hash>/<path>``: an asset, gzipped when the browser takes it."""
    bundle = assets()
    asset = bundle.files.get(request.path_params["path"])
    if request.path_params["build"] != bundle.build or asset is None:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {
        "Cache-Control": YEAR,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.media_type.startswith("text/javascript"):
        # The md5 worker runs WebAssembly: a worker takes the policy of its own script.
        headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'"
        )
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


async def shared_gallery(request: Request) -> Response:
    """``/s/<token>``: a shared folder's images as a read-only page (no script at all);
    ``?after=<fileId>`` pages on. An unknown or revoked token is a plain 404 page."""
    ctx = context(request)
    lang = language(request)
    found = await shares.shared_folder(ctx, request.path_params["token"])
    policy = (
        "default-src 'none'; style-src 'self'; "
        f"img-src 'self' {_origin(ctx.settings.effective_public_url)}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    page = templates().get_template("share.html")
    common = {"build": assets().build, "lang": lang}
    if found is None:
        html = page.render(**common, missing=True, folder="", images=[], more="")
        return HTMLResponse(html, status_code=404, headers=_page_headers(policy))
    owner, folder = found
    after = request.query_params.get("after", "")[:64]
    listed = await oss.list_dir(
        ctx, owner, folder.oss_id or "", SHARE_PAGE, after, None, None, newest_first=True
    )
    images = []
    for f in listed.files:
        if f.is_dir:
            continue
        url = links.download_url(ctx.settings, f)
        images.append({"name": f.name, "url": url, "thumb": thumbnail_url(owner, f, url)})
    more = listed.last_file_id if listed.last_file_id != "-1" else ""
    html = page.render(**common, missing=False, folder=folder.name, images=images, more=more)
    return HTMLResponse(html, headers=_page_headers(policy))


routes = [
    Route("/", shell, methods=["GET", "HEAD"]),
    Route("/static/{build}/{path:path}", static, methods=["GET", "HEAD"]),
    Route("/s/{token}", shared_gallery, methods=["GET", "HEAD"]),
]
