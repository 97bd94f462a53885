"""Users: created by the operator (CLI), identified by clientID/clientSecret."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from openpan import ids
from openpan.clock import utcnow
from openpan.db.engine import Database
from openpan.db.models import AccessToken, User, WebSession
from openpan.db.session import Session
from openpan.errors import OpenpanError
from openpan.services.public_links import domain_host

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class Credentials:
    name: str
    client_id: str
    client_secret: str


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough; only the hash is stored.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


async def count_users(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count(User.id))) or 0)


async def create_user(
    db: Database,
    name: str,
    *,
    vip: bool = False,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> Credentials:
    """Create a user; the secret is returned here and never again. ``client_id`` and
    ``client_secret`` are made unless given (the emulator's seed takes a test suite's own)."""
    if not _NAME.match(name):
        raise OpenpanError("name: 1-64 letters, digits, or _ . @ -")
    secret = client_secret or ids.client_secret()
    credentials = Credentials(
        name=name, client_id=client_id or ids.client_id(), client_secret=secret
    )
    async with db.write() as session:
        if await session.scalar(select(User.id).where(User.name == name)) is not None:
            raise OpenpanError(f"user {name!r} already exists")
        if client_id and await session.scalar(select(User.id).where(User.client_id == client_id)):
            raise OpenpanError(f"clientID {client_id!r} is another user's already")
        # The first user administers the others (in the web app).
        first = await session.scalar(select(User.id).limit(1)) is None
        session.add(
            User(
                name=name,
                client_id=credentials.client_id,
                secret_hash=hash_secret(secret),
                vip=vip,
                callback_secret=secrets.token_hex(32),
                created_at=utcnow(),
                is_admin=first,
            )
        )
    return credentials


async def list_users(db: Database) -> list[User]:
    async with db.read() as session:
        return list((await session.scalars(select(User).order_by(User.id))).all())


async def get_by_name(session: Session, name: str) -> User:
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        raise OpenpanError(f"no user named {name!r}")
    return user


async def reset_secret(db: Database, name: str) -> Credentials:
    """A new clientSecret; every token issued under the old one stops working."""
    secret = ids.client_secret()
    async with db.write() as session:
        user = await get_by_name(session, name)
        user.secret_hash = hash_secret(secret)
        # Deleted, not marked revoked: a revoked row means "retired by a newer login", and a
        # token of a reset secret is refused with its own message (``tokens.REVOKED``).
        await session.execute(delete(AccessToken).where(AccessToken.user_id == user.id))
        return Credentials(name=user.name, client_id=user.client_id, client_secret=secret)


async def update_user(
    db: Database,
    name: str,
    *,
    vip: bool | None = None,
    custom_domain: str | None = None,
    referer_allow: str | None = None,
    referer_allow_empty: bool | None = None,
    link_sign_secret: str | None = None,
    storage_quota: int | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's options; ``""`` clears a text option. Disabling a user ends its tokens
    and browser sessions (its files stay; enabling it again lets it sign in anew)."""
    async with db.write() as session:
        user = await get_by_name(session, name)
        if disabled is not None:
            if disabled and user.is_admin:
                raise OpenpanError("the administrator cannot be disabled")
            user.disabled = disabled
            if disabled:
                await session.execute(delete(AccessToken).where(AccessToken.user_id == user.id))
                await session.execute(delete(WebSession).where(WebSession.user_id == user.id))
        if vip is not None:
            user.vip = vip
        if custom_domain is not None:
            domain = custom_domain.strip().lower() or None
            if domain is not None:
                await _check_domain_free(session, user.id, domain)
            user.custom_domain = domain
        if referer_allow is not None:
            user.referer_allow = referer_allow.strip() or None
        if referer_allow_empty is not None:
            user.referer_allow_empty = referer_allow_empty
        if link_sign_secret is not None:
            user.link_sign_secret = link_sign_secret or None
        if storage_quota is not None:
            user.storage_quota = storage_quota if storage_quota >= 0 else None
        return user


async def _check_domain_free(session: Session, user_id: int, domain: str) -> None:
    """A custom domain serves one user's links, so two users cannot share one."""
    host = domain_host(domain)
    if not host:
        raise OpenpanError(f"domain {domain!r} has no host name")
    others = await session.execute(
        select(User.name, User.custom_domain).where(
            User.custom_domain.is_not(None), User.id != user_id
        )
    )
    for name, other in others:
        if other and domain_host(other) == host:
            raise OpenpanError(f"domain {host!r} is already the custom domain of user {name!r}")
