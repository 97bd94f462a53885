"""The ``openpan`` command: first start, ``user add / list / reset-secret``, serve's settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from conftest import Api, Server, jpeg_bytes
from imagebed import DETAIL, LIST, UPLOAD_URL, create

TOKEN = "/api/v1/access_token"


def token_answer(server: Server, client_id: str, secret: str) -> dict[str, object]:
    body: dict[str, object] = httpx.post(
        server.url + TOKEN,
        json={"clientID": client_id, "clientSecret": secret},
        headers={"Platform": "open_platform"},
    ).json()
    return body


def printed(output: str) -> tuple[str, str, str]:
    """clientID, clientSecret and the curl line from what the command printed."""
    client_id = re.search(r"clientID:\s+(\S+)", output)
    secret = re.search(r"clientSecret:\s+(\S+)", output)
    curl = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
    assert client_id and secret and len(curl) == 1, output
    return client_id.group(1), secret.group(1), curl[0]


def run_curl(line: str) -> dict[str, object]:
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_first_start_prints_credentials_once_with_a_curl_line_that_works(
    fresh_server: Server,
) -> None:
    fresh_server.start()
    log = fresh_server.log_path.read_text()
    assert log.count("First start") == 1
    client_id, secret, curl = printed(log)
    answer = run_curl(curl)
    assert answer["code"] == 0, answer
    data = answer["data"]
    assert isinstance(data, dict)
    listed = httpx.post(
        fresh_server.url + LIST,
        json={"limit": 10},
        headers={"Authorization": f"Bearer {data['accessToken']}", "Platform": "open_platform"},
    ).json()
    assert listed["code"] == 0 and listed["data"]["fileList"] == []
    fresh_server.stop()
    fresh_server.start()
    log = fresh_server.log_path.read_text()
    assert log.count("First start") == 1 and log.count(secret) == 2  # the line and the curl
    assert token_answer(fresh_server, client_id, secret)["code"] == 0


def test_user_add_list_and_reset_secret(server: Server) -> None:
    name = f"alice-{uuid.uuid4().hex[:8]}"
    added = server.cli("user", "add", name)
    assert added.returncode == 0, added.stderr
    client_id, secret, curl = printed(added.stdout)
    assert run_curl(curl)["code"] == 0
    # JSON for scripts: one object with the same three facts.
    bob = f"bob-{uuid.uuid4().hex[:8]}"
    as_json = json.loads(server.cli("user", "add", bob, "--json").stdout)
    assert set(as_json) == {"name", "client_id", "client_secret"} and as_json["name"] == bob

    listing = server.cli("user", "list")
    assert listing.returncode == 0
    assert name in listing.stdout and client_id in listing.stdout and bob in listing.stdout
    assert secret not in listing.stdout and as_json["client_secret"] not in listing.stdout

    api = Api(server, {"name": name, "client_id": client_id, "client_secret": secret})
    try:
        old_token = api.token
        reset = server.cli("user", "reset-secret", name)
        assert reset.returncode == 0, reset.stderr
        same_id, new_secret, new_curl = printed(reset.stdout)
        assert same_id == client_id and new_secret != secret
        assert token_answer(server, client_id, secret)["code"] != 0
        assert api.post(LIST, {"limit": 1})["code"] == 401
        assert old_token == api.token
        assert run_curl(new_curl)["code"] == 0
    finally:
        api.close()


def test_user_commands_refuse_bad_names_clearly(server: Server) -> None:
    taken = f"carol-{uuid.uuid4().hex[:8]}"
    assert server.cli("user", "add", taken).returncode == 0
    for args in (
        ("user", "add", taken),
        ("user", "add", "../has space"),
        ("user", "reset-secret", f"nobody-{uuid.uuid4().hex[:8]}"),
    ):
        done = server.cli(*args)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stdout + done.stderr, args
        assert "error" in (done.stdout + done.stderr).lower(), args


def test_public_url_and_default_custom_domain_shape_every_url(fresh_server: Server) -> None:
    public = f"http://localhost:{fresh_server.port}"
    fresh_server.env.update(
        OPENPAN_PUBLIC_URL=public + "/",
        OPENPAN_CUSTOM_DOMAIN_DEFAULT="https://img.example.com",
    )
    fresh_server.start()
    _, _, curl = printed(fresh_server.log_path.read_text())
    assert f"'{public}/api/v1/access_token'" in curl
    api = fresh_server.client(fresh_server.take_user())
    try:
        data = jpeg_bytes(3000)
        pre = create(api, data, "public.jpg")["preuploadID"]
        url = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": 1})["presignedURL"]
        assert url.startswith(public + "/upload/")
        file_id = api.oss_upload(data, "shown.jpg")
        entry = api.ok("GET", DETAIL, {"fileID": file_id})
        assert entry["downloadURL"].startswith(public + "/")
        assert entry["userSelfURL"].startswith("https://img.example.com/")
        assert entry["userSelfURL"].endswith(entry["downloadURL"][len(public) :])
        assert httpx.get(entry["downloadURL"]).content == data
    finally:
        api.close()


def test_user_commands_refuse_a_directory_without_a_store(tmp_path: Path) -> None:
    # Run from the wrong directory, a user command used to make an empty store there and list
    # nobody with exit status 0.
    missing = tmp_path / "not-a-store"
    for args in (["user", "list"], ["user", "add", "alice"], ["user", "reset-secret", "alice"]):
        done = subprocess.run(
            [sys.executable, "-m", "openpan", *args, "--data-dir", str(missing)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OPENPAN_DATA_DIR": ""},
        )
        assert done.returncode == 1, args
        said = " ".join((done.stdout + done.stderr).split())
        assert f"no openpan store in {missing}" in said and "--data-dir" in said, said
        assert "OPENPAN_DATA_DIR" in said
    assert not missing.exists()


def test_serve_help_points_at_the_settings() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "openpan", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )
    said = " ".join(done.stdout.split())
    assert done.returncode == 0 and "OPENPAN_*" in said and "OPENPAN_CONFIG" in said, said
