"""Emulator mode through its pytest plugin (``openpan_emulator``) and the SDK: reset, seed,
faults, journal, clock, simulated remote files, switches, review status, and bad input."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server
from webapp_kit import png

from openpan.client import APIError, Client, ClientError
from openpan.testing import CLIENT_ID, CLIENT_SECRET, ControlError, Emulator

pytestmark = pytest.mark.timeout(180)


def stored_files(folder: Path, seconds: float = 20) -> list[Path]:
    """The files left under ``folder`` once a reset's background removal had time to finish
    (the folders it set aside go within moments; a busy machine may take longer)."""
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in folder.rglob("*") if p.is_file()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def token(emu: Emulator) -> str:
    answer = httpx.post(
        emu.base_url + "/api/v1/access_token",
        json={"clientID": emu.client_id, "clientSecret": emu.client_secret},
        headers={"Platform": "open_platform"},
    ).json()
    assert answer["code"] == 0, answer
    return str(answer["data"]["accessToken"])


def api(emu: Emulator, method: str, path: str, bearer: str, **kwargs: object) -> dict:
    headers = {"Authorization": f"Bearer {bearer}", "Platform": "open_platform"}
    return httpx.request(method, emu.base_url + path, headers=headers, **kwargs).json()  # type: ignore[arg-type]


def test_without_emulator_mode_the_control_api_does_not_exist(server: Server) -> None:
    for path in ("/_openpan/health", "/_openpan/reset", "/_openpan/journal"):
        assert httpx.post(server.url + path).status_code == 404
        assert httpx.get(server.url + path).status_code == 404


def test_health_and_the_default_user(openpan_emulator: Emulator) -> None:
    health = httpx.get(openpan_emulator.base_url + "/_openpan/health").json()
    assert health["status"] == "ok" and health["emulator"] is True and health["version"]
    assert (openpan_emulator.client_id, openpan_emulator.client_secret) == (
        CLIENT_ID,
        CLIENT_SECRET,
    )
    with openpan_emulator.client() as pan:
        assert pan.user_info().nickname == "tester"


def test_seed_users_and_files_then_reset_empties_everything(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    picture = png(30, 20)
    made = emu.seed(
        users=[
            {
                "name": "bob",
                "clientID": "bob-client-id",
                "clientSecret": "bob-secret-123",
                "vip": True,
            }
        ],
        files=[
            {"user": "bob", "path": "/albums/2026/cat.png", "content": picture},
            {"user": "bob", "space": "disk", "path": "/docs/big.bin", "size": 300_000},
            {"path": "/mine.png", "content": picture},  # the default user's
        ],
    )
    assert made["users"] == [
        {"name": "bob", "clientID": "bob-client-id", "clientSecret": "bob-secret-123"}
    ]
    cat, big, mine = (f["fileID"] for f in made["files"])
    with Client(
        base_url=emu.base_url, client_id="bob-client-id", client_secret="bob-secret-123"
    ) as bob:
        assert bob.user_info().vip
        detail = bob.oss_detail(cat)
        assert detail.etag == hashlib.md5(picture).hexdigest() and detail.size == len(picture)
        assert httpx.get(detail.download_url).content == picture
        disk = bob.disk_detail(big)
        assert disk.size == 300_000 and disk.filename == "big.bin"
    # The same size from the same path is the same bytes (deterministic).
    again = emu.seed(
        files=[{"user": "bob", "space": "disk", "path": "/docs/big2.bin", "size": 300_000}]
    )
    assert again["files"][0]["fileID"] != big

    blobs = emu.data_dir / "blobs"
    assert any(p.is_file() for p in blobs.rglob("*"))
    emu.reset()
    assert stored_files(blobs) == []
    with Client(
        base_url=emu.base_url, client_id="bob-client-id", client_secret="bob-secret-123"
    ) as bob:
        assert bob.oss_list("").files == []  # files gone, users kept
    emu.reset(users=False)
    answer = httpx.post(
        emu.base_url + "/api/v1/access_token",
        json={"clientID": "bob-client-id", "clientSecret": "bob-secret-123"},
        headers={"Platform": "open_platform"},
    ).json()
    assert answer["code"] != 0  # bob is gone; the default user is made again
    token(emu)
    with emu.client() as pan:
        assert pan.oss_list("").files == []  # the default user's own file went too
        assert mine


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"users": [{"name": "x", "bogus": 1}]}, "bogus"),
        ({"users": [{"name": 5}]}, "users.0.name"),
        ({"users": [{"name": "tester"}]}, "users[0].name"),
        ({"users": [{"name": "a-b"}, {"name": "a-b"}]}, "users"),
        ({"files": [{"user": "tester", "path": "/x.png", "content": "@@@"}]}, "files[0].content"),
        ({"files": [{"user": "tester", "path": "/x.exe", "size": 3}]}, "files[0].path"),
        ({"files": [{"user": "tester", "path": "relative.png", "size": 3}]}, "files[0].path"),
        ({"files": [{"user": "nobody", "path": "/x.png", "size": 3}]}, "files[0].user"),
        ({"files": [{"user": "tester", "path": "/x.png"}]}, "files.0"),
        (
            {"files": [{"user": "tester", "path": "/x.png", "size": 3, "content": "AA=="}]},
            "files.0",
        ),
        ({"files": [{"user": "tester", "path": "/x.png", "size": -1}]}, "files.0.size"),
        (
            {"files": [{"user": "tester", "space": "ftp", "path": "/x.png", "size": 1}]},
            "files.0.space",
        ),
    ],
)
def test_bad_seeds_name_the_field_and_make_nothing(
    openpan_emulator: Emulator, body: dict, field: str
) -> None:
    emu = openpan_emulator
    ok_file = {"user": "tester", "path": "/first.png", "size": 10}
    body = {**body, "files": [ok_file, *body.get("files", [])]} if "files" in body else body
    if "files" in body:  # the bad one is second: the field names it as [1] / .1
        field = field.replace("[0]", "[1]").replace(".0", ".1")
    answer = httpx.post(emu.base_url + "/_openpan/seed", json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert field in answer.json()["error"], answer.json()
    with emu.client() as pan:
        assert pan.oss_list("").files == []  # nothing half-applied


def test_the_journal_records_api_calls_redacted_and_bounded(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    emu.clear_journal()
    bearer = token(emu)
    api(emu, "GET", "/api/v1/user/info?access_token=abc&x=1", bearer)
    httpx.get(emu.base_url + "/_openpan/faults")  # the control API is not journaled
    entries = emu.journal()
    assert [e["path"] for e in entries] == ["/api/v1/access_token", "/api/v1/user/info"]
    info = entries[-1]
    assert info["method"] == "GET" and info["status"] == 200 and info["code"] == 0
    assert info["clientID"] == CLIENT_ID and info["traceID"] and info["durationMs"] >= 0
    assert "abc" not in info["query"] and "x=1" in info["query"]
    assert len(emu.journal(limit=1)) == 1
    emu.clear_journal()
    assert emu.journal() == []


def test_the_journal_keeps_only_the_last_n(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path / "emu", env={"OPENPAN_JOURNAL_SIZE": "5"}) as emu:
        for _ in range(12):
            httpx.get(emu.base_url + "/healthz")
        assert len(emu.journal()) == 5


def test_faults_error_status_delay_drop_then_normal(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    bearer = token(emu)
    rule = emu.fault(
        "/api/v1/user/info", "GET", times=2, error={"code": 429, "message": "slow down"}
    )
    for _ in range(2):
        answer = api(emu, "GET", "/api/v1/user/info", bearer)
        assert (answer["code"], answer["message"]) == (429, "slow down")
    assert api(emu, "GET", "/api/v1/user/info", bearer)["code"] == 0
    assert emu.faults()[0] == {**emu.faults()[0], "id": rule, "fired": 2, "times": 2}

    emu.fault("/api/v1/user/info", status=503, times=1)
    assert httpx.get(emu.base_url + "/api/v1/user/info").status_code == 503
    emu.fault("/healthz", delay_ms=600, times=1)
    started = time.monotonic()
    assert httpx.get(emu.base_url + "/healthz").status_code == 200
    assert time.monotonic() - started >= 0.6
    emu.fault("/healthz", drop=True, times=1)
    with pytest.raises(httpx.TransportError):
        httpx.get(emu.base_url + "/healthz")
    assert httpx.get(emu.base_url + "/healthz").status_code == 200
    # The SDK, as a client of the real service would, retries the 429 and gets through.
    emu.fault("/api/v1/user/info", times=1, error={"code": 429, "message": "busy"})
    with emu.client() as pan:
        assert pan.user_info().nickname == "tester"
    emu.clear_faults()
    assert emu.faults() == []


def test_faults_reach_slice_puts_and_public_links(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    picture = png(40, 40)
    made = emu.seed(files=[{"path": "/p.png", "content": picture}])
    with emu.client() as pan:
        url = pan.oss_detail(made["files"][0]["fileID"]).download_url
    path = httpx.URL(url).path
    emu.fault(path, "GET", times=1, status=500)
    assert httpx.get(url).status_code == 500
    assert httpx.get(url).content == picture
    # A slice PUT refused once: the SDK sends it again and the upload completes.
    data = png(64, 64, pad_to=300_000)
    with emu.client() as pan:
        first = pan.oss_create("", "first.png", hashlib.md5(data).hexdigest(), len(data))
        put = httpx.URL(pan.oss_get_upload_url(first.preupload_id, 1).presigned_url).path
    emu.fault(put, "PUT", times=1, status=503)
    answer = httpx.put(emu.base_url + put, content=data)
    assert answer.status_code == 503
    fired = [f for f in emu.faults() if f["path"] == put]
    assert fired[0]["fired"] == 1


def test_probabilities_are_reproducible_with_a_seed(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator

    def pattern() -> list[int]:
        emu.clear_faults()
        emu.config(randomSeed=42)
        emu.fault("/healthz", probability=0.5, status=502)
        return [httpx.get(emu.base_url + "/healthz").status_code for _ in range(20)]

    first, second = pattern(), pattern()
    assert first == second and set(first) == {200, 502}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": "/x"}, "exactly one effect"),
        ({"path": "/x", "status": 500, "drop": True}, "exactly one effect"),
        ({"path": "/x", "status": "500"}, "status"),
        ({"path": "/x", "status": 99}, "status"),
        ({"path": "/x", "drop": True, "probability": 2}, "probability"),
        ({"path": "/x", "drop": True, "times": 0}, "times"),
        ({"path": "x", "drop": True}, "path must start with /"),
        ({"path": "/x", "drop": True, "colour": "red"}, "colour"),
        ({"drop": True}, "path"),
    ],
)
def test_bad_fault_rules_are_refused(openpan_emulator: Emulator, body: dict, field: str) -> None:
    answer = httpx.post(openpan_emulator.base_url + "/_openpan/faults", json=body)
    assert answer.status_code == 400 and field in answer.json()["error"], answer.json()
    assert openpan_emulator.faults() == []
    bad = httpx.post(openpan_emulator.base_url + "/_openpan/faults", content=b"{nope")
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    assert httpx.delete(openpan_emulator.base_url + "/_openpan/faults/999").status_code == 404


def test_the_clock_moves_token_expiry_and_download_links(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    bearer = token(emu)
    made = emu.seed(files=[{"space": "disk", "path": "/d.bin", "size": 1000}])
    link = api(
        emu,
        "GET",
        "/api/v1/file/download_info",
        bearer,
        params={"fileId": made["files"][0]["fileID"]},
    )
    url = link["data"]["downloadUrl"]
    assert httpx.get(url).status_code == 200
    before = emu.now()
    after = emu.advance_clock(31 * 86400)
    assert (after - before).days == 31
    answer = api(emu, "GET", "/api/v1/user/info", bearer)
    assert answer["code"] == 401 and "过期" in answer["message"]
    assert httpx.get(url).status_code in (403, 404, 410)
    emu.reset_clock()
    assert abs((emu.now() - before).total_seconds()) < 60
    for body in (
        {},
        {"advanceSeconds": "x"},
        {"set": "2026-01-01T00:00:00"},
        {"reset": True, "advanceSeconds": 1},
    ):
        bad = httpx.post(emu.base_url + "/_openpan/clock", json=body)
        assert bad.status_code == 400, body


def test_simulated_remote_files_feed_offline_downloads(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    picture = png(50, 30)
    emu.remote("https://images.example.com/cat.png", picture, content_type="image/png")
    emu.remote("http://127.0.0.1:9/slow.bin", size=3_000_000, bytes_per_second=600_000)
    emu.remote("https://example.com/missing.png", size=10, status=404)
    with emu.client() as pan:
        task = pan.offline("https://images.example.com/cat.png")
        done = task.wait(timeout=60)
        assert done.status == 2
        assert pan.oss_detail(done.file_id).etag == hashlib.md5(picture).hexdigest()
        slow = pan.offline("http://127.0.0.1:9/slow.bin", space="disk")
        seen: list[float] = []
        result = slow.wait(timeout=60, interval=0.3, on_progress=lambda p: seen.append(p.process))
        assert result.status == 2 and any(0 < p < 100 for p in seen), seen
        with pytest.raises(ClientError) as failed:
            pan.offline("https://example.com/missing.png").wait(timeout=60)
        assert "404" in failed.value.reason and "404" in str(failed.value)  # type: ignore[attr-defined]


def test_async_upload_completion_and_rate_limits_on_demand(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    emu.config(uploadComplete="async", asyncPolls=3)
    data = png(32, 32)
    source = emu.data_dir.parent / "async.png"
    source.write_bytes(data)
    emu.clear_journal()
    with emu.client() as pan:
        uploaded = pan.upload(str(source), "/")
        assert uploaded.file.etag == hashlib.md5(data).hexdigest()
    polls = [e for e in emu.journal() if e["path"].endswith("/upload_async_result")]
    assert len(polls) == 4  # three "not yet", then done
    bearer = token(emu)
    assert (
        api(emu, "GET", "/api/v1/file/list", bearer, params={"parentFileId": 0, "limit": 10})[
            "code"
        ]
        == 0
    )
    assert (
        api(emu, "GET", "/api/v1/file/list", bearer, params={"parentFileId": 0, "limit": 10})[
            "code"
        ]
        == 429
    )
    emu.config(rateLimits=False)
    assert (
        api(emu, "GET", "/api/v1/file/list", bearer, params={"parentFileId": 0, "limit": 10})[
            "code"
        ]
        == 0
    )
    assert (
        httpx.post(emu.base_url + "/_openpan/config", json={"uploadComplete": "maybe"}).status_code
        == 400
    )


def test_a_rejected_images_link_stops_serving(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    made = emu.seed(files=[{"path": "/r.png", "content": png(20, 20)}])
    file_id = made["files"][0]["fileID"]
    with emu.client() as pan:
        url = pan.oss_detail(file_id).download_url
        assert httpx.get(url).status_code == 200
        emu.review(file_id, 101)
        assert pan.oss_detail(file_id).status == 101
        assert httpx.get(url).status_code == 404
        emu.review(file_id, 2)
        assert httpx.get(url).status_code == 200
    with pytest.raises(ControlError) as missing:
        emu.review("nosuchfile", 101)
    assert missing.value.status == 404


def test_beyond_loopback_the_control_api_needs_its_token(tmp_path: Path) -> None:
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "openpan",
            "serve",
            "--emulator",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path / "a"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "OPENPAN_CONTROL_TOKEN" in refused.stdout + refused.stderr
    with Emulator(data_dir=tmp_path / "b", host="0.0.0.0", control_token="tok-123456") as emu:
        base = emu.base_url
        assert httpx.get(base + "/_openpan/health").status_code == 401
        nope = httpx.get(base + "/_openpan/health", headers={"Authorization": "Bearer nope"})
        assert nope.status_code == 401
        ok = httpx.get(base + "/_openpan/health", headers={"Authorization": "Bearer tok-123456"})
        assert ok.status_code == 200
        emu.reset()  # the helper's own calls carry the token


def test_a_reset_during_an_offline_download_leaves_nothing_behind(
    openpan_emulator: Emulator,
) -> None:
    emu = openpan_emulator
    emu.remote("https://example.com/slow.bin", size=5_000_000, bytes_per_second=500_000)
    with emu.client() as pan:
        pan.offline("https://example.com/slow.bin", space="disk")
        time.sleep(1.5)
        emu.reset()
        time.sleep(1.0)
        assert [e for e in pan.disk_list(0).files if not e.trashed] == []
    assert stored_files(emu.data_dir / "blobs") == []


def test_api_error_class_is_what_a_fault_raises(openpan_emulator: Emulator) -> None:
    emu = openpan_emulator
    emu.fault("/api/v1/user/info", error={"code": 5066, "message": "emulated missing"})
    with emu.client() as pan, pytest.raises(APIError) as raised:
        pan.user_info()
    assert raised.value.code == 5066
