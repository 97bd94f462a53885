"""Public direct links of image-bed files (``/{uid}/{fileId}.{ext}``): which file a link opens,
and whether this request may open it.

The rules, in the order they are applied:

1. **Custom domain.** When the request's ``Host`` is a user's custom domain, only that user's
   links open under it; any other link there is "not found", like a link that never existed.
2. **Hotlink protection** (per user, off by default): a ``Referer`` whose host is not on the
   user's list is refused (403); a request without one passes only if the user allows that.
3. **Signed links** (per user, off by default): ``?auth_key={timestamp}-{rand}-{uid}-{md5hash}``
   with ``md5hash = md5("{path}-{timestamp}-{rand}-{uid}-{secret}")``, the CDN "type A" scheme
   the real service uses; ``timestamp`` is when the link expires. Missing, expired or forged
   keys are refused (403).
4. **The file** must exist, belong to the user in the path and have the extension in the link;
   it is found by ID, so renaming or moving it keeps the link working.

Lookups are cached for ``link_cache_ttl`` seconds so a hot link costs no database query. A file
deleted in this process leaves the cache when the deleting transaction commits; user settings
changed from the CLI (another process) take effect within the TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import event, select
from sqlalchemy.orm import Session as SyncSession

from openpan.clock import epoch, utcnow
from openpan.db.models import SPACE_OSS, Blob, File, User
from openpan.db.session import Session
from openpan.db.statuses import REJECTED_ABOVE
from openpan.services.context import Context

# The most entries of each kind kept; beyond it the oldest are dropped (bounded memory).
MAX_ENTRIES = 50_000
_REMOVED_KEY = "openpan.public_links.removed"
T = TypeVar("T")


class LinkNotFound(Exception):
    """The link leads nowhere (404), or leads somewhere this host does not serve."""


class LinkForbidden(Exception):
    """The owner's access rules refuse this request (403)."""


@dataclass(frozen=True, slots=True)
class LinkedFile:
    """What a direct link serves."""

    file_id: int
    user_id: int
    key: str
    size: int
    etag: str
    modified: datetime
    ext: str
    blob_id: int


@dataclass(frozen=True, slots=True)
class AccessRules:
    """A user's access options for their links."""

    referers: tuple[str, ...] | None
    """Allowed Referer hosts (``*.example.com`` allows its subdomains); ``None``: no check."""
    allow_empty_referer: bool
    sign_secret: str | None

    @property
    def open(self) -> bool:
        return self.referers is None and not self.sign_secret


class LinkCache:
    """Recent lookups of this process: files, users' access rules, custom domains."""

    def __init__(self) -> None:
        self.files: dict[tuple[int, str], tuple[float, LinkedFile]] = {}
        self.rules: dict[int, tuple[float, AccessRules | None]] = {}
        self.domains: tuple[float, dict[str, int]] | None = None
        # Bumped whenever files leave: a lookup that started before must not store its answer.
        self.epoch = 0
        # Lookups under way: when an entry expires under load, one query refreshes it and the
        # other requests for it wait for that answer instead of all asking the database.
        self._loading: dict[object, asyncio.Future[Any]] = {}
        _caches.add(self)

    async def load(self, key: object, query: Callable[[], Awaitable[T]]) -> T:
        """``query()``, run once however many requests ask for ``key`` at the same time."""
        pending = self._loading.get(key)
        if pending is not None:
            result: T = await asyncio.shield(pending)
            return result
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await query()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody may be waiting for it
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._loading[key]

    def forget_files(self, file_ids: Iterable[int]) -> None:
        doomed = set(file_ids)
        self.epoch += 1
        for key, (_, linked) in list(self.files.items()):
            if linked.file_id in doomed:
                del self.files[key]

    def clear(self) -> None:
        self.epoch += 1
        self.files.clear()
        self.rules.clear()
        self.domains = None


_caches: weakref.WeakSet[LinkCache] = weakref.WeakSet()


def files_removed(session: Session, file_ids: Iterable[int]) -> None:
    """Tell the link caches that ``file_ids`` go away when ``session``'s transaction commits."""
    session.info.setdefault(_REMOVED_KEY, set()).update(file_ids)


@event.listens_for(SyncSession, "after_commit")
def _forget_after_commit(session: SyncSession) -> None:
    removed = session.info.pop(_REMOVED_KEY, None)
    if removed:
        for cache in list(_caches):
            cache.forget_files(removed)


@event.listens_for(SyncSession, "after_rollback")
def _nothing_removed(session: SyncSession) -> None:
    session.info.pop(_REMOVED_KEY, None)


def _store(table: dict[Any, Any], key: object, value: object) -> None:
    if len(table) >= MAX_ENTRIES:
        # Dicts keep insertion order: drop the oldest tenth in one go.
        for old in list(table)[: MAX_ENTRIES // 10]:
            del table[old]
    table[key] = value


# Lookups ------------------------------------------------------------------------------------


async def _domains(ctx: Context, now: float) -> dict[str, int]:
    cache = ctx.part(LinkCache)
    if cache.domains is not None and cache.domains[0] > now:
        return cache.domains[1]

    async def query() -> dict[str, int]:
        async with ctx.db.read() as session:
            rows = (
                await session.execute(
                    select(User.id, User.custom_domain).where(User.custom_domain.is_not(None))
                )
            ).all()
        mapping = {domain_host(domain): user_id for user_id, domain in rows if domain}
        mapping.pop("", None)
        cache.domains = (now + ctx.settings.link_cache_ttl, mapping)
        return mapping

    return await cache.load("domains", query)


async def _rules(ctx: Context, user_id: int, now: float) -> AccessRules | None:
    cache = ctx.part(LinkCache)
    hit = cache.rules.get(user_id)
    if hit is not None and hit[0] > now:
        return hit[1]

    async def query() -> AccessRules | None:
        async with ctx.db.read() as session:
            row = (
                await session.execute(
                    select(
                        User.referer_allow, User.referer_allow_empty, User.link_sign_secret
                    ).where(User.id == user_id)
                )
            ).first()
        rules = None
        if row is not None:
            referer_allow, allow_empty, secret = row
            # The server's own pages (the web app's gallery) always pass its owner's
            # hotlink protection: they are on the public URL's host.
            own = urlsplit(ctx.settings.effective_public_url).hostname or ""
            rules = AccessRules(
                referers=(*parse_referer_list(referer_allow), own) if referer_allow else None,
                allow_empty_referer=bool(allow_empty),
                sign_secret=secret or None,
            )
        _store(cache.rules, user_id, (now + ctx.settings.link_cache_ttl, rules))
        return rules

    return await cache.load(("rules", user_id), query)


async def _file(ctx: Context, user_id: int, oss_id: str, now: float) -> LinkedFile | None:
    cache = ctx.part(LinkCache)
    hit = cache.files.get((user_id, oss_id))
    if hit is not None and hit[0] > now:
        return hit[1]

    async def query() -> LinkedFile | None:
        started = cache.epoch
        async with ctx.db.read() as session:
            row = (
                await session.execute(
                    select(
                        File.id, File.size, File.etag, File.created_at, File.ext, Blob.key, Blob.id
                    )
                    .join(Blob, Blob.id == File.blob_id)
                    .where(
                        File.oss_id == oss_id,
                        File.user_id == user_id,
                        File.space == SPACE_OSS,
                        File.is_dir.is_(False),
                        File.trashed.is_(False),
                        # Above 100 the review rejected it (审核不通过): no longer served.
                        File.status <= REJECTED_ABOVE,
                    )
                )
            ).first()
        if row is None:
            # Not cached: a file uploaded a moment from now must open at once.
            return None
        file_id, size, etag, created_at, ext, key, blob_id = row
        linked = LinkedFile(file_id, user_id, key, size, etag, created_at, ext, blob_id)
        if cache.epoch == started:
            _store(cache.files, (user_id, oss_id), (now + ctx.settings.link_cache_ttl, linked))
        return linked

    # Keyed by epoch too: a request that comes after a delete never shares an older lookup.
    return await cache.load(("file", user_id, oss_id, cache.epoch), query)


async def open_link(
    ctx: Context,
    *,
    user_id: int,
    oss_id: str,
    ext: str,
    path: str,
    host: str,
    referer: str | None,
    query: str,
) -> LinkedFile:
    """The file behind a direct link, if this request may have it.

    ``path`` is the request path (``/{uid}/{fileId}.{ext}``), ``host`` the ``Host`` header,
    ``query`` the raw query string. Raises ``LinkNotFound`` (404) or ``LinkForbidden`` (403).
    """
    # The cached answers are read inline: a hot link costs a few dictionary lookups.
    now = time.monotonic()
    cache = ctx.part(LinkCache)
    known = cache.domains
    domains = known[1] if known is not None and known[0] > now else await _domains(ctx, now)
    if domains:
        owner = owner_of_host(domains, host)
        if owner is not None and owner != user_id:
            raise LinkNotFound("another user's link under a custom domain")
    hit = cache.rules.get(user_id)
    rules = hit[1] if hit is not None and hit[0] > now else await _rules(ctx, user_id, now)
    if rules is None:
        raise LinkNotFound("no such user")
    if not rules.open:
        check_access(rules, path=path, referer=referer, query=query, now=epoch(utcnow()))
    found = cache.files.get((user_id, oss_id))
    linked = (
        found[1] if found is not None and found[0] > now else await _file(ctx, user_id, oss_id, now)
    )
    if linked is None or linked.ext != ext:
        raise LinkNotFound("no such file")
    return linked


# Rules --------------------------------------------------------------------------------------


def domain_host(domain: str) -> str:
    """The ``host[:port]`` of a configured custom domain (``https://img.example.com/`` or
    ``img.example.com``), lower case."""
    text = domain.strip().lower()
    return urlsplit(text if "://" in text else "//" + text).netloc


def owner_of_host(domains: dict[str, int], host: str) -> int | None:
    """The user whose custom domain ``host`` (a ``Host`` header) is, if any."""
    host = host.strip().lower()
    owner = domains.get(host)
    if owner is None and ":" in host and not host.endswith("]"):
        owner = domains.get(host.rsplit(":", 1)[0])
    return owner


def parse_referer_list(text: str) -> tuple[str, ...]:
    """Allowed Referer hosts from the user's comma- or space-separated list. Entries may be
    hosts (``blog.example.com``), wildcards (``*.example.com``) or URLs (the host is used)."""
    hosts: list[str] = []
    for raw in text.replace(",", " ").split():
        entry = raw.strip().lower()
        if "://" in entry:
            entry = urlsplit(entry).hostname or ""
        else:
            entry = entry.split("/", 1)[0].split(":", 1)[0]
        if entry:
            hosts.append(entry)
    return tuple(hosts)


def referer_allowed(rules: AccessRules, referer: str | None) -> bool:
    """Whether a request with this ``Referer`` header passes the user's hotlink protection."""
    if rules.referers is None:
        return True
    if referer is None or not referer.strip():
        return rules.allow_empty_referer
    try:
        host = urlsplit(referer.strip()).hostname
    except ValueError:
        return False
    if not host:
        return False
    for allowed in rules.referers:
        if allowed.startswith("*."):
            if host.endswith(allowed[1:]):
                return True
        elif host == allowed:
            return True
    return False


def sign(path: str, secret: str, expires: int, rand: str, uid: int | str = 0) -> str:
    """The ``auth_key`` of a signed link to ``path`` that expires at Unix time ``expires``."""
    digest = hashlib.md5(f"{path}-{expires}-{rand}-{uid}-{secret}".encode()).hexdigest()
    return f"{expires}-{rand}-{uid}-{digest}"


def auth_key_valid(auth_key: str, path: str, secret: str, now: int) -> bool:
    """Whether ``auth_key`` signs ``path`` with ``secret`` and has not expired at ``now``."""
    parts = auth_key.split("-")
    if len(parts) != 4:
        return False
    timestamp, rand, uid, digest = parts
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    if len(rand) > 100 or len(uid) > 64 or len(digest) != 32:
        return False
    if int(timestamp) < now:
        return False
    expected = hashlib.md5(f"{path}-{timestamp}-{rand}-{uid}-{secret}".encode()).hexdigest()
    return hmac.compare_digest(expected, digest.lower())


def check_access(
    rules: AccessRules, *, path: str, referer: str | None, query: str, now: int
) -> None:
    """Apply hotlink protection and link signing; raises ``LinkForbidden``."""
    if not referer_allowed(rules, referer):
        raise LinkForbidden("referer not allowed")
    if rules.sign_secret:
        keys = parse_qs(query, keep_blank_values=True).get("auth_key", [])
        if len(keys) != 1 or not auth_key_valid(keys[0], path, rules.sign_secret, now):
            raise LinkForbidden("auth_key missing, expired or invalid")
