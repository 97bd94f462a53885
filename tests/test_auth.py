"""Access tokens and the auth headers: JWT shape, lifetime, the 3-token cap, 401s, rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from conftest import Api, Server
from imagebed import DETAIL, LIST, MKDIR, query

TOKEN = "/api/v1/access_token"
PLATFORM = {"Platform": "open_platform"}


@pytest.fixture(scope="module")
def creds(server: Server) -> dict[str, str]:
    return server.take_user()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "data", "x-traceID"}, body
    return body


def new_token(http: httpx.Client, creds: dict[str, str]) -> dict[str, Any]:
    body = envelope(
        http.post(
            TOKEN,
            json={"clientID": creds["client_id"], "clientSecret": creds["client_secret"]},
            headers=PLATFORM,
        )
    )
    assert body["code"] == 0 and body["message"] == "ok", body
    data: dict[str, Any] = body["data"]
    return data


def call_list(http: httpx.Client, token: str) -> dict[str, Any]:
    return envelope(
        http.post(
            LIST,
            json={"limit": 10, "type": 1},
            headers={"Authorization": f"Bearer {token}", **PLATFORM},
        )
    )


def test_token_is_an_hs256_jwt_with_exp_and_expires_in_30_days(
    http: httpx.Client, creds: dict[str, str]
) -> None:
    before = datetime.now().astimezone()
    data = new_token(http, creds)
    assert set(data) == {"accessToken", "expiredAt"}
    assert jwt.get_unverified_header(data["accessToken"])["alg"] == "HS256"
    claims = jwt.decode(data["accessToken"], options={"verify_signature": False})
    # RFC 3339 with the real service's +08:00 offset, e.g. 2025-03-23T15:48:37+08:00
    assert len(data["expiredAt"]) == 25 and data["expiredAt"].endswith("+08:00")
    expired_at = datetime.fromisoformat(data["expiredAt"])
    assert int(expired_at.timestamp()) == claims["exp"]
    life = expired_at - before
    assert timedelta(days=30) - timedelta(minutes=5) < life < timedelta(days=30, minutes=5)


def test_a_fourth_token_retires_the_oldest(http: httpx.Client, server: Server) -> None:
    creds = server.take_user()
    tokens = [new_token(http, creds)["accessToken"] for _ in range(4)]
    retired = call_list(http, tokens[0])
    assert retired["code"] == 401 and retired["data"] is None
    for token in tokens[1:]:
        assert call_list(http, token)["code"] == 0
    fifth = new_token(http, creds)["accessToken"]
    assert call_list(http, tokens[1])["code"] == 401
    assert [call_list(http, t)["code"] for t in (*tokens[2:], fifth)] == [0, 0, 0]


def test_an_expired_token_is_refused(http: httpx.Client, server: Server) -> None:
    creds = server.take_user()
    token = new_token(http, creds)["accessToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    # The server's own key, so only the expiry is wrong with this token.
    key = signing_key(server)
    past = int(time.time()) - 60
    expired = jwt.encode({**claims, "exp": past}, key, algorithm="HS256")
    answer = call_list(http, expired)
    assert answer["code"] == 401 and answer["data"] is None
    assert call_list(http, jwt.encode(claims, key, algorithm="HS256"))["code"] == 0
    unknown = jwt.encode({**claims, "jti": "0" * 32}, key, algorithm="HS256")
    assert call_list(http, unknown)["code"] == 401


def signing_key(server: Server) -> bytes:
    return bytes.fromhex(query(server, "SELECT value FROM meta WHERE key = 'signing_key'")[0][0])


def _forged(token: str, key: bytes) -> dict[str, str]:
    claims = jwt.decode(token, options={"verify_signature": False})
    head, payload, signature = token.split(".")
    return {
        "other key": jwt.encode(claims, "not-the-server-key-at-all-0123456789", algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "bad signature": f"{head}.{payload}.{signature[::-1]}",
        # Signed with the server's own key: only the missing exp is wrong.
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key),
        "exp as text": jwt.encode({**claims, "exp": "tomorrow"}, key),
        "not valid yet": jwt.encode({**claims, "nbf": claims["exp"] - 60}, key),
        "an audience": jwt.encode({**claims, "aud": "someone-else"}, key),
        "jti as a number": jwt.encode({**claims, "jti": 12345}, key),
        "jti null": jwt.encode({**claims, "jti": None}, key),
        "no sub": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, key),
        "a list, not claims": _signed(b"[1, 2]", key),
    }


def _signed(payload: bytes, key: bytes) -> str:
    """A token whose payload is ``payload`` as it is (not a JSON object), properly signed."""
    return jwt.api_jws.PyJWS().encode(payload, key, algorithm="HS256")


BAD_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("no headers", {}),
    ("no Authorization", PLATFORM),
    ("empty Authorization", {"Authorization": "", **PLATFORM}),
    ("Bearer without token", {"Authorization": "Bearer", **PLATFORM}),
    ("Bearer and spaces", {"Authorization": "Bearer    x", **PLATFORM}),
    ("Basic scheme", {"Authorization": "Basic dXNlcjpwYXNz", **PLATFORM}),
    ("garbage token", {"Authorization": "Bearer not.a.jwt", **PLATFORM}),
    ("token without scheme", {"Authorization": "TOKEN", **PLATFORM}),
    ("no Platform", {"Authorization": "Bearer TOKEN"}),
    ("wrong Platform", {"Authorization": "Bearer TOKEN", "Platform": "web"}),
    ("empty Platform", {"Authorization": "Bearer TOKEN", "Platform": ""}),
]


@pytest.mark.parametrize("path", [LIST, DETAIL, MKDIR, "/upload/v1/oss/file/create"])
@pytest.mark.parametrize(("case", "headers"), BAD_HEADERS, ids=[c for c, _ in BAD_HEADERS])
def test_missing_or_bad_auth_headers_are_a_401_envelope(
    http: httpx.Client,
    creds: dict[str, str],
    path: str,
    case: str,
    headers: dict[str, str],
) -> None:
    token = new_token(http, creds)["accessToken"] if "TOKEN" in str(headers) else ""
    sent = {k: v.replace("TOKEN", token) for k, v in headers.items()}
    body = envelope(http.post(path, json={"name": "x", "fileID": "x"}, headers=sent))
    assert body["code"] == 401 and body["data"] is None and body["message"], body


@pytest.mark.parametrize(
    "forgery",
    [
        "other key",
        "alg none",
        "bad signature",
        "no exp",
        "exp as text",
        "not valid yet",
        "an audience",
        "jti as a number",
        "jti null",
        "no sub",
        "a list, not claims",
    ],
)
def test_forged_tokens_are_refused(
    http: httpx.Client, server: Server, creds: dict[str, str], forgery: str
) -> None:
    forged = _forged(new_token(http, creds)["accessToken"], signing_key(server))[forgery]
    body = call_list(http, forged)
    assert body["code"] == 401 and body["data"] is None


def test_platform_header_value_and_auth_scheme_are_case_insensitive(
    http: httpx.Client, creds: dict[str, str]
) -> None:
    token = new_token(http, creds)["accessToken"]
    body = envelope(
        http.post(
            LIST,
            json={"limit": 1},
            headers={"authorization": f"bearer {token}", "platform": "Open_Platform"},
        )
    )
    assert body["code"] == 0, body


TOKEN_BAD_BODIES: list[tuple[str, Any, str]] = [
    ("clientID missing", {"clientSecret": "s"}, "clientID"),
    ("clientSecret missing", {"clientID": "c"}, "clientSecret"),
    ("clientID empty", {"clientID": "", "clientSecret": "s"}, "clientID"),
    ("clientID null", {"clientID": None, "clientSecret": "s"}, "clientID"),
    ("clientID object", {"clientID": {"a": 1}, "clientSecret": "s"}, "clientID"),
    ("clientID list", {"clientID": ["a", "b"], "clientSecret": "s"}, "clientID"),
    ("clientID bool", {"clientID": True, "clientSecret": "s"}, "clientID"),
    ("clientID huge", {"clientID": "c" * 100_000, "clientSecret": "s"}, "clientID"),
    ("clientSecret object", {"clientID": "c", "clientSecret": {}}, "clientSecret"),
    ("clientSecret huge", {"clientID": "c", "clientSecret": "s" * 100_000}, "clientSecret"),
    ("clientSecret control", {"clientID": "c", "clientSecret": "\x00\x1b"}, "clientSecret"),
]


@pytest.mark.parametrize(
    ("case", "body", "field"), TOKEN_BAD_BODIES, ids=[c for c, _, _ in TOKEN_BAD_BODIES]
)
def test_access_token_bad_input_names_the_field(
    http: httpx.Client, case: str, body: Any, field: str
) -> None:
    answer = envelope(http.post(TOKEN, json=body, headers=PLATFORM))
    assert answer["code"] == 1 and answer["data"] is None
    assert field in answer["message"] or "clientID" in answer["message"], answer


def test_wrong_credentials_are_refused_without_telling_which(
    http: httpx.Client, creds: dict[str, str]
) -> None:
    wrong_secret = {"clientID": creds["client_id"], "clientSecret": "0" * 64}
    unknown = {"clientID": "0" * 32, "clientSecret": creds["client_secret"]}
    swapped = {"clientID": creds["client_secret"], "clientSecret": creds["client_id"]}
    answers = [
        envelope(http.post(TOKEN, json=b, headers=PLATFORM))
        for b in (wrong_secret, unknown, swapped)
    ]
    assert all(a["code"] != 0 and a["data"] is None for a in answers)
    assert len({a["message"] for a in answers}) == 1


def test_access_token_accepts_the_lenient_forms(http: httpx.Client, creds: dict[str, str]) -> None:
    cid, secret = creds["client_id"], creds["client_secret"]
    forms = [
        http.post(TOKEN, data={"clientID": cid, "clientSecret": secret}, headers=PLATFORM),
        http.post(
            TOKEN,
            content=f"clientID={cid}&clientSecret={secret}",
            headers={**PLATFORM, "Content-Type": "application/json"},
        ),
        http.post(TOKEN, params={"clientID": cid, "clientSecret": secret}, headers=PLATFORM),
        http.post(TOKEN, json={"clientId": cid, "clientsecret": secret}, headers=PLATFORM),
        http.get(TOKEN, params={"clientID": cid, "clientSecret": secret}, headers=PLATFORM),
        # The real server does not insist on Platform here; the documented header is optional.
        http.post(TOKEN, json={"clientID": cid, "clientSecret": secret}),
    ]
    for response in forms:
        assert envelope(response)["code"] == 0, response.text


def test_reset_secret_retires_every_token(http: httpx.Client, server: Server) -> None:
    creds = server.take_user()
    token = new_token(http, creds)["accessToken"]
    done = server.cli("user", "reset-secret", creds["name"], "--json")
    assert done.returncode == 0, done.stderr
    assert call_list(http, token)["code"] == 401


def test_rate_limit_gives_429_in_the_envelope(fresh_server: Server) -> None:
    fresh_server.env["OPENPAN_RATE_LIMIT"] = "true"
    fresh_server.start()
    creds = fresh_server.take_user()
    body = {"clientID": creds["client_id"], "clientSecret": creds["client_secret"]}
    with httpx.Client(base_url=fresh_server.url, timeout=30) as client:
        # access_token allows 8 per second: 60 at once must run into the limit.
        with ThreadPoolExecutor(10) as pool:
            answers = list(
                pool.map(
                    lambda _: envelope(client.post(TOKEN, json=body, headers=PLATFORM)), range(60)
                )
            )
        codes = [a["code"] for a in answers]
        assert codes.count(0) >= 8 and 429 in codes and set(codes) == {0, 429}, codes
        limited = next(a for a in answers if a["code"] == 429)
        assert limited["data"] is None and "access_token" in limited["message"]
        # Another client is not held back by this one.
        other = fresh_server.take_user()
        fresh = {"clientID": other["client_id"], "clientSecret": other["client_secret"]}
        assert envelope(client.post(TOKEN, json=fresh, headers=PLATFORM))["code"] == 0
    api = Api(fresh_server, other)
    try:
        # Endpoints without a documented limit are not limited.
        assert all(api.post(LIST, {"limit": 1})["code"] == 0 for _ in range(30))
    finally:
        api.close()
