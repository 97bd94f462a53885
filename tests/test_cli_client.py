"""The client commands (``openpan login|ls|upload|...``) run as subprocesses: exit codes,
output (``--json`` parsed), errors on one line, credentials from OPENPAN_* variables."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sdkkit
import typer
from conftest import MiB, Server, free_port, jpeg_bytes
from typer.testing import CliRunner

from openpan.cli.main import app
from openpan.settings import Settings


class Shell:
    """``openpan ...`` in a subprocess with a home of its own and the given variables."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.cwd = tmp / "work"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.home = tmp / "home"
        base = {k: v for k, v in os.environ.items() if not k.startswith("OPENPAN_")}
        self.env = {
            **base,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "XDG_STATE_HOME": str(self.home / "state"),
            "COLUMNS": "200",
            **env,
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "openpan", *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, **env: str) -> str:
        done = self.run(*args, **env)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "--json", **env))


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openpan: error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


@pytest.fixture
def user(server: Server) -> dict[str, str]:
    return sdkkit.creds(server)


@pytest.fixture
def sh(server: Server, user: dict[str, str], tmp_path: Path) -> Shell:
    return Shell(
        tmp_path,
        OPENPAN_BASE_URL=server.url,
        OPENPAN_CLIENT_ID=user["client_id"],
        OPENPAN_CLIENT_SECRET=user["client_secret"],
    )


# In-process checks of the command definitions ----------------------------------------------

CLIENT_COMMANDS = [
    ["login"],
    ["logout"],
    ["whoami"],
    ["ls"],
    ["mkdir"],
    ["mv"],
    ["rm"],
    ["info"],
    ["link"],
    ["upload"],
    ["download"],
    ["offline", "add"],
    ["offline", "status"],
    ["copy", "add"],
    ["copy", "status"],
    ["copy", "failures"],
]


@pytest.mark.parametrize("command", CLIENT_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    done = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "Example: openpan " + command[0] in done.output
    assert "OPENPAN_BASE_URL" in done.output and "OPENPAN_TOKEN" in done.output


def _commands(command: Any) -> list[Any]:
    """A command and, for a group, every command under it (Typer's own Click classes)."""
    subs = getattr(command, "commands", {})
    return [command, *(c for sub in subs.values() for c in _commands(sub))]


def test_every_option_reads_an_openpan_variable_that_is_not_a_server_setting() -> None:
    root: Any = typer.main.get_command(app)
    client_side: set[str] = set()
    for name in [c[0] for c in CLIENT_COMMANDS]:
        for command in _commands(root.commands[name]):
            for param in command.params:
                if param.param_type_name != "option" or param.name in ("help", "disk"):
                    continue
                assert isinstance(param.envvar, str), (command.name, param.name)
                assert param.envvar.startswith("OPENPAN_"), (command.name, param.name)
                client_side.add(param.envvar)
    assert {
        "OPENPAN_BASE_URL",
        "OPENPAN_CLIENT_ID",
        "OPENPAN_CLIENT_SECRET",
        "OPENPAN_TOKEN",
        "OPENPAN_UPLOAD_TO",
        "OPENPAN_JOBS",
    } <= client_side
    server_side = {f"OPENPAN_{field.upper()}" for field in Settings.model_fields}
    assert client_side.isdisjoint(server_side | {"OPENPAN_CONFIG"})


# Through real subprocesses ------------------------------------------------------------------


def test_file_commands_with_credentials_from_the_environment(
    sh: Shell, server: Server, tmp_path: Path
) -> None:
    me = sh.json("whoami")
    assert me["base_url"] == server.url and me["client_id"] and me["token_expires_at"]

    made = sh.json("mkdir", "/cli/album", "/cli/moved")
    assert [m["path"] for m in made] == ["/cli/album", "/cli/moved"] and made[0]["id"]

    photo = jpeg_bytes(2 * MiB + 11)
    (sh.cwd / "photo.jpg").write_bytes(photo)
    (sh.cwd / "tree" / "sub").mkdir(parents=True)
    (sh.cwd / "tree" / "one.jpg").write_bytes(jpeg_bytes(1000))
    (sh.cwd / "tree" / "sub" / "two.png").write_bytes(jpeg_bytes(2000))
    uploaded = sh.json("upload", "photo.jpg", "tree", "--to", "/cli/album", "-j", "2")
    assert uploaded["failures"] == []
    by_name = {f["filename"]: f for f in uploaded["files"]}
    assert set(by_name) == {"photo.jpg", "one.jpg", "two.png"}
    assert httpx.get(by_name["photo.jpg"]["link"]).content == photo
    assert by_name["photo.jpg"]["etag"] == hashlib.md5(photo).hexdigest()

    quiet = sh.ok("upload", "photo.jpg", "tree", "--to", "/cli/album", "-q")
    assert sorted(quiet.split()) == sorted(f["link"] for f in uploaded["files"])

    listed = sh.json("ls", "/cli/album")
    assert {e["filename"] for e in listed} == {"photo.jpg", "tree"}
    table = sh.ok("ls", "/cli/album")
    assert "photo.jpg" in table and "2.0 MiB" in table

    info = sh.json("info", "/cli/album/photo.jpg")
    assert info["size"] == len(photo) and info["file_id"] == by_name["photo.jpg"]["file_id"]

    got = sh.json("download", "/cli/album/photo.jpg", "-o", "back/")
    assert Path(got[0]["path"]).name == "photo.jpg"
    assert (sh.cwd / "back" / "photo.jpg").read_bytes() == photo

    sh.ok("mv", "/cli/album/photo.jpg", str(by_name["one.jpg"]["file_id"]), "/cli/moved")
    assert {e["filename"] for e in sh.json("ls", "/cli/moved")} == {"photo.jpg", "one.jpg"}
    sh.ok("rm", "/cli/moved")
    done = sh.run("ls", "/cli/moved")
    assert done.returncode == 4 and "/cli/moved" in one_line_error(done)


def test_options_and_space_come_from_variables(sh: Shell, server: Server) -> None:
    (sh.cwd / "env.jpg").write_bytes(jpeg_bytes(1234))
    sh.ok("upload", "env.jpg", OPENPAN_UPLOAD_TO="/from-env", OPENPAN_QUIET="1")
    assert [e["filename"] for e in sh.json("ls", "/from-env")] == ["env.jpg"]
    if sdkkit.missing_endpoints(server, "/api/v2/file/list", "/upload/v1/file/mkdir"):
        return
    sh.ok("mkdir", "/disk-only", OPENPAN_SPACE="disk")
    assert [e["filename"] for e in sh.json("ls", OPENPAN_SPACE="disk")] == ["disk-only"]
    assert [e["filename"] for e in sh.json("ls", "--disk")] == ["disk-only"]
    assert "disk-only" not in {e["filename"] for e in sh.json("ls", "--oss")}


def test_login_stores_a_profile_and_logout_forgets_it(
    server: Server, user: dict[str, str], tmp_path: Path
) -> None:
    sh = Shell(tmp_path)
    done = sh.run("whoami")
    assert done.returncode == 3 and "openpan login" in one_line_error(done)
    done = sh.run("login", "--base-url", server.url)  # no terminal to ask for the rest
    assert done.returncode == 2 and "clientID is missing" in one_line_error(done)
    logged = sh.json(
        "login",
        "--base-url",
        server.url,
        "--client-id",
        user["client_id"],
        "--client-secret",
        user["client_secret"],
        "--profile",
        "work",
    )
    config = Path(logged["config"])
    assert config.is_file() and config.stat().st_mode & 0o777 == 0o600
    assert user["client_secret"] in config.read_text()
    assert sh.json("whoami", "--profile", "work")["client_id"] == user["client_id"]
    assert sh.json("whoami", OPENPAN_PROFILE="work")["base_url"] == server.url
    tokens = sh.home / "cache" / "openpan" / "tokens.json"
    assert tokens.is_file()  # runs share one token instead of retiring each other's
    assert sh.run("whoami").returncode == 3  # the default profile is still empty
    sh.ok("logout", "--profile", "work")
    assert sh.run("whoami", "--profile", "work").returncode == 3


def test_errors_are_one_line_with_the_servers_message_and_an_exit_code(
    server: Server, user: dict[str, str], tmp_path: Path
) -> None:
    sh = Shell(
        tmp_path,
        OPENPAN_BASE_URL=server.url,
        OPENPAN_CLIENT_ID=user["client_id"],
        OPENPAN_CLIENT_SECRET="wrong",
    )
    done = sh.run("ls")
    line = one_line_error(done)
    assert done.returncode == 3 and "clientSecret" in line and "trace ID" in line

    good = Shell(
        tmp_path / "good",
        OPENPAN_BASE_URL=server.url,
        OPENPAN_CLIENT_ID=user["client_id"],
        OPENPAN_CLIENT_SECRET=user["client_secret"],
    )
    done = good.run("info", "no-such-id")
    assert done.returncode == 4 and "code 5066" in one_line_error(done)
    (good.cwd / "notes.txt").write_bytes(b"not an image")
    done = good.run("upload", "notes.txt", "--json")
    assert done.returncode == 1 and "trace ID" in one_line_error(done)
    assert good.run("mv", "only-one").returncode == 2
    assert good.run("upload").returncode == 2
    done = good.run("ls", OPENPAN_BASE_URL=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 5 and "ConnectError" in one_line_error(done)


def test_upload_shows_progress_bars_when_asked(sh: Shell) -> None:
    (sh.cwd / "bar.jpg").write_bytes(jpeg_bytes(3 * MiB))
    done = sh.run("upload", "bar.jpg", "--progress", "--to", "/bars")
    assert done.returncode == 0, done.stderr
    assert "total" in done.stderr and "bar.jpg" in done.stderr and "MB" in done.stderr
    assert "bar.jpg → http" in done.stdout


def test_offline_and_copy_commands(sh: Shell, server: Server) -> None:
    sdkkit.need(
        server,
        "/api/v1/oss/offline/download",
        "/api/v1/oss/offline/download/process",
        "/api/v1/oss/source/copy",
        "/upload/v1/file/create",
    )
    image = jpeg_bytes(50_000)
    with sdkkit.origin({"/web.jpg": image}) as url:
        [task] = sh.json("offline", "add", url + "/web.jpg", "--oss", "--to", "/web", "--wait")
        assert task["status"] == "succeeded" and task["process"] == 100
        status = sh.json("offline", "status", str(task["task_id"]), "--oss")
        assert status[0]["status_code"] == 2
        assert task["fail_reason"] == ""
        [made] = sh.json("ls", "/web")
        assert task["file_id"] == str(made["file_id"]) != ""  # which file it made
        done = sh.run("offline", "add", url + "/missing.jpg", "--oss", "--wait", "--timeout", "60")
        assert done.returncode == 1 and "failed" in done.stdout
        assert "HTTP 404" in done.stdout  # why, not only that it failed
        failed = sh.run("offline", "add", url + "/missing.jpg", "--oss", "--wait", "--json")
        [view] = json.loads(failed.stdout)
        assert failed.returncode == 1 and "HTTP 404" in view["fail_reason"], view
    assert [e["etag"] for e in sh.json("ls", "/web")] == [hashlib.md5(image).hexdigest()]

    (sh.cwd / "pics").mkdir()
    (sh.cwd / "pics" / "p.jpg").write_bytes(jpeg_bytes(4000))
    sh.ok("upload", "pics", "--disk")
    copied = sh.json("copy", "add", "/pics", "--to", "/gallery", "--wait")
    assert copied["status"] == "done"
    assert sh.json("copy", "failures", copied["task_id"]) == []
    assert [e["filename"] for e in sh.json("ls", "/gallery")] == ["p.jpg"]


def _readme_blocks(heading: str, language: str) -> list[str]:
    text = (Path(__file__).parent.parent / "README.md").read_text("utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n```", 1)[0] for block in section.split(f"```{language}\n")[1:]]


def test_readme_sections_run_as_written(sh: Shell) -> None:
    python = _readme_blocks("Use it from Python", "python")
    shell = _readme_blocks("Use it from the shell", "sh")
    assert len(python) == 2 and len(shell) == 1
    for block in python:
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=sh.cwd, env=sh.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert "cat.jpg" in done.stdout
    path = f"{Path(sys.executable).parent}{os.pathsep}{sh.env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", shell[0]],
        cwd=sh.cwd,
        env={**sh.env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(already there)" in done.stdout and (sh.cwd / "downloads" / "dog.jpg").is_file()
