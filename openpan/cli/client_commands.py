"""``openpan login|logout|whoami|ls|mkdir|mv|rm|info|link``: the SDK from a shell, for
accounts and files. Each command is a thin layer over ``openpan.client.Client``; the common
options, output modes and exit codes are in ``session.py``; transfers are in
``transfer_commands.py``, offline downloads and copies in ``task_commands.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from openpan.cli import profiles
from openpan.cli.session import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Failed,
    Session,
    client_command,
    human,
    is_interactive,
    jsonable,
    out,
)
from openpan.client import TransportError

if TYPE_CHECKING:
    from openpan.client import Client, DiskFile, OssFile

    Entry = OssFile | DiskFile

commands = typer.Typer()


def lookup(client: Client, ref: str, session: Session) -> Entry:
    entry = client.resolve(ref, space=session.space)
    if entry is None:
        raise Failed("the root directory has no details", EXIT_USAGE)
    return entry


def _file_id(client: Client, ref: str, session: Session) -> str | int:
    if ref.startswith("/"):
        return lookup(client, ref, session).file_id
    if session.space == "disk":
        if not ref.isdigit():
            raise Failed(f"not a cloud-disk ID or /path: {ref!r}", EXIT_USAGE)
        return int(ref)
    return ref


def _batches(ids: list[Any], size: int = 100) -> list[list[Any]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# Login -------------------------------------------------------------------------------------


@client_command(commands, "login", space=False)
def login(
    session: Session,
    default_space: Annotated[
        str | None,
        typer.Option("--space", help="Default space for this profile: oss or disk."),
    ] = None,
) -> None:
    """Store credentials for a profile, after checking them with the server.

    Missing values are asked for on a terminal. The file is ~/.config/openpan/config.ini
    (or OPENPAN_CLI_CONFIG), readable by you only.

    Example: openpan login --base-url http://127.0.0.1:8123 --client-id ID --client-secret S
    """
    stored = session.stored
    if default_space not in (None, "oss", "disk"):
        raise Failed("--space must be oss or disk", EXIT_USAGE)

    def ask(label: str, hide: bool = False, default: str | None = None) -> str:
        if not is_interactive():
            raise Failed(f"{label} is missing (give it as an option or variable)", EXIT_USAGE)
        value: str = typer.prompt(label, default=default, hide_input=hide, err=True)
        return value.strip()

    session.base_url = (
        session.base_url
        or stored.get("base_url")
        or ask("Server URL", default=profiles.DEFAULT_BASE_URL)
    )
    values = {"base_url": session.base_url, "space": default_space or stored.get("space", "")}
    if session.token:
        values["token"] = session.token
    else:
        session.client_id = session.client_id or ask("clientID")
        session.client_secret = session.client_secret or ask("clientSecret", hide=True)
        values["client_id"] = session.client_id
        values["client_secret"] = session.client_secret
    client = session.client()
    if session.token:
        client.oss_list(limit=1)  # a token cannot be checked without using it
    else:
        client.token()
    path = profiles.save(session.profile, values)
    expires = client.token_expires_at
    if session.as_json:
        session.emit(
            {
                "profile": session.profile,
                "base_url": session.base_url,
                "config": str(path),
                "token_expires_at": expires.isoformat() if expires else None,
            }
        )
        return
    session.say(f"Logged in to {session.base_url} as profile {session.profile!r} ({path}).")


@client_command(commands, "logout", space=False)
def logout(session: Session) -> None:
    """Forget a profile's stored credentials.

    Example: openpan logout --profile work
    """
    if not profiles.remove(session.profile):
        raise Failed(f"no stored profile {session.profile!r}", EXIT_NOT_FOUND)
    session.say(f"Forgot profile {session.profile!r}.")


@client_command(commands, "whoami", space=False)
def whoami(session: Session) -> None:
    """Show who the credentials belong to, the server and the token's expiry.

    Example: openpan whoami --json
    """
    client = session.client()
    client.token()
    user = None
    try:
        user = client.user_info()
    except TransportError as exc:
        if exc.status_code != 404:  # a server without /api/v1/user/info still says who we are
            raise
    expires = client.token_expires_at
    facts: dict[str, Any] = {
        "profile": session.profile,
        "base_url": client.base_url,
        "client_id": client.client_id,
        "token_expires_at": expires.isoformat() if expires else None,
        "user": jsonable(user) if user else None,
    }
    if session.as_json:
        session.emit(facts)
        return
    if session.quiet:
        out.print(str(user.uid) if user else client.client_id or "")
        return
    out.print(f"server:   {client.base_url}")
    out.print(f"profile:  {session.profile}")
    out.print(f"clientID: {client.client_id or '(access token)'}")
    if expires:
        out.print(f"token:    valid until {expires.isoformat()}")
    if user:
        out.print(f"user:     {user.nickname or '-'} (uid {user.uid}){' VIP' if user.vip else ''}")
        out.print(f"space:    {human(user.space_used)} of {human(user.space_permanent)}")


# Files -------------------------------------------------------------------------------------


@client_command(commands, "ls")
def ls(
    session: Session,
    directory: Annotated[
        str | None, typer.Argument(help="Directory: /path or ID (default: the root).")
    ] = None,
    trashed: Annotated[
        bool, typer.Option("--trashed", help="Cloud disk: include files in the trash.")
    ] = False,
) -> None:
    """List a directory.

    Example: openpan ls /photos --json
    """
    client = session.client()
    entries = list(
        client.iter_files(directory or None, space=session.space, include_trashed=trashed)
    )
    if session.as_json:
        session.emit(entries)
        return
    if session.quiet:
        for e in entries:
            out.print(e.filename + ("/" if e.is_dir else ""), markup=False)
        return
    table = Table("name", "size", "created", "ID", box=None, pad_edge=False)
    for e in entries:
        table.add_row(
            e.filename + ("/" if e.is_dir else ""),
            "" if e.is_dir else human(e.size),
            e.create_at,
            str(e.file_id),
        )
    out.print(table)


@client_command(commands, "mkdir")
def mkdir(
    session: Session,
    paths: Annotated[list[str], typer.Argument(help="Absolute paths like /a/b (parents too).")],
) -> None:
    """Make directories (and their missing parents); prints each directory's ID.

    Example: openpan mkdir /photos/2024 /photos/2025
    """
    client = session.client()
    made = []
    for path in paths:
        if not path.startswith("/"):
            raise Failed(f"give an absolute path like /a/b, not {path!r}", EXIT_USAGE)
        made.append({"path": path, "id": client.makedirs(path, space=session.space)})
    if session.as_json:
        session.emit(made)
        return
    for item in made:
        out.print(str(item["id"]) if session.quiet else f"{item['path']}\t{item['id']}")


@client_command(commands, "mv")
def mv(
    session: Session,
    paths: Annotated[list[str], typer.Argument(help="Files to move, then the directory.")],
) -> None:
    """Move files and directories (paths or IDs) into a directory.

    Example: openpan mv /a.jpg /b.jpg /album
    """
    if len(paths) < 2:
        raise Failed("give what to move and where (at least two arguments)", EXIT_USAGE)
    client = session.client()
    *sources, dest = paths
    target = client.resolve(dest, space=session.space)
    if target is not None and not target.is_dir:
        raise Failed(f"not a directory: {dest}", EXIT_USAGE)
    ids = [_file_id(client, ref, session) for ref in sources]
    for batch in _batches(ids):
        if session.space == "oss":
            client.oss_move([str(i) for i in batch], "" if target is None else str(target.file_id))
        else:
            client.disk_move([int(i) for i in batch], 0 if target is None else int(target.file_id))
    if session.as_json:
        session.emit({"moved": ids, "to": None if target is None else target.file_id})
        return
    session.say(f"Moved {len(ids)} item(s) into {dest}.")


@client_command(commands, "rm")
def rm(
    session: Session,
    files: Annotated[list[str], typer.Argument(help="Files or directories: paths or IDs.")],
    permanent: Annotated[
        bool, typer.Option("--permanent", help="Cloud disk: delete for good, not to the trash.")
    ] = False,
) -> None:
    """Delete files and directories (a directory takes its contents).

    The image bed deletes at once; the cloud disk moves to the trash unless --permanent.

    Example: openpan rm /old.jpg /tmp-album
    """
    client = session.client()
    ids = [_file_id(client, ref, session) for ref in files]
    for batch in _batches(ids):
        if session.space == "oss":
            client.oss_delete([str(i) for i in batch])
        else:
            client.disk_trash([int(i) for i in batch])
            if permanent:
                client.disk_delete([int(i) for i in batch])
    if session.as_json:
        session.emit({"deleted": ids})
        return
    session.say(f"Deleted {len(ids)} item(s).")


@client_command(commands, "info")
def info(
    session: Session, file: Annotated[str, typer.Argument(help="A file: /path or ID.")]
) -> None:
    """Show a file's or directory's details.

    Example: openpan info /photos/cat.jpg
    """
    entry = lookup(session.client(), file, session)
    if session.as_json:
        session.emit(entry)
        return
    if session.quiet:
        out.print(str(entry.file_id))
        return
    for key, value in entry.model_dump().items():
        out.print(f"{key + ':':<16} {value}", markup=False)


@client_command(commands, "link")
def link(
    session: Session, file: Annotated[str, typer.Argument(help="A file: /path or ID.")]
) -> None:
    """Print a file's link: the direct link (image bed) or a temporary download link (disk).

    Example: openpan link /photos/cat.jpg
    """
    client = session.client()
    entry = lookup(client, file, session)
    if entry.is_dir:
        raise Failed(f"{entry.filename!r} is a directory", EXIT_USAGE)
    from openpan.client import OssFile

    if isinstance(entry, OssFile):
        url = entry.download_url
    else:
        url = client.download_info(entry.file_id).download_url
    if session.as_json:
        session.emit({"file_id": entry.file_id, "filename": entry.filename, "link": url})
        return
    out.print(url, markup=False)
