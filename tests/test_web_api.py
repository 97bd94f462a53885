"""The web app's server side over plain HTTP: sessions, CSRF, sign-in throttling, roles,
disabled users, folder shares, the static assets and pages, and bad input on every field."""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Iterator

import httpx
import pytest
from conftest import Api, Server, make_server
from terminal import run_on_terminal
from webapp_kit import PASSWORD, Session, png, set_password, web_user


@pytest.fixture
def session(server: Server) -> Iterator[Session]:
    user = web_user(server)
    web = Session(server, user["name"])
    yield web
    web.close()


def test_the_session_cookie_is_httponly_samesite_and_carries_no_secret(server: Server) -> None:
    user = web_user(server)
    answer = httpx.post(
        server.url + "/web/api/login", json={"name": user["name"], "password": PASSWORD}
    )
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # the public URL is http here
    data = answer.json()["data"]
    assert data["name"] == user["name"] and not data["isAdmin"]
    assert user["client_secret"] not in answer.text


def test_the_api_takes_the_session_cookie_with_its_csrf_token_only(session: Session) -> None:
    listed = session.ok("POST", "/api/v1/oss/file/list", json={"parentFileId": "", "limit": 10})
    assert listed["fileList"] == []
    # Without the token, or with another, the cookie authenticates nothing, whatever the method.
    for headers in ({"X-CSRF-Token": ""}, {"X-CSRF-Token": "0" * 32}):
        answer = session.call("POST", "/api/v1/oss/file/list", json={}, headers=headers)
        assert answer["code"] == 401 and "X-CSRF-Token" in answer["message"]
    answer = session.http.get("/api/v1/user/info").json()
    assert answer["code"] == 401 and "X-CSRF-Token" in answer["message"]
    # A bearer token still wins when both are sent; a bad one is refused, not excused by the cookie.
    answer = session.call("GET", "/api/v1/user/info", headers={"Authorization": "Bearer nope"})
    assert answer["code"] == 401


def test_sign_out_ends_the_session_on_the_server(session: Session) -> None:
    cookie = session.http.cookies["openpan_session"]
    session.ok("POST", "/web/api/logout", json={})
    answer = httpx.get(
        session.http.base_url.join("/web/api/me"), cookies={"openpan_session": cookie}
    )
    assert answer.json()["code"] == 401


def test_wrong_passwords_are_refused_and_the_eleventh_in_a_minute_is_throttled(
    fresh_server: Server,
) -> None:
    fresh_server.start()
    user = web_user(fresh_server)
    login = fresh_server.url + "/web/api/login"
    for _ in range(10):
        answer = httpx.post(login, json={"name": user["name"], "password": "wrong password"}).json()
        assert answer["code"] != 0 and "wrong user name or password" in answer["message"]
    # Now even the right password waits: the guesser learns nothing.
    answer = httpx.post(login, json={"name": user["name"], "password": PASSWORD}).json()
    assert answer["code"] == 429 and "try again in a minute" in answer["message"]
    # A minute later (the server's clock moved on), the right password works again.
    fresh_server.stop()
    fresh_server.env["OPENPAN_CLOCK_OFFSET"] = "61"
    fresh_server.start()
    assert httpx.post(login, json={"name": user["name"], "password": PASSWORD}).json()["code"] == 0


def test_an_unknown_user_and_a_user_without_a_password_get_the_same_answer(server: Server) -> None:
    nobody = httpx.post(
        server.url + "/web/api/login", json={"name": "nobody-x", "password": "whatever1"}
    )
    creds = server.take_user()  # no web password set
    nopass = httpx.post(
        server.url + "/web/api/login", json={"name": creds["name"], "password": "whatever1"}
    )
    assert nobody.json()["message"] == nopass.json()["message"]
    assert nobody.json()["code"] == nopass.json()["code"] != 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "a"}, "password"),
        ({"name": ["a", "b"], "password": "x" * 10}, "name"),
        ({"name": 5.5, "password": {"a": 1}}, "password"),
        ({"name": "a" * 65, "password": "x" * 10}, "name"),
        ({"name": "a", "password": "x" * 1025}, "password"),
        ({"name": "a\x00b", "password": "x" * 10}, "name"),
    ],
)
def test_bad_sign_in_input_names_the_field(server: Server, body: dict, field: str) -> None:
    answer = httpx.post(server.url + "/web/api/login", json=body)
    assert answer.status_code == 200
    data = answer.json()
    assert data["code"] != 0 and field in data["message"], data


def test_a_body_that_is_not_json_is_refused_cleanly(server: Server) -> None:
    answer = httpx.post(
        server.url + "/web/api/login",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200 and answer.json()["code"] != 0


def test_admin_endpoints_check_the_role_on_the_server(session: Session) -> None:
    for method, path, body in (
        ("GET", "/web/api/admin/users", None),
        ("POST", "/web/api/admin/users/add", {"name": "sneaky", "password": "12345678"}),
        ("POST", "/web/api/admin/users/update", {"name": "admin", "vip": True}),
    ):
        answer = session.call(method, path, json=body)
        assert answer["code"] == 403 and "administrators only" in answer["message"]


def test_the_admin_adds_disables_and_enables_users(server: Server) -> None:
    assert set_password(server, "admin").returncode == 0
    admin = Session(server, "admin")
    try:
        assert admin.me["isAdmin"]
        name = f"added-{server.port}-{id(admin) % 10000}"
        made = admin.ok(
            "POST",
            "/web/api/admin/users/add",
            json={"name": name, "password": "a fine password", "vip": True},
        )
        assert made["clientSecret"]
        row = next(u for u in admin.ok("GET", "/web/api/admin/users")["users"] if u["name"] == name)
        assert row["vip"] and not row["disabled"] and row["hasPassword"]
        again = admin.call(
            "POST", "/web/api/admin/users/add", json={"name": name, "password": "a fine password"}
        )
        assert again["code"] != 0 and "already exists" in again["message"]
        short = admin.call(
            "POST", "/web/api/admin/users/add", json={"name": name + "x", "password": "short"}
        )
        assert short["code"] != 0 and "password" in short["message"]

        # Disabling ends the user's sessions and tokens, and refuses new ones.
        theirs = Session(server, name, "a fine password")
        api = server.client(
            {"name": name, "client_id": made["clientID"], "client_secret": made["clientSecret"]}
        )
        api.ok("GET", "/api/v1/user/info")
        admin.ok("POST", "/web/api/admin/users/update", json={"name": name, "disabled": True})
        assert theirs.call("GET", "/web/api/gallery")["code"] == 401
        assert api.get("/api/v1/user/info")["code"] == 401
        refused = httpx.post(
            server.url + "/web/api/login", json={"name": name, "password": "a fine password"}
        )
        assert refused.json()["code"] != 0 and "disabled" in refused.json()["message"]
        token = httpx.post(
            server.url + "/api/v1/access_token",
            json={"clientID": made["clientID"], "clientSecret": made["clientSecret"]},
            headers={"Platform": "open_platform"},
        ).json()
        assert token["code"] != 0
        admin.ok("POST", "/web/api/admin/users/update", json={"name": name, "disabled": False})
        Session(server, name, "a fine password").close()
        # The administrator cannot be disabled (nobody could then enable anyone).
        assert (
            admin.call(
                "POST", "/web/api/admin/users/update", json={"name": "admin", "disabled": True}
            )["code"]
            != 0
        )
        assert (
            admin.call(
                "POST", "/web/api/admin/users/update", json={"name": "no-such-user", "vip": True}
            )["code"]
            != 0
        )
        theirs.close()
        api.close()
    finally:
        admin.close()


def test_one_users_session_never_reaches_anothers_files(session: Session, server: Server) -> None:
    other = server.client(server.take_user())
    try:
        folder = other.ok(
            "POST", "/upload/v1/oss/file/mkdir", {"name": ["private"], "parentID": "", "type": 1}
        )
        dir_id = folder["list"][0]["dirID"]
        for method, path, kwargs in (
            ("GET", "/web/api/gallery", {"params": {"parentFileId": dir_id}}),
            ("GET", "/web/api/path", {"params": {"fileId": dir_id}}),
            ("POST", "/web/api/shares/create", {"json": {"fileId": dir_id}}),
            ("GET", "/web/api/file", {"params": {"fileId": dir_id}}),
            ("POST", "/api/v1/oss/file/delete", {"json": {"fileIDs": [dir_id]}}),
        ):
            answer = session.call(method, path, **kwargs)
            assert answer["code"] != 0 or answer["data"] == {"path": []}, (path, answer)
        assert other.ok("POST", "/api/v1/oss/file/list", {"parentFileId": dir_id})["fileList"] == []
        listed = other.ok("POST", "/api/v1/oss/file/list", {"parentFileId": ""})["fileList"]
        assert [f["fileId"] for f in listed] == [dir_id]
    finally:
        other.close()


def test_a_shared_folder_is_a_read_only_page_until_revoked(
    session: Session, server: Server
) -> None:
    folder = session.ok(
        "POST", "/upload/v1/oss/file/mkdir", json={"name": ["trip"], "parentID": "", "type": 1}
    )
    dir_id = folder["list"][0]["dirID"]
    for i in range(3):
        data = png(50 + i, 40)
        _web_upload(session, dir_id, f"photo{i}.png", data)
    inner = session.ok(
        "POST",
        "/upload/v1/oss/file/mkdir",
        json={"name": ["hidden"], "parentID": dir_id, "type": 1},
    )
    share = session.ok("POST", "/web/api/shares/create", json={"fileId": dir_id})
    assert (
        session.ok("POST", "/web/api/shares/create", json={"fileId": dir_id})["token"]
        == share["token"]
    )
    page = httpx.get(share["url"], headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    assert page.text.count("<img") == 3 and "hidden" not in page.text
    assert inner["list"][0]["dirID"] not in page.text
    listed = session.ok("GET", "/web/api/shares")["shares"]
    assert [s["token"] for s in listed] == [share["token"]]
    # Another user cannot revoke it; its owner can, and then the page is gone.
    other = web_user(server)
    stranger = Session(server, other["name"])
    assert (
        stranger.call("POST", "/web/api/shares/revoke", json={"token": share["token"]})["code"]
        == 5066
    )
    stranger.close()
    session.ok("POST", "/web/api/shares/revoke", json={"token": share["token"]})
    assert httpx.get(share["url"]).status_code == 404
    assert (
        session.call("POST", "/web/api/shares/revoke", json={"token": share["token"]})["code"]
        == 5066
    )
    assert session.call("POST", "/web/api/shares/create", json={"fileId": ""})["code"] != 0
    assert httpx.get(server.url + "/s/" + "x" * 500).status_code == 404


def _web_upload(session: Session, parent: str, name: str, data: bytes) -> str:
    """An image-bed upload through the page's own flow (cookie and CSRF token)."""
    import hashlib

    created = session.ok(
        "POST",
        "/upload/v1/oss/file/create",
        json={
            "parentFileID": parent,
            "filename": name,
            "etag": hashlib.md5(data).hexdigest(),
            "size": len(data),
            "type": 1,
        },
    )
    if created["reuse"]:
        return str(created["fileID"])
    pre = created["preuploadID"]
    url = session.ok(
        "POST", "/upload/v1/oss/file/get_upload_url", json={"preuploadID": pre, "sliceNo": 1}
    )
    assert httpx.put(url["presignedURL"], content=data).status_code == 200
    done = session.ok("POST", "/upload/v1/oss/file/upload_complete", json={"preuploadID": pre})
    while not done["completed"]:
        done = session.ok(
            "POST", "/upload/v1/oss/file/upload_async_result", json={"preuploadID": pre}
        )
    return str(done["fileID"])


def test_gallery_pages_newest_first_with_thumbnails_and_signed_links(session: Session) -> None:
    ids = [_web_upload(session, "", f"g{i}.png", png(30 + i, 30)) for i in range(5)]
    first = session.ok("GET", "/web/api/gallery", params={"limit": 2})
    second = session.ok(
        "GET", "/web/api/gallery", params={"limit": 2, "lastFileId": first["lastFileId"]}
    )
    third = session.ok(
        "GET", "/web/api/gallery", params={"limit": 2, "lastFileId": second["lastFileId"]}
    )
    seen = [i["fileId"] for page in (first, second, third) for i in page["items"]]
    assert seen == ids[::-1] and third["lastFileId"] == "-1"
    item = first["items"][0]
    assert item["thumbURL"] == item["url"] + "?w=256&h=256&fit=cover&format=auto"
    thumb = httpx.get(item["thumbURL"], headers={"Accept": "image/webp"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    # With a link secret, the page's thumbnails are signed (and work); the bare link does not.
    session.ok("POST", "/web/api/account/settings", json={"linkSecret": "a long link secret"})
    signed = session.ok("GET", "/web/api/gallery", params={"limit": 1})["items"][0]
    assert "auth_key=" in signed["thumbURL"]
    assert httpx.get(signed["thumbURL"]).status_code == 200
    assert httpx.get(signed["url"]).status_code == 403
    detail = session.ok("GET", "/web/api/file", params={"fileId": signed["fileId"]})
    assert (detail["width"], detail["height"]) == (34, 30)
    assert httpx.get(detail["previewURL"]).status_code == 200
    session.ok("POST", "/web/api/account/settings", json={"linkSecret": ""})
    assert httpx.get(signed["url"]).status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/web/api/gallery", {"limit": "0"}, "limit"),
        ("/web/api/gallery", {"limit": "abc"}, "limit"),
        ("/web/api/gallery", {"parentFileId": "x" * 100}, "parentFileId"),
        ("/web/api/gallery", {"parentFileId": "nosuchdir"}, "parentFileId"),
        ("/web/api/path", {"space": "ftp"}, "space"),
        ("/web/api/path", {"space": "disk", "fileId": "abc"}, "fileId"),
        ("/web/api/file", {}, "fileId"),
        ("/web/api/tasks", {"limit": "-1"}, "limit"),
    ],
)
def test_bad_web_api_input_names_the_field(
    session: Session, path: str, params: dict, field: str
) -> None:
    answer = session.call("GET", path, params=params)
    assert answer["code"] != 0 and field in answer["message"], answer


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customDomain": "x" * 300}, "customDomain"),
        ({"customDomain": ["a"] * 3}, "customDomain"),
        ({"refererAllowEmpty": "maybe"}, "refererAllowEmpty"),
        ({"linkSecret": "short"}, "linkSecret"),
        ({"linkSecret": 12345678901}, "linkSecret"),
    ],
)
def test_bad_account_settings_name_the_field_and_change_nothing(
    session: Session, body: dict, field: str
) -> None:
    before = session.ok("GET", "/web/api/me")
    answer = session.call("POST", "/web/api/account/settings", json=body)
    if field == "linkSecret" and isinstance(body["linkSecret"], int):
        # A number is taken as its text (the API's lenient form): 11 characters, accepted.
        assert answer["code"] == 0
        session.ok("POST", "/web/api/account/settings", json={"linkSecret": ""})
        return
    assert answer["code"] != 0 and field in answer["message"], answer
    assert session.ok("GET", "/web/api/me") == before


def test_account_settings_and_secret_rotation(session: Session, server: Server) -> None:
    me = session.ok(
        "POST",
        "/web/api/account/settings",
        json={
            "customDomain": f"pics{server.port}.example.com",
            "refererAllow": "blog.example.com",
            "refererAllowEmpty": True,
        },
    )
    assert (
        me["customDomain"] == f"pics{server.port}.example.com"
        and me["refererAllow"] == "blog.example.com"
    )
    file_id = _web_upload(session, "", "self.png", png(20, 20))
    item = session.ok("GET", "/web/api/file", params={"fileId": file_id})
    assert item["selfURL"].startswith(f"http://pics{server.port}.example.com/")
    # Hotlink protection applies to other sites, never to the server's own pages.
    session.ok("POST", "/web/api/account/settings", json={"refererAllowEmpty": False})
    for referer, status in (
        ("http://blog.example.com/post", 200),
        (server.url + "/", 200),
        ("http://elsewhere.example.net/", 403),
    ):
        answer = httpx.get(item["thumbURL"], headers={"Referer": referer})
        assert answer.status_code == status, referer
    old_client = session.me["clientID"]
    rotated = session.ok("POST", "/web/api/account/secret", json={})
    assert rotated["clientID"] == old_client and len(rotated["clientSecret"]) >= 32
    session.ok("POST", "/web/api/account/settings", json={"customDomain": "", "refererAllow": ""})


def test_changing_the_password_needs_the_current_one_and_ends_sessions(
    session: Session, server: Server
) -> None:
    wrong = session.call(
        "POST",
        "/web/api/account/password",
        json={"current": "nope-nope", "password": "brand new pass"},
    )
    assert wrong["code"] != 0 and "current" in wrong["message"]
    short = session.call(
        "POST", "/web/api/account/password", json={"current": PASSWORD, "password": "short"}
    )
    assert short["code"] != 0 and "password" in short["message"]
    session.ok(
        "POST",
        "/web/api/account/password",
        json={"current": PASSWORD, "password": "brand new pass"},
    )
    assert session.call("GET", "/web/api/gallery")["code"] == 401
    Session(server, session.me["name"], "brand new pass").close()


def test_the_shell_and_static_assets(server: Server) -> None:
    shell = httpx.get(server.url + "/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert shell.status_code == 200 and '<html lang="en">' in shell.text
    policy = shell.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "<script>" not in shell.text  # no inline script at all
    assert (
        '<html lang="zh-CN">'
        in httpx.get(server.url + "/", headers={"Accept-Language": "zh-CN"}).text
    )
    app = re.search(r'src="(/static/[0-9a-f]{12}/app\.js)"', shell.text)
    assert app is not None
    asset = httpx.get(server.url + app.group(1), headers={"Accept-Encoding": "gzip"})
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["content-encoding"] == "gzip" and asset.headers["content-type"].startswith(
        "text/javascript"
    )
    again = httpx.get(server.url + app.group(1), headers={"If-None-Match": asset.headers["etag"]})
    assert again.status_code == 304
    plain = httpx.get(server.url + app.group(1), headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and b"import" in plain.content
    assert httpx.get(server.url + "/static/000000000000/app.js").status_code == 404
    assert (
        httpx.get(server.url + app.group(1).replace("app.js", "../../etc/passwd")).status_code
        == 404
    )
    assert httpx.get(server.url + app.group(1).replace("app.js", "nope.js")).status_code == 404


def test_first_load_weighs_under_200_kb_compressed(server: Server) -> None:
    """Every asset the app can load (all of them, not only the first view's), gzipped."""
    shell = httpx.get(server.url + "/")
    build = re.search(r"/static/([0-9a-f]{12})/", shell.text).group(1)  # type: ignore[union-attr]
    from openpan.api.web_pages import assets

    bundle = assets()
    assert bundle.build == build
    total = len(gzip.compress(shell.content)) + sum(
        len(a.gzipped) for name, a in bundle.files.items() if not name.endswith(".txt")
    )
    assert total < 200 * 1024, total


def test_a_public_svg_never_runs_script_in_the_apps_origin(api: Api) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    file_id = api.oss_upload(svg, "evil.svg")
    url = api.get("/api/v1/oss/file/detail", {"fileID": file_id})["data"]["downloadURL"]
    answer = httpx.get(url)
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert "sandbox" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_user_password_reads_stdin_and_refuses_a_short_one(server: Server) -> None:
    creds = server.take_user()
    done = set_password(server, creds["name"], "short")
    assert done.returncode == 1 and "password" in done.stdout + done.stderr
    assert set_password(server, "no-such-user-at-all").returncode == 1
    done = set_password(server, creds["name"], "long enough password")
    assert done.returncode == 0, done.stdout + done.stderr
    Session(server, creds["name"], "long enough password").close()


def test_first_start_prints_a_web_password_for_admin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(tmp_path)
    srv.start()
    try:
        printed = srv.log_path.read_text()
        password = re.search(r"web password: (\S+)", printed)
        assert password is not None, printed
        web = Session(srv, "admin", password.group(1))
        assert web.me["isAdmin"]
        web.close()
    finally:
        srv.stop()
    # A second start prints no new password, and the first still works.
    srv.start()
    try:
        assert srv.log_path.read_text().count("web password:") == 1
        Session(srv, "admin", password.group(1)).close()
    finally:
        srv.stop()


def test_a_deleted_images_blob_id_reused_never_shows_the_old_image(api: Api) -> None:
    """SQLite hands a deleted row's ID out again: what is cached of an image is keyed by its
    storage key, so a new image that gets the old blob ID shows itself."""
    small = api.oss_upload(png(40, 40), "small.png")
    small_url = api.get("/api/v1/oss/file/detail", {"fileID": small})["data"]["downloadURL"]
    assert httpx.get(small_url + "?w=64").status_code == 200
    assert api.get("/openpan/v1/oss/file/image", {"fileID": small})["data"]["width"] == 40
    api.ok("POST", "/api/v1/oss/file/delete", {"fileIDs": [small]})
    big = api.oss_upload(png(300, 200), "big.png")
    assert api.get("/openpan/v1/oss/file/image", {"fileID": big})["data"]["width"] == 300
    big_url = api.get("/api/v1/oss/file/detail", {"fileID": big})["data"]["downloadURL"]
    import pyvips

    variant = pyvips.Image.new_from_buffer(httpx.get(big_url + "?w=64").content, "")
    assert (variant.width, variant.height) == (64, 43)


def test_the_cli_password_prompt_on_a_terminal_asks_twice(server: Server) -> None:
    """On a terminal the password is asked twice (typer's confirmation prompt)."""
    creds = server.take_user()
    command = [sys.executable, "-m", "openpan", "user", "password", creds["name"]]
    answered = []

    def answer(seen: bytes) -> bytes | None:
        # "New password: ", then typer's "Repeat for confirmation: ": answer each once.
        if seen.count(b": ") > len(answered) and len(answered) < 2:
            answered.append(True)
            return b"typed twice ok\n"
        return None

    _, seen = run_on_terminal(
        [*command, "--data-dir", str(server.data_dir)], server.env, answer=answer, timeout=60
    )
    assert len(answered) == 2, seen
    Session(server, creds["name"], "typed twice ok").close()
