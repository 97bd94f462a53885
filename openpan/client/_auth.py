"""Credentials: a ready access token, or a clientID/secret pair that fetches tokens lazily.

Fetched tokens can be cached in a JSON file the user chooses (one entry per base URL,
clientID and secret — a hash of it), so scripts and CLI runs reuse a token instead of fetching
one each time: the real service keeps at most three live tokens per clientID and retires the
oldest on the fourth. A token is replaced shortly before its ``expiredAt`` and once after a 401.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openpan.client._models import AccessToken
from openpan.client._protocol import Call

REFRESH_MARGIN = timedelta(minutes=5)


def _token(data: Any) -> AccessToken:
    return AccessToken.model_validate(data)


class Credentials:
    """What a client authenticates with, and the token it currently uses."""

    def __init__(
        self,
        base_url: str,
        pair: tuple[str | None, str | None],
        access_token: str | None,
        token_cache: str | os.PathLike[str] | None,
    ) -> None:
        """``pair`` is the clientID and clientSecret (both or neither)."""
        client_id, client_secret = pair
        if access_token is None and not (client_id and client_secret):
            raise ValueError("give either access_token, or client_id and client_secret")
        if (client_id is None) != (client_secret is None):
            raise ValueError("client_id and client_secret go together")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._cache = Path(token_cache) if token_cache is not None else None
        self._token: str | None = access_token
        self._expires: datetime | None = None
        if access_token is None:
            self._load_cache()

    @property
    def can_refresh(self) -> bool:
        return self._secret is not None

    @property
    def expires_at(self) -> datetime | None:
        """When the current token expires (``None``: unknown, or no token yet)."""
        return self._expires

    def current(self) -> str | None:
        """The token to send now, or ``None`` when a new one must be fetched first."""
        if self._token is None:
            return None
        expires = self._expires
        if (
            self.can_refresh
            and expires is not None
            and datetime.now(UTC) >= expires - REFRESH_MARGIN
        ):
            return None
        return self._token

    def fetch_call(self) -> Call[AccessToken]:
        """The ``/api/v1/access_token`` call that gets a new token."""
        assert self.client_id is not None and self._secret is not None
        return Call(
            "POST",
            "/api/v1/access_token",
            _token,
            json={"clientID": self.client_id, "clientSecret": self._secret},
            auth=False,
            idempotent=False,
        )

    def accept(self, token: AccessToken) -> str:
        """Use a freshly fetched token (and remember it in the cache file)."""
        self._token = token.access_token
        expires = token.expired_at
        # The service always sends an offset; a bare time is taken as UTC rather than refused.
        self._expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        self._save_cache()
        return token.access_token

    def rejected(self, token: str) -> bool:
        """The server answered 401 to ``token``. True when a new one can be fetched."""
        if not self.can_refresh:
            return False
        if self._token == token:
            self._token = None
            self._expires = None
            self._save_cache()
        return True

    # The cache file ------------------------------------------------------------------------

    @property
    def _key(self) -> str:
        # The secret's hash is part of the key (never the secret itself): a token fetched with
        # one secret is never used by a client given another, so a mistyped or changed secret
        # is tried, and fails, at once.
        secret = hashlib.sha256((self._secret or "").encode()).hexdigest()[:16]
        return f"{self.base_url}#{self.client_id}#{secret}"

    def _read_cache(self) -> dict[str, Any]:
        if self._cache is None:
            return {}
        try:
            data = json.loads(self._cache.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _load_cache(self) -> None:
        entry = self._read_cache().get(self._key)
        if not isinstance(entry, dict):
            return
        try:
            token = AccessToken.model_validate(entry)
        except ValueError:
            return
        self._token = token.access_token
        expires = token.expired_at
        self._expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)

    def _save_cache(self) -> None:
        if self._cache is None:
            return
        data = self._read_cache()
        if self._token is None or self._expires is None:
            data.pop(self._key, None)
        else:
            data[self._key] = {
                "accessToken": self._token,
                "expiredAt": self._expires.isoformat(),
            }
        self._cache.parent.mkdir(parents=True, exist_ok=True)
        # Written whole and renamed into place, readable by the owner only: it holds tokens.
        fd, tmp = tempfile.mkstemp(dir=self._cache.parent, prefix=".tokens-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._cache)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
