"""Access tokens: HS256 JWTs with ``exp``, at most N live per client (the oldest is retired)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

import jwt
from sqlalchemy import select

from openpan.clock import epoch, utcnow
from openpan.db.engine import Database
from openpan.db.models import AccessToken, Meta, User
from openpan.errors import OpenpanError, Unauthorized
from openpan.services.context import Context
from openpan.services.users import secret_matches

SIGNING_KEY = "signing_key"


async def load_signing_key(db: Database) -> bytes:
    """The server's secret, made on first start and shared by every process through the database."""
    async with db.write() as session:
        row = await session.get(Meta, SIGNING_KEY)
        if row is None:
            row = Meta(key=SIGNING_KEY, value=secrets.token_hex(32))
            session.add(row)
        return bytes.fromhex(row.value)


async def issue_token(ctx: Context, client_id: str, client_secret: str) -> tuple[str, datetime]:
    """A new token for a client, retiring its oldest live ones beyond the cap."""
    now = utcnow()
    expires = now + timedelta(days=ctx.settings.token_ttl_days)
    async with ctx.db.write() as session:
        # The user's row is locked so that logins racing on several processes retire tokens
        # one after another (locking only the live tokens would miss those being issued).
        user = await session.scalar(
            select(User).where(User.client_id == client_id).with_for_update()
        )
        if user is None or not secret_matches(client_secret, user.secret_hash):
            raise OpenpanError("clientID或clientSecret错误 (wrong clientID or clientSecret)")
        live = (
            await session.scalars(
                select(AccessToken)
                .where(
                    AccessToken.user_id == user.id,
                    AccessToken.revoked.is_(False),
                    AccessToken.expires_at > now,
                )
                .order_by(AccessToken.issued_at, AccessToken.jti)
                .with_for_update()
            )
        ).all()
        excess = len(live) + 1 - ctx.settings.max_tokens_per_client
        for token in live[: max(0, excess)]:
            token.revoked = True
        jti = uuid.uuid4().hex
        session.add(AccessToken(jti=jti, user_id=user.id, issued_at=now, expires_at=expires))
        claims = {
            "sub": str(user.id),
            "client_id": user.client_id,
            "jti": jti,
            "iat": epoch(now),
            "exp": epoch(expires),
        }
        encoded = jwt.encode(claims, ctx.signing_key, algorithm="HS256")
    return encoded, expires


async def authenticate(ctx: Context, authorization: str | None) -> User:
    """The user behind ``Authorization: Bearer <token>``, or ``Unauthorized``."""
    if not authorization:
        raise Unauthorized("access_token无效: 缺少Authorization请求头 (missing Authorization)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("access_token无效: 格式应为 Bearer access_token")
    try:
        claims = jwt.decode(
            token.strip(),
            ctx.signing_key,
            algorithms=["HS256"],
            # Times follow openpan's clock (OPENPAN_CLOCK_OFFSET), not PyJWT's: see below.
            options={"require": ["exp", "jti", "sub"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("access_token无效 (invalid token)") from exc
    # exp is checked here rather than by PyJWT so that it follows openpan's clock.
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthorized("access_token无效 (invalid token)")
    if exp <= epoch(utcnow()):
        raise Unauthorized("access_token已过期 (token expired)")
    # One statement for the token and its user: every API request pays for this lookup.
    async with ctx.db.read() as session:
        row = (
            await session.execute(
                select(AccessToken.revoked, User)
                .outerjoin(User, User.id == AccessToken.user_id)
                .where(AccessToken.jti == str(claims["jti"]))
            )
        ).first()
    if row is None or row[0]:
        raise Unauthorized("access_token已失效: tokens number has exceeded the limit")
    if row[1] is None:
        raise Unauthorized()
    return row[1]
