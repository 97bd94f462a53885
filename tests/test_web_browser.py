"""The web app in a real browser: Playwright driving Debian's Chromium against a running server.

Every test signs in through the page, does what a person would, and ends with no JavaScript
error or warning on the console and no critical or serious axe-core violation on the pages it
saw. ``OPENPAN_SCREENSHOTS=1`` writes the README's screenshots into ``docs/screenshots``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MiB, Server, make_server
from offline_kit import origin_at
from playwright.sync_api import Page, expect, sync_playwright
from webapp_kit import (
    PASSWORD,
    axe_violations,
    launch,
    no_sideways_scroll,
    picture,
    png,
    set_password,
    web_user,
)

pytestmark = pytest.mark.timeout(300)
# Generous waits: the suite runs beside other tests on a busy machine, and a wait ends as soon
# as its condition holds, so a long one costs nothing when things are quick.
expect.set_options(timeout=30_000)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with 1 MiB slices, so a 9 MiB upload is nine slices sent in parallel."""
    srv = make_server(tmp_path_factory.mktemp("web"), OPENPAN_SLICE_SIZE=str(MiB))
    srv.start()
    done = set_password(srv, "admin")
    assert done.returncode == 0, done.stdout + done.stderr
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


class Visit:
    """One browser context: its page, what the console said, and the pages axe has checked."""

    def __init__(self, browser: Any, server: Server, **context: Any) -> None:
        options = {"viewport": {"width": 1280, "height": 860}, "locale": "en-US", **context}
        self.context = browser.new_context(accept_downloads=True, **options)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        self.server = server
        self.context.set_default_timeout(60_000)
        self.page: Page = self.context.new_page()
        self.console: list[str] = []
        self.violations: dict[str, list[dict[str, Any]]] = {}
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def sign_in(self, name: str, password: str = PASSWORD) -> None:
        page = self.page
        page.goto(self.server.url + "/")
        page.locator("#login-name").fill(name)
        page.locator("#login-password").fill(password)
        page.locator("form button[type=submit]").click()
        expect(page.locator("nav.tabs")).to_be_visible()

    def go(self, hash_route: str) -> None:
        self.page.goto(f"{self.server.url}/{hash_route}")
        self.page.wait_for_load_state("networkidle")

    def check_a11y(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.violations[name] = axe_violations(self.page)

    def finish(self) -> None:
        self.context.close()
        assert self.console == [], self.console
        assert all(not v for v in self.violations.values()), self.violations


@pytest.fixture
def visit(browser: Any, web_server: Server) -> Iterator[Any]:
    made: list[Visit] = []

    def open_visit(**context: Any) -> Visit:
        made.append(Visit(browser, web_server, **context))
        return made[-1]

    yield open_visit
    for v in made:
        v.finish()


def upload_files(page: Page, files: list[tuple[str, bytes]], mime: str = "image/png") -> None:
    page.get_by_role("button", name=re.compile("^(Upload|上传)$")).click()
    page.get_by_test_id("upload-input").set_input_files(
        [{"name": n, "mimeType": mime, "buffer": data} for n, data in files]
    )


def wait_uploads(page: Page, count: int) -> None:
    """Wait until ``count`` uploads in the panel have finished (uploaded or instant)."""
    finished = page.locator(".uploads li[data-state=done], .uploads li[data-state=instant]")
    expect(finished).to_have_count(count, timeout=60_000)


def test_sign_in_wrong_password_then_sign_out_ends_the_session(
    visit: Any, web_server: Server
) -> None:
    user = web_user(web_server)
    v = visit()
    page = v.page
    page.goto(web_server.url + "/")
    v.check_a11y("sign-in")
    page.locator("#login-name").fill(user["name"])
    page.locator("#login-password").fill("not the password")
    page.locator("form button[type=submit]").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
    page.locator("#login-password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page.locator("nav.tabs")).to_be_visible()
    cookies = {c["name"]: c for c in v.context.cookies()}
    session = cookies["openpan_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    # No long-lived credential in the page's storage.
    assert (
        page.evaluate("Object.keys(localStorage).length + Object.keys(sessionStorage).length") == 0
    )
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-name")).to_be_visible()
    # The old cookie is worthless now: the server ended the session.
    answer = httpx.get(
        web_server.url + "/web/api/me", cookies={"openpan_session": session["value"]}
    ).json()
    assert answer["code"] == 401


def test_upload_by_picker_and_drop_instant_upload_detail_links(
    visit: Any, web_server: Server
) -> None:
    user = web_user(web_server)
    v = visit()
    v.sign_in(user["name"])
    page = v.page
    v.check_a11y("empty gallery")
    first, second = png(200, 150), png(120, 90)
    upload_files(page, [("first.png", first), ("second.png", second)])
    wait_uploads(page, 2)
    expect(page.locator(".grid .tile")).to_have_count(2)
    # Thumbnails are variants (a 256-pixel square), never the originals.
    sources = page.locator(".grid img").evaluate_all("els => els.map(e => e.src)")
    assert all("w=256" in s and "fit=cover" in s for s in sources), sources
    expect(page.locator(".grid img").first).to_have_js_property("complete", True)
    assert page.locator(".grid img").first.evaluate("img => img.naturalWidth") > 0

    # The same bytes again: the server already has them, the panel says so (秒传).
    page.locator(".uploads button", has_text="Clear finished").click()
    page.evaluate(
        """(bytes) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], "again.png", {type: "image/png"}));
            const options = {dataTransfer: data, bubbles: true, cancelable: true};
            document.body.dispatchEvent(new DragEvent("dragover", options));
            document.body.dispatchEvent(new DragEvent("drop", options));
        }""",
        list(first),
    )
    expect(page.locator(".uploads li[data-state=instant]")).to_contain_text("Instant upload")
    expect(page.locator(".grid .tile")).to_have_count(3)

    # The detail: size, dimensions and the four link forms, each copyable.
    page.locator(".grid .tile", has_text="first.png").locator("a.thumb").click()
    expect(page.get_by_role("heading", name="first.png")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("200 × 150")
    url = page.locator("#link-url").input_value()
    assert re.fullmatch(rf"{re.escape(web_server.url)}/\d+/[0-9a-z]+\.png", url), url
    assert page.locator("#link-markdown").input_value() == f"![first.png]({url})"
    assert page.locator("#link-html").input_value() == f'<img src="{url}" alt="first.png">'
    assert page.locator("#link-bbcode").input_value() == f"[img]{url}[/img]"
    assert page.locator("#link-thumb").input_value().startswith(url + "?w=256")
    assert hashlib.md5(httpx.get(url).content).hexdigest() == hashlib.md5(first).hexdigest()
    page.locator(".copy-field", has=page.locator("#link-markdown")).get_by_role("button").click()
    expect(page.get_by_role("status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"![first.png]({url})"
    v.check_a11y("detail")


def test_large_file_goes_in_parallel_slices(visit: Any, web_server: Server, tmp_path: Path) -> None:
    user = web_user(web_server)
    v = visit()
    v.sign_in(user["name"])
    page = v.page
    big = png(64, 64, pad_to=9 * MiB + 12345)
    path = tmp_path / "big.png"
    path.write_bytes(big)
    page.get_by_role("button", name="Upload").click()
    page.get_by_test_id("upload-input").set_input_files(str(path))
    wait_uploads(page, 1)
    page.locator(".grid .tile", has_text="big.png").locator("a.thumb").click()
    expect(page.locator(".facts")).to_contain_text("9.0 MB")
    url = page.locator("#link-url").input_value()
    assert hashlib.md5(httpx.get(url).content).hexdigest() == hashlib.md5(big).hexdigest()


def test_folders_nested_navigation_move_select_and_delete(visit: Any, web_server: Server) -> None:
    user = web_user(web_server)
    v = visit()
    v.sign_in(user["name"])
    page = v.page
    for name in ("Trips",):
        page.get_by_role("button", name="New folder").click()
        page.locator("#mkdir-name").fill(name)
        page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Open folder Trips").click()
    expect(page.get_by_role("heading", name="Trips")).to_be_visible()
    page.get_by_role("button", name="New folder").click()
    page.locator("#mkdir-name").fill("2026")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Open folder 2026").click()
    crumbs = page.get_by_role("navigation", name="Path")
    expect(crumbs).to_contain_text("Image bed")
    expect(crumbs).to_contain_text("Trips")
    expect(crumbs).to_contain_text("2026")
    upload_files(page, [(f"p{i}.png", png(40 + i, 40)) for i in range(4)])
    wait_uploads(page, 4)
    expect(page.locator(".grid .tile")).to_have_count(4)
    v.check_a11y("nested folder")

    # Click one, shift-click another: the range between them is selected.
    tiles = page.locator(".grid .tile .pick")
    tiles.nth(0).click()
    tiles.nth(2).click(modifiers=["Shift"])
    expect(page.locator(".selection")).to_contain_text("3 selected")
    page.get_by_role("button", name="Move to…").click()
    page.locator("dialog").get_by_role("button", name="Choose this folder").click()  # the root
    expect(page.locator(".grid .tile")).to_have_count(1)
    page.get_by_role("link", name="Image bed", exact=True).last.click()
    expect(page.locator(".grid .tile")).to_have_count(4)  # Trips and the three moved here

    page.get_by_label("Select all").check()
    page.get_by_role("button", name="Delete").click()
    dialog = page.locator("dialog")
    expect(dialog).to_contain_text("Delete the 4 selected items?")
    v.check_a11y("confirm delete")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".empty")).to_be_visible()
    assert httpx.get(web_server.url + "/web/api/gallery").json()["code"] == 401  # no cookie


def test_offline_download_reaches_success(visit: Any, web_server: Server) -> None:
    user = web_user(web_server)
    image = png(300, 200)
    with origin_at() as origin:
        url = origin.file("/photo.png", image)
        v = visit()
        v.sign_in(user["name"])
        page = v.page
        page.get_by_role("link", name="Offline downloads").click()
        page.locator("#offline-urls").fill(url + "\nftp://example.com/x.png")
        page.get_by_role("button", name="Start download").click()
        expect(page.get_by_role("alert")).to_contain_text("ftp://example.com/x.png")
        task = page.locator(".task").first
        expect(task.locator(".badge")).to_have_text("Succeeded", timeout=30_000)
        v.check_a11y("offline tasks")
        task.get_by_role("link", name="Open file").click()
        expect(page.locator(".facts")).to_contain_text("300 × 200")


def test_cloud_disk_upload_rename_trash_restore_download_copy(
    visit: Any, web_server: Server
) -> None:
    user = web_user(web_server)
    v = visit()
    v.sign_in(user["name"])
    page = v.page
    page.get_by_role("link", name="Cloud disk").click()
    expect(page.get_by_role("heading", name="Cloud disk")).to_be_visible()
    image = png(80, 60)
    page.get_by_test_id("disk-upload-input").set_input_files(
        [{"name": "notes.png", "mimeType": "image/png", "buffer": image}]
    )
    wait_uploads(page, 1)
    row = page.locator("table.files tr", has_text="notes.png")
    expect(row).to_be_visible()
    v.check_a11y("cloud disk")

    with page.expect_download() as download:
        row.get_by_role("button", name="Download").click()
    assert (
        hashlib.md5(Path(download.value.path()).read_bytes()).hexdigest()
        == hashlib.md5(image).hexdigest()
    )

    row.get_by_role("button", name="Rename").click()
    page.locator("#disk-rename").fill("renamed.png")
    page.locator("dialog").get_by_role("button", name="Rename").click()
    row = page.locator("table.files tr", has_text="renamed.png")
    expect(row).to_be_visible()

    # Copy into the image bed: a copy task, then the image is in the gallery.
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Copy to image bed").click()
    page.locator("dialog").get_by_role("button", name="Choose this folder").click()
    expect(page.get_by_role("heading", name="Copy tasks")).to_be_visible()
    expect(page.locator(".task", has_text="Copy 1 files").locator(".badge")).to_have_text(
        "Succeeded", timeout=30_000
    )
    page.get_by_role("link", name="Image bed").click()
    expect(page.locator(".grid .tile", has_text="renamed.png")).to_be_visible()

    page.get_by_role("link", name="Cloud disk").click()
    row = page.locator("table.files tr", has_text="renamed.png")
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Move to trash").click()
    page.locator("dialog").get_by_role("button", name="Move to trash").click()
    expect(page.locator(".empty")).to_be_visible()
    page.get_by_label("Show trash").check()
    row = page.locator("table.files tr", has_text="renamed.png")
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Restore").click()
    page.get_by_label("Show trash").uncheck()
    expect(page.locator("table.files tr", has_text="renamed.png")).to_be_visible()


def test_share_a_folder_as_a_public_gallery_then_revoke(visit: Any, web_server: Server) -> None:
    user = web_user(web_server)
    v = visit()
    v.sign_in(user["name"])
    page = v.page
    page.get_by_role("button", name="New folder").click()
    page.locator("#mkdir-name").fill("Tom & Jerry's")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Open folder Tom & Jerry's").click()
    upload_files(page, [("beach.png", png(90, 90))])
    wait_uploads(page, 1)
    page.get_by_role("button", name="Share folder").click()
    share_url = page.locator("#share-url").input_value()
    assert "/s/" in share_url
    public = v.context.new_page()
    public.goto(share_url)
    expect(public.get_by_role("heading", name="Tom & Jerry's")).to_be_visible()  # escaped
    expect(public.locator(".grid img")).to_have_count(1)
    v.violations["shared gallery"] = axe_violations(public)
    public.close()
    page.locator("dialog").get_by_role("button", name="Revoke").click()
    assert httpx.get(share_url).status_code == 404


def test_account_rotates_the_secret_and_saves_link_settings(visit: Any, web_server: Server) -> None:
    user = web_user(web_server)
    v = visit()
    v.sign_in(user["name"])
    page = v.page
    page.get_by_role("link", name="Account").click()
    expect(page.locator("#client-id")).to_have_value(user["client_id"])
    v.check_a11y("account")
    page.get_by_role("button", name="Rotate clientSecret").click()
    page.locator("dialog").get_by_role("button", name="Rotate clientSecret").click()
    secret = page.locator("#client-secret").input_value()
    assert secret and secret != user["client_secret"]
    token = httpx.post(
        web_server.url + "/api/v1/access_token",
        json={"clientID": user["client_id"], "clientSecret": secret},
        headers={"Platform": "open_platform"},
    ).json()
    assert token["code"] == 0, token
    page.locator("#custom-domain").fill(f"img-{user['name'].lower()}.example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved")
    page.reload()
    expect(page.locator("#custom-domain")).to_have_value(f"img-{user['name'].lower()}.example.com")


def test_admin_page_for_the_admin_and_refused_to_others(visit: Any, web_server: Server) -> None:
    v = visit()
    v.sign_in("admin")
    page = v.page
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Admin")).to_be_visible()
    name = f"web{os.getpid()}x{os.urandom(3).hex()}"
    page.locator("#new-name").fill(name)
    page.locator("#new-password").fill("a fine password")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".created")).to_contain_text(name)
    v.check_a11y("admin")

    other = visit()
    other.sign_in(name, "a fine password")
    expect(other.page.get_by_role("link", name="Admin")).to_have_count(0)
    other.go("#/admin")
    expect(other.page.get_by_role("alert")).to_contain_text("administrators only")
    other.check_a11y("admin refused")

    # Disabled by the admin: the other user's session ends at once.
    page.locator("tr", has_text=name).get_by_role("button", name="Disable").click()
    expect(page.locator("tr", has_text=name)).to_contain_text("disabled")
    other.go("#/gallery")
    expect(other.page.locator("#login-name")).to_be_visible()


def test_both_languages_and_no_untranslated_string(visit: Any, web_server: Server) -> None:
    user = web_user(web_server)
    v = visit(locale="zh-CN")
    v.sign_in(user["name"])
    page = v.page
    tabs = page.get_by_role("navigation", name="主菜单")
    expect(tabs.get_by_role("link", name="图床")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    for route in ("#/gallery", "#/disk", "#/tasks", "#/account"):
        v.go(route)
        v.check_a11y("zh " + route)
    page.get_by_role("button", name="English").click()
    tabs = page.get_by_role("navigation", name="Main menu")
    expect(tabs.get_by_role("link", name="Image bed")).to_be_visible()
    page.reload()  # the choice is remembered
    expect(tabs.get_by_role("link", name="Image bed")).to_be_visible()
    # The server-rendered pages follow the same choice.
    assert page.evaluate("document.documentElement.lang") == "en"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_width_and_screenshots(
    visit: Any, web_server: Server, scheme: str, tmp_path: Path
) -> None:
    user = web_user(web_server)
    shots = SCREENSHOTS if os.environ.get("OPENPAN_SCREENSHOTS") else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    desktop = visit(color_scheme=scheme)
    desktop.page.goto(web_server.url + "/")
    desktop.page.screenshot(path=str(shots / f"sign-in-{scheme}.png"))
    desktop.sign_in(user["name"])
    upload_files(
        desktop.page, [(f"photo-{i + 1}.png", picture(320 + 16 * i, 240, i)) for i in range(6)]
    )
    wait_uploads(desktop.page, 6)
    desktop.page.locator(".uploads button", has_text="Clear finished").click()
    desktop.page.wait_for_load_state("networkidle")
    desktop.page.screenshot(path=str(shots / f"gallery-{scheme}.png"))
    desktop.page.locator(".grid a.thumb").first.click()
    expect(desktop.page.locator(".facts")).to_be_visible()
    desktop.page.wait_for_load_state("networkidle")
    desktop.page.screenshot(path=str(shots / f"detail-{scheme}.png"))
    desktop.check_a11y(f"detail {scheme}")

    phone = visit(viewport={"width": 390, "height": 844}, color_scheme=scheme, has_touch=True)
    phone.sign_in(user["name"])
    for route in ("#/gallery", "#/disk", "#/tasks", "#/account"):
        phone.go(route)
        assert no_sideways_scroll(phone.page), route
        phone.check_a11y(f"phone {scheme} {route}")
    phone.go("#/gallery")
    phone.page.screenshot(path=str(shots / f"gallery-phone-{scheme}.png"))
    phone.page.locator(".grid a.thumb").first.click()
    expect(phone.page.locator(".facts")).to_be_visible()
    assert no_sideways_scroll(phone.page), "detail"
    phone.page.screenshot(path=str(shots / f"detail-phone-{scheme}.png"), full_page=True)
