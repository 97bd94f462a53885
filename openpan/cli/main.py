"""The ``openpan`` command: run the server and manage its users."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openpan.cli import client_commands, task_commands, transfer_commands
from openpan.cli.worker import worker as worker_command
from openpan.errors import OpenpanError

# The server's own modules (settings, database, migrations, services) are imported by the
# commands that use them: the client commands and --help start without them (they cost most
# of a second of imports).
if TYPE_CHECKING:
    from openpan.db.engine import Database
    from openpan.services import users
    from openpan.settings import Settings

app = typer.Typer(
    help="openpan: a self-hostable 123pan open-platform server.", no_args_is_help=True
)
user_app = typer.Typer(help="Manage users (clientID / clientSecret pairs).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.command("worker")(worker_command)
console = Console()

JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts)")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory [env: OPENPAN_DATA_DIR]")
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from openpan.settings import SettingsError, load_settings

    try:
        return load_settings(data_dir=data_dir, **overrides)
    except SettingsError as exc:
        console.print("[red]error:[/]", escape(str(exc)), soft_wrap=True)
        raise typer.Exit(2) from exc


async def _open_db(settings: Settings, create: bool = False) -> Database:
    """The store's database, migrated. Only ``serve`` (``create``) may make a new embedded
    store: a command that manages users of an existing one, run from the wrong directory,
    would otherwise work on an empty store made on the spot and seem to succeed."""
    from openpan.db.engine import Database
    from openpan.db.migrate import upgrade

    database = settings.data_dir / "openpan.db"
    if not create and not settings.database_url and not database.exists():
        raise OpenpanError(
            f"no openpan store in {settings.data_dir.resolve()} ({database.name} not found). "
            "Run this where `openpan serve` keeps its data, or point --data-dir or "
            "OPENPAN_DATA_DIR at it (start the server once to make a new store)."
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await upgrade(db.engine)
    return db


def _print_credentials(
    settings: Settings,
    creds: users.Credentials,
    heading: str,
    as_json: bool = False,
    base: str | None = None,
) -> None:
    base = base or settings.effective_public_url
    if as_json:
        print(json.dumps(dataclasses.asdict(creds)))
        return
    console.print(f"[bold green]{heading}[/]")
    console.print(f"  user:         {creds.name}")
    console.print(f"  clientID:     {creds.client_id}")
    console.print(f"  clientSecret: {creds.client_secret}")
    console.print("  (the secret is shown only now; `openpan user reset-secret` makes a new one)")
    console.print("Fetch a token:")
    console.print(
        f"  curl -s -X POST '{base}/api/v1/access_token' -H 'Platform: open_platform' "
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"clientID": "{creds.client_id}", "clientSecret": "{creds.client_secret}"}}\'',
        soft_wrap=True,
        highlight=False,
    )


async def _server_url(db: Database, settings: Settings) -> str:
    """The base URL for printed commands: the configured one, else the one the server
    recorded when it started (it knows its --port), else the default."""
    from openpan.services import public_url

    return settings.public_url or await public_url.recorded(db) or settings.effective_public_url


async def _bootstrap(settings: Settings) -> None:
    """Migrate, and on an empty database create the first user and show its credentials once."""
    from sqlalchemy.exc import IntegrityError

    from openpan.services import public_url, users, web_auth

    db = await _open_db(settings, create=True)
    try:
        await public_url.remember(db, settings.effective_public_url)
        if await users.count_users(db) == 0:
            try:
                creds = await users.create_user(db, "admin")
            except IntegrityError:
                return  # another process sharing the database made it at the same moment
            password = secrets.token_urlsafe(12)
            await web_auth.set_password(db, "admin", password)
            _print_credentials(settings, creds, "First start: created user 'admin'.")
            console.print(
                f"  web password: {password}  (sign in at {settings.effective_public_url}/)"
            )
            console.print("  (`openpan user password admin` sets another)")
    finally:
        await db.dispose()


_SERVE_HELP = (
    "Run the server (embedded default: SQLite and a blob directory under --data-dir).\n\n"
    "Everything else is an OPENPAN_* environment variable (or a key of the TOML file named by "
    "OPENPAN_CONFIG): database and storage URLs, public URL, limits, offline downloads, "
    'scale-out mode. The README\'s "Settings" section lists them all.\n\n'
    "Example: openpan serve --data-dir ./openpan-data --port 8123"
)


@app.command(help=_SERVE_HELP)
def serve(
    data_dir: DataDir = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [env: OPENPAN_HOST]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: OPENPAN_PORT]")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    emulator: Annotated[
        bool,
        typer.Option(
            "--emulator",
            help="Emulator mode: the control API under /_openpan/ for test suites "
            "(reset, seed, faults, journal, clock) [env: OPENPAN_EMULATOR]",
        ),
    ] = False,
) -> None:
    """Run the server (the help text is ``_SERVE_HELP``)."""
    import uvicorn

    from openpan.app import create_app

    overrides: dict[str, Any] = {"host": host, "port": port}
    if emulator:
        overrides["emulator"] = True
    settings = _settings(data_dir, **overrides)
    problem = settings.emulator_problem()
    if problem:
        console.print(f"[red]error:[/] {problem}")
        raise typer.Exit(2)
    if settings.queue_url and settings.effective_database_url.startswith("sqlite"):
        console.print(
            "[red]error:[/] scale-out mode (OPENPAN_QUEUE_URL) needs a shared database: "
            "set OPENPAN_DATABASE_URL=postgresql://..."
        )
        raise typer.Exit(2)
    asyncio.run(_bootstrap(settings))
    console.print(f"openpan listening on http://{settings.host}:{settings.port}", highlight=False)
    console.print(f"public URL: {settings.effective_public_url}", highlight=False)
    if settings.queue_url:
        console.print("scale-out mode: API only; background jobs run in `openpan worker`")
    if settings.emulator:
        console.print(f"emulator mode: control API at {settings.effective_public_url}/_openpan/")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # Formatting an access line costs every request even when its level is filtered out.
        access_log=log_level.lower() in ("debug", "info"),
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


@user_app.command("add")
def user_add(
    name: str,
    vip: Annotated[bool, typer.Option(help="VIP: higher rate limits, no traffic cap")] = False,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Create a user and print its clientID and clientSecret.

    Example: openpan user add alice
    """
    from openpan.services import users

    settings = _settings(data_dir)

    async def run() -> tuple[users.Credentials, str]:
        db = await _open_db(settings)
        try:
            return await users.create_user(db, name, vip=vip), await _server_url(db, settings)
        finally:
            await db.dispose()

    creds, base = _run(run())
    _print_credentials(settings, creds, f"Created user {name!r}.", as_json, base)


@user_app.command("list")
def user_list(data_dir: DataDir = None) -> None:
    """List users (never their secrets).

    Example: openpan user list
    """
    from openpan.services import users

    settings = _settings(data_dir)

    async def run() -> list[Any]:
        db = await _open_db(settings)
        try:
            return await users.list_users(db)
        finally:
            await db.dispose()

    table = Table("id", "name", "clientID", "vip", "custom domain", "created (UTC)")
    for user in _run(run()):
        table.add_row(
            str(user.id),
            user.name,
            user.client_id,
            "yes" if user.vip else "",
            user.custom_domain or "",
            user.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    # Piped into a file or grep, a table narrowed to 80 columns would cut the clientIDs.
    (console if console.is_terminal else Console(width=200)).print(table)


@user_app.command("reset-secret")
def user_reset_secret(name: str, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """Give a user a new clientSecret; tokens issued before stop working.

    Example: openpan user reset-secret alice
    """
    from openpan.services import users

    settings = _settings(data_dir)

    async def run() -> tuple[users.Credentials, str]:
        db = await _open_db(settings)
        try:
            return await users.reset_secret(db, name), await _server_url(db, settings)
        finally:
            await db.dispose()

    creds, base = _run(run())
    _print_credentials(settings, creds, f"New secret for {name!r}.", as_json, base)


@user_app.command("set")
def user_set(
    name: str,
    vip: Annotated[bool | None, typer.Option("--vip/--no-vip", help="VIP user")] = None,
    domain: Annotated[
        str | None, typer.Option(help="Custom domain for userSelfURL ('' clears)")
    ] = None,
    referer_allow: Annotated[
        str | None, typer.Option(help="Hotlink protection: allowed Referer hosts, comma-separated")
    ] = None,
    referer_allow_empty: Annotated[
        bool | None, typer.Option("--allow-empty-referer/--deny-empty-referer")
    ] = None,
    link_secret: Annotated[
        str | None, typer.Option(help="Signed direct links (auth_key) with this secret ('' off)")
    ] = None,
    quota: Annotated[
        int | None, typer.Option(help="Cloud-disk quota in bytes (-1: default)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Change a user's options.

    Example: openpan user set alice --domain img.example.com --vip
    """
    from openpan.services import users

    settings = _settings(data_dir)

    async def run() -> None:
        db = await _open_db(settings)
        try:
            await users.update_user(
                db,
                name,
                vip=vip,
                custom_domain=domain,
                referer_allow=referer_allow,
                referer_allow_empty=referer_allow_empty,
                link_sign_secret=link_secret,
                storage_quota=quota,
            )
        finally:
            await db.dispose()

    _run(run())
    console.print(f"Updated user {name!r}.")


@user_app.command("password")
def user_password(name: str, data_dir: DataDir = None) -> None:
    """Set a user's web-app password: asked twice on a terminal, else one line of stdin.

    Example: echo 'correct horse battery' | openpan user password alice
    """
    from openpan.services import web_auth

    settings = _settings(data_dir)
    if sys.stdin.isatty():
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    async def run() -> None:
        db = await _open_db(settings)
        try:
            await web_auth.set_password(db, name, password)
        finally:
            await db.dispose()

    _run(run())
    console.print(f"Password set for {name!r}; their browser sessions have ended.")


@user_app.command("callback-secret")
def user_callback_secret(
    name: str,
    reset: Annotated[bool, typer.Option("--reset", help="Make a new secret")] = False,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Print the key that signs a user's offline-download callbacks (X-Openpan-Signature:
    sha256=HMAC-SHA256 of the body).

    Example: openpan user callback-secret alice
    """
    from openpan.services import callbacks

    settings = _settings(data_dir)

    async def run() -> str:
        db = await _open_db(settings)
        try:
            return await callbacks.callback_secret(db, name, reset=reset)
        finally:
            await db.dispose()

    secret = _run(run())
    print(json.dumps({"name": name, "callback_secret": secret}) if as_json else secret)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except OpenpanError as exc:
        # Not wrapped (a path cut in two cannot be pasted), not read as markup.
        console.print("[red]error:[/]", escape(exc.message), soft_wrap=True)
        raise typer.Exit(1) from exc


# The SDK from the shell: login, upload, ls, download, offline, copy, ...
for module in (client_commands, transfer_commands):
    app.registered_commands.extend(module.commands.registered_commands)
app.add_typer(task_commands.offline_app, name="offline")
app.add_typer(task_commands.copy_app, name="copy")
