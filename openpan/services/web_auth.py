"""The web app's accounts: passwords (argon2), browser sessions and sign-in throttling.

A session is a random cookie value; the database keeps only its sha256, with the CSRF token
that every request the session authenticates must carry in ``X-CSRF-Token``. Failed sign-ins
are counted per user name and per address over the last minute, in the database, so that
several API processes refuse the eleventh guess alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select

from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.models import LoginFailure, User, WebSession
from openpan.errors import FieldError, OpenpanError, RateLimited, Unauthorized
from openpan.services import users
from openpan.services.context import Context
from openpan.services.tokens import DISABLED

COOKIE = "openpan_session"
SESSION_DAYS = 14
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# Failed sign-ins allowed per user name, and per address, in any minute.
MAX_FAILURES = 10
FAILURE_WINDOW = timedelta(minutes=1)

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so an unknown name costs what a wrong password
    does. Made on first use: hashing takes ~50 ms, too much for every start and import."""
    return _hasher.hash(secrets.token_hex(16))


WRONG = "用户名或密码错误 (wrong user name or password)"
THROTTLED = "登录失败次数过多，请一分钟后再试 (too many failed sign-ins: try again in a minute)"
SIGNED_OUT = "未登录或登录已过期 (not signed in, or the session has expired)"
CSRF = "CSRF校验失败: 缺少或错误的 X-CSRF-Token (missing or wrong X-CSRF-Token)"


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie value (given to the browser, never stored) and its CSRF
    token."""

    cookie: str
    csrf: str
    user: User


def check_password(password: str) -> str:
    """``password`` if it is acceptable, else a ``FieldError`` naming ``password``."""
    if len(password) < MIN_PASSWORD:
        raise FieldError(
            "password", f"至少{MIN_PASSWORD}个字符 (at least {MIN_PASSWORD} characters)"
        )
    if len(password) > MAX_PASSWORD:
        raise FieldError("password", f"不能超过{MAX_PASSWORD}个字符 (at most {MAX_PASSWORD})")
    return password


async def hash_password(password: str) -> str:
    """The argon2 hash of ``password`` (computed off the event loop: it takes ~50 ms)."""
    return await asyncio.to_thread(_hasher.hash, check_password(password))


async def _verify(stored: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def _session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def set_password(db: Database, name: str, password: str) -> None:
    """Set ``name``'s web password; the user's browser sessions end (sign in again)."""
    hashed = await hash_password(password)
    async with db.write() as session:
        user = await users.get_by_name(session, name)
        user.password_hash = hashed
        await session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def _throttle_keys(name: str, address: str) -> list[str]:
    """What failed sign-ins are counted by: the user name, then the address."""
    return [f"user:{name.lower()[:64]}", f"addr:{address[:64]}"]


async def _check_throttle(db: Database, keys: list[str]) -> None:
    """``RateLimited`` once the last minute saw too many failures for any of ``keys``."""
    if await _failures(db, keys) >= MAX_FAILURES:
        raise RateLimited(THROTTLED)


async def _failures(db: Database, keys: list[str]) -> int:
    since = utcnow() - FAILURE_WINDOW
    async with db.read() as session:
        counts = await session.execute(
            select(LoginFailure.key, func.count())
            .where(LoginFailure.key.in_(keys), LoginFailure.at > since)
            .group_by(LoginFailure.key)
        )
        return max((n for _, n in counts), default=0)


async def _record_failure(db: Database, keys: list[str]) -> None:
    now = utcnow()
    async with db.write() as session:
        # Old failures count for nothing: those of these keys go as new ones come.
        await session.execute(
            delete(LoginFailure).where(
                LoginFailure.key.in_(keys), LoginFailure.at <= now - FAILURE_WINDOW
            )
        )
        session.add_all(LoginFailure(key=key, at=now) for key in keys)


async def sign_in(ctx: Context, name: str, password: str, address: str) -> SignedIn:
    """A new session for ``name``, or an error: wrong credentials, a disabled user, or too
    many failures in the last minute for that name or that address (checked first, so a
    guesser learns nothing while refused)."""
    keys = _throttle_keys(name, address)
    await _check_throttle(ctx.db, keys)
    async with ctx.db.read() as session:
        user = await session.scalar(select(User).where(User.name == name))
    if user is None or not await _verify(user.password_hash, password):
        await _record_failure(ctx.db, keys)
        raise OpenpanError(WRONG)
    if user.disabled:
        raise OpenpanError(DISABLED)
    cookie, csrf, now = secrets.token_urlsafe(32), secrets.token_hex(16), utcnow()
    async with ctx.db.write() as session:
        session.add(
            WebSession(
                id=_session_id(cookie),
                user_id=user.id,
                csrf=csrf,
                created_at=now,
                expires_at=now + timedelta(days=SESSION_DAYS),
            )
        )
        await session.execute(delete(LoginFailure).where(LoginFailure.key == keys[0]))
    return SignedIn(cookie=cookie, csrf=csrf, user=user)


async def session_user(ctx: Context, cookie: str) -> tuple[User, str]:
    """The user of a session cookie and the session's CSRF token, or ``Unauthorized``."""
    if not cookie or len(cookie) > 128:
        raise Unauthorized(SIGNED_OUT)
    async with ctx.db.read() as session:
        row = (
            await session.execute(
                select(User, WebSession.csrf, WebSession.expires_at)
                .join(WebSession, WebSession.user_id == User.id)
                .where(WebSession.id == _session_id(cookie))
            )
        ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized(SIGNED_OUT)
    user: User = row[0]
    if user.disabled:
        raise Unauthorized(DISABLED)
    return user, row.csrf


async def check_current(ctx: Context, user: User, password: str, address: str) -> None:
    """Refuse unless ``password`` is ``user``'s (a password change proves the old one; wrong
    guesses count towards the same throttle as sign-ins)."""
    keys = _throttle_keys(user.name, address)
    await _check_throttle(ctx.db, keys)
    if not await _verify(user.password_hash, password):
        await _record_failure(ctx.db, keys)
        raise FieldError("current", "当前密码错误 (the current password is wrong)")


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a request carries its session's CSRF token (compared in constant time)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


async def sign_out(ctx: Context, cookie: str) -> None:
    """End the session of ``cookie`` on the server (the cookie is worthless afterwards)."""
    async with ctx.db.write() as session:
        await session.execute(delete(WebSession).where(WebSession.id == _session_id(cookie)))


async def sweep(db: Database) -> None:
    """Remove expired sessions and old failed sign-ins (the housekeeping sweep)."""
    now = utcnow()
    async with db.write() as session:
        await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        await session.execute(delete(LoginFailure).where(LoginFailure.at <= now - FAILURE_WINDOW))
