"""Credentials, token caching and renewal, retries of 429 and of dropped connections."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sdkkit
from conftest import Server, free_port

from openpan.client import (
    AuthenticationError,
    Client,
    RateLimitError,
    TransportError,
)

TOKEN_PATH = "/api/v1/access_token"


def fetch_token(server: Server, user: dict[str, str]) -> str:
    with Client(
        base_url=server.url, client_id=user["client_id"], client_secret=user["client_secret"]
    ) as c:
        return c.access_token().access_token


def test_token_is_fetched_lazily_once_and_shared_through_the_cache_file(
    server: Server, tmp_path: Path
) -> None:
    user = sdkkit.creds(server)
    cache = tmp_path / "tokens.json"
    first = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, user, token_cache=cache, transport=first) as pan:
        assert first.seen == []  # nothing before the first call
        pan.oss_list()
        pan.oss_list()
    assert first.count("POST", TOKEN_PATH) == 1
    assert cache.stat().st_mode & 0o777 == 0o600
    stored = json.loads(cache.read_text())
    assert [entry["accessToken"].count(".") for entry in stored.values()] == [2]

    second = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, user, token_cache=cache, transport=second) as pan:
        pan.oss_list()
    assert second.count("POST", TOKEN_PATH) == 0


def test_a_retired_token_is_replaced_once_after_a_401(server: Server, tmp_path: Path) -> None:
    user = sdkkit.creds(server)
    watch = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, user, transport=watch) as pan:
        pan.oss_list()
        for _ in range(3):  # three newer tokens retire the client's (at most 3 live)
            fetch_token(server, user)
        pan.oss_list()
    assert watch.count("POST", TOKEN_PATH) == 2
    assert watch.count("POST", "/api/v1/oss/file/list") == 3  # the refused one, sent again


def test_a_token_about_to_expire_is_renewed_before_use(server: Server, tmp_path: Path) -> None:
    user = sdkkit.creds(server)
    cache = tmp_path / "tokens.json"
    soon = datetime.now(UTC) + timedelta(minutes=2)
    cache.write_text(
        json.dumps(
            {
                f"{server.url}#{user['client_id']}": {
                    "accessToken": fetch_token(server, user),
                    "expiredAt": soon.isoformat(),
                }
            }
        )
    )
    watch = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, user, token_cache=cache, transport=watch) as pan:
        pan.oss_list()
        assert pan.token_expires_at is not None and pan.token_expires_at > soon
    assert watch.count("POST", TOKEN_PATH) == 1


def test_a_ready_access_token_is_used_as_is_and_not_renewed(server: Server) -> None:
    user = sdkkit.creds(server)
    token = fetch_token(server, user)
    with Client(base_url=server.url, access_token=token) as pan:
        assert pan.oss_list().files == []
        for _ in range(3):
            fetch_token(server, user)
        with pytest.raises(AuthenticationError) as caught:
            pan.oss_list()
    assert caught.value.code == 401 and caught.value.trace_id


def test_a_cached_token_is_not_used_with_another_secret(server: Server, tmp_path: Path) -> None:
    user = sdkkit.creds(server)
    cache = tmp_path / "tokens.json"
    with sdkkit.client(server, tmp_path, user, token_cache=cache) as pan:
        pan.oss_list()
    assert user["client_secret"] not in cache.read_text()  # only a hash of it is kept
    wrong = {**user, "client_secret": "mistyped"}
    watch = sdkkit.Watch()
    pan = sdkkit.client(server, tmp_path, wrong, token_cache=cache, transport=watch)
    with pan, pytest.raises(AuthenticationError):
        pan.oss_list()
    assert watch.count("POST", TOKEN_PATH) == 1
    # The right secret still finds its token.
    again = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, user, token_cache=cache, transport=again) as pan:
        pan.oss_list()
    assert again.count("POST", TOKEN_PATH) == 0


def test_a_wrong_secret_is_an_authentication_error(server: Server) -> None:
    user = sdkkit.creds(server)
    pan = Client(base_url=server.url, client_id=user["client_id"], client_secret="nope")
    with pan, pytest.raises(AuthenticationError) as caught:
        pan.oss_list()
    assert caught.value.code == 1 and "clientSecret" in caught.value.message


def _too_many(times: int) -> sdkkit.Hook:
    left = {"n": times}

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/v1/oss/file/list" and left["n"] > 0:
            left["n"] -= 1
            body = {"code": 429, "message": "请求太频繁", "data": None, "x-traceID": "t"}
            return httpx.Response(200, json=body, headers={"Retry-After": "0"})
        return None

    return hook


def test_429_is_retried_with_backoff(server: Server, tmp_path: Path) -> None:
    watch = sdkkit.Watch(_too_many(2))
    with sdkkit.client(server, tmp_path, transport=watch) as pan:
        assert pan.oss_list().is_last
    assert watch.count("POST", "/api/v1/oss/file/list") == 3


def test_429_after_the_last_retry_is_raised(server: Server, tmp_path: Path) -> None:
    watch = sdkkit.Watch(_too_many(5))
    pan = sdkkit.client(server, tmp_path, transport=watch, retries=1)
    with pan, pytest.raises(RateLimitError) as caught:
        pan.oss_list()
    assert caught.value.code == 429
    assert watch.count("POST", "/api/v1/oss/file/list") == 2


def test_rate_limits_of_a_real_server_are_absorbed(fresh_server: Server, tmp_path: Path) -> None:
    fresh_server.env["OPENPAN_RATE_LIMIT"] = "true"
    fresh_server.start()
    sdkkit.need(fresh_server, "/api/v1/user/info")
    watch = sdkkit.Watch()
    calls = 0
    with sdkkit.client(fresh_server, tmp_path, transport=watch) as pan:
        # 10 per second allowed: within a burst some are refused and sent again. A slow machine
        # may pace the calls under the limit, so the burst goes on until one was refused.
        while calls < 200 and watch.count("GET", "/api/v1/user/info") == calls:
            assert pan.user_info().uid > 0
            calls += 1
    assert watch.count("GET", "/api/v1/user/info") > calls


def test_an_unreachable_server_is_a_transport_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    pan = Client(base_url=dead, access_token="x", retries=1)
    with pan, pytest.raises(TransportError) as caught:
        pan.oss_list()
    assert caught.value.status_code is None and "ConnectError" in caught.value.message


def test_an_answer_that_is_not_the_envelope_is_a_transport_error() -> None:
    def proxy_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with (
        Client(
            base_url="http://pan.test",
            access_token="x",
            transport=httpx.MockTransport(proxy_page),
            retries=0,
        ) as pan,
        pytest.raises(TransportError) as caught,
    ):
        pan.oss_detail("abc")
    assert caught.value.status_code == 502


def test_a_malformed_answer_is_a_transport_error_not_a_crash() -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        body = {"code": 0, "message": "ok", "data": {"fileList": "nope"}, "x-traceID": "t"}
        return httpx.Response(200, json=body)

    calls = []
    with (
        Client(
            base_url="http://pan.test",
            access_token="x",
            transport=httpx.MockTransport(lambda r: calls.append(r) or odd(r)),
        ) as pan,
        pytest.raises(TransportError, match="unexpected answer"),
    ):
        pan.oss_list()
    assert len(calls) == 1  # an answer came: sending it again would not help
