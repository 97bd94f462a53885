"""Access tokens: HS256 JWTs with ``exp``, at most N live per client (the oldest is retired)."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from sqlalchemy import bindparam, select

from openpan.clock import epoch, utcnow
from openpan.db.engine import Database
from openpan.db.models import AccessToken, Meta, User, from_row, table_of
from openpan.errors import OpenpanError, Unauthorized
from openpan.services.context import Context
from openpan.services.users import secret_matches

SIGNING_KEY = "signing_key"


class _HS256(HMACAlgorithm):
    """HS256 that prepares each key once. PyJWT checks the key again on every call (that it is
    no PEM or DER public key), which was a fifth of what an authenticated request cost; the
    server's key is random bytes it made itself, checked the first time it is seen."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: dict[Any, bytes] = {}

    def prepare_key(self, key: Any) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) < 8:
                self._prepared[key] = prepared
        return prepared


_JWS = jwt.PyJWS(algorithms=["HS256"])
_JWS.unregister_algorithm("HS256")
_JWS.register_algorithm("HS256", _HS256())

_tokens, _users = table_of(AccessToken), table_of(User)
# A token whose row is gone: its user's secret was reset, or the user was disabled.
REVOKED = (
    "access_token已失效: 令牌已撤销, 密钥已重置或用户已停用 "
    "(token revoked: the clientSecret was reset or the user disabled)"
)
DISABLED = "用户已被停用 (this user is disabled)"

# The lookup every authenticated request makes: the token's state and its user in one statement.
_TOKEN_AND_USER = (
    select(_tokens.c.revoked, _users)
    .select_from(_tokens.outerjoin(_users, _users.c.id == _tokens.c.user_id))
    .where(_tokens.c.jti == bindparam("jti"))
)


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
        if user.disabled:
            raise OpenpanError(DISABLED)
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


def _claims_valid(claims: Any, now: int) -> bool:
    """What PyJWT's ``decode`` checked of the claims (only the signature is checked above):
    ``sub`` and ``jti`` strings, a numeric ``exp``, no ``nbf`` still to come, no ``aud`` (this
    server names no audience). Times follow openpan's clock."""
    if not isinstance(claims, dict):
        return False
    if not all(isinstance(claims.get(name), str) for name in ("jti", "sub")):
        return False
    if "aud" in claims:
        return False
    for name in ("exp", "nbf"):
        value = claims.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
    return "exp" in claims and claims.get("nbf", 0) <= now


async def authenticate(ctx: Context, authorization: str | None) -> User:
    """The user behind ``Authorization: Bearer <token>``, or ``Unauthorized``."""
    if not authorization:
        raise Unauthorized("access_token无效: 缺少Authorization请求头 (missing Authorization)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("access_token无效: 格式应为 Bearer access_token")
    try:
        # Times follow openpan's clock (OPENPAN_CLOCK_OFFSET), not PyJWT's: checked below.
        claims = json.loads(_JWS.decode(token.strip(), ctx.signing_key, algorithms=["HS256"]))
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized("access_token无效 (invalid token)") from exc
    now = epoch(utcnow())
    if not _claims_valid(claims, now):
        raise Unauthorized("access_token无效 (invalid token)")
    if claims["exp"] <= now:
        raise Unauthorized("access_token已过期 (token expired)")
    async with ctx.db.rows() as connection:
        row = (await connection.execute(_TOKEN_AND_USER, {"jti": str(claims["jti"])})).first()
    if row is None:
        raise Unauthorized(REVOKED)
    if row.revoked:
        raise Unauthorized("access_token已失效: tokens number has exceeded the limit")
    if row.id is None:
        raise Unauthorized()
    if row.disabled:
        raise Unauthorized(DISABLED)
    return from_row(User, row)
