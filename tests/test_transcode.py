"""The real service's video-transcoding endpoints, which openpan does not provide: the envelope
saying so (lists empty), never an HTTP 404 that clients read as an authorization failure."""

from __future__ import annotations

import httpx
import pytest
from conftest import Api, Server

from openpan.api.transcode import _EMPTY, _REFUSED


@pytest.mark.parametrize("path", _EMPTY)
def test_transcode_lists_are_empty(api: Api, path: str) -> None:
    for method in ("GET", "POST"):
        answer = api.call(method, path, json={"fileId": 1})
        assert answer["code"] == 0 and answer["data"] == {"list": [], "total": 0}, answer


@pytest.mark.parametrize("path", _REFUSED)
def test_transcode_actions_say_openpan_does_not_transcode(api: Api, path: str) -> None:
    answer = api.post(path, {"fileId": 1})
    assert answer["code"] == 1 and "does not transcode" in answer["message"], answer


def test_transcode_endpoints_check_the_token(server: Server) -> None:
    for path in (*_EMPTY, *_REFUSED):
        answer = httpx.post(server.url + path, json={}, headers={"Platform": "open_platform"})
        assert answer.status_code == 200 and answer.json()["code"] == 401, path
