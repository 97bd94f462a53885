"""``openpan login|whoami|ls|mkdir|mv|rm|info|link|upload|download|offline|copy``: the SDK
from a shell. Each command is a thin layer over ``openpan.client.Client``; the common options,
output modes and exit codes are in ``session.py``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from openpan.cli import profiles
from openpan.cli.session import (
    ENV,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Failed,
    Session,
    client_command,
    err,
    human,
    is_interactive,
    jsonable,
    out,
)
from openpan.client import (
    AuthenticationError,
    Client,
    CopyTask,
    DiskFile,
    OfflineStatus,
    OfflineTask,
    OssFile,
    TaskFailed,
    TransportError,
    UploadedFile,
    UploadFailure,
)
from openpan.client._upload import IfExists

commands = typer.Typer()
offline_app = typer.Typer(
    help="Offline downloads: the server fetches a URL into the disk or the image bed.",
    no_args_is_help=True,
)
copy_app = typer.Typer(
    help="Copy cloud-disk images into the image bed (server-side, no bytes through you).",
    no_args_is_help=True,
)

Entry = OssFile | DiskFile
Outcome = tuple[Any, Any, BaseException | None]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the task to end, with progress.")]
Timeout = Annotated[
    float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")
]


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``openpan`` command."""
    app.registered_commands.extend(commands.registered_commands)
    app.add_typer(offline_app, name="offline")
    app.add_typer(copy_app, name="copy")


def _entry(client: Client, ref: str, session: Session) -> Entry:
    entry = client.resolve(ref, space=session.space)
    if entry is None:
        raise Failed("the root directory has no details", EXIT_USAGE)
    return entry


def _file_id(client: Client, ref: str, session: Session) -> str | int:
    if ref.startswith("/"):
        return _entry(client, ref, session).file_id
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
    entry = _entry(session.client(), file, session)
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
    entry = _entry(client, file, session)
    if entry.is_dir:
        raise Failed(f"{entry.filename!r} is a directory", EXIT_USAGE)
    if isinstance(entry, OssFile):
        url = entry.download_url
    else:
        url = client.download_info(entry.file_id).download_url
    if session.as_json:
        session.emit({"file_id": entry.file_id, "filename": entry.filename, "link": url})
        return
    out.print(url, markup=False)


# Transfers ---------------------------------------------------------------------------------


class _Bars:
    """A total bar and one bar per file, fed from worker threads by label."""

    def __init__(self, bars: Progress, sizes: dict[str, int]) -> None:
        self.bars = bars
        self.sizes = sizes
        self.total = bars.add_task("total", total=sum(sizes.values()) or None)
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def advance(self, label: str, nbytes: int) -> None:
        with self.lock:
            task = self.tasks.get(label)
            if task is None:
                name = Path(label).name
                task = self.tasks[label] = self.bars.add_task(name, total=self.sizes.get(label))
            self.bars.advance(task, nbytes)
            self.bars.advance(self.total, nbytes)

    def done(self, label: str) -> None:
        with self.lock:
            task = self.tasks.get(label)
            if task is not None and len(self.tasks) > 1:
                self.bars.update(task, visible=False)  # keep the screen to what is moving


def _sizes(paths: list[Path]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in paths:
        if path.is_dir():
            for here, _dirs, files in os.walk(path):
                for name in files:
                    full = Path(here) / name
                    if full.is_file():
                        sizes[str(full)] = full.stat().st_size
        else:
            sizes[str(path)] = path.stat().st_size
    return sizes


def _uploaded(item: UploadedFile) -> dict[str, Any]:
    return {
        "source": item.source,
        "file_id": item.file.file_id,
        "filename": item.file.filename,
        "size": item.file.size,
        "etag": item.file.etag,
        "link": item.link,
        "instant": item.instant,
        "existed": item.existed,
        "resumed": item.resumed,
        "sent_bytes": item.sent_bytes,
    }


@client_command(commands, "upload")
def upload(
    session: Session,
    paths: Annotated[
        list[Path], typer.Argument(help="Files and directories.", exists=True, readable=True)
    ],
    to: Annotated[
        str | None, typer.Option("--to", help="Target directory: /path (made if missing) or ID.")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", envvar=ENV["jobs"], min=1, max=64, help="Parallel slices."),
    ] = 4,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files of the same name and other content.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue interrupted uploads.")
    ] = True,
) -> None:
    """Upload files and directories (directories keep their name and tree); prints each
    file's link. Files already there with the same content are skipped; content the server
    already holds is not sent again.

    Example: openpan upload cat.jpg photos/ --to /pets -j 8
    """
    client = session.client()
    space = session.space
    if_exists: IfExists = "overwrite" if overwrite else "skip"
    sizes = _sizes(paths)
    done: list[UploadedFile] = []
    failed: list[UploadFailure] = []

    with session.bars() as progress:
        ui = _Bars(progress, sizes)

        def report(result: UploadedFile | UploadFailure) -> None:
            ui.done(result.source)
            if isinstance(result, UploadFailure):
                failed.append(result)
                err.print(f"openpan: {result.source}: {result.error}", markup=False)
                return
            done.append(result)
            if session.as_json:
                return
            if session.quiet:
                out.print(result.link or str(result.file.file_id), markup=False)
                return
            note = " (already there)" if result.existed else " (instant)" if result.instant else ""
            out.print(f"{result.source} → {result.link or result.file.file_id}{note}", markup=False)

        for path in paths:
            if path.is_dir():
                dest: str | int | None
                if to is None or to.startswith("/"):
                    dest = f"{(to or '').rstrip('/')}/{path.resolve().name}"
                else:
                    dest = client.makedirs(path.resolve().name, space=space, parent=to)
                client.upload_dir(
                    path,
                    dest,
                    space=space,
                    concurrency=jobs,
                    if_exists=if_exists,
                    resume=resume,
                    link=True,
                    progress=ui.advance,
                    on_file=report,
                )
                continue
            label = str(path)
            try:
                result: UploadedFile | UploadFailure = client.upload(
                    path,
                    to,
                    space=space,
                    concurrency=jobs,
                    if_exists=if_exists,
                    resume=resume,
                    progress=lambda n, label=label: ui.advance(label, n),  # type: ignore[misc]
                )
            except (AuthenticationError, TransportError):
                raise  # every other file would fail the same way
            except Exception as exc:
                if len(paths) == 1:
                    raise
                result = UploadFailure(source=label, error=exc)
            report(result)
    if session.as_json:
        session.emit(
            {
                "files": [_uploaded(item) for item in done],
                "failures": [{"source": f.source, "error": str(f.error)} for f in failed],
            }
        )
    if failed:
        raise typer.Exit(EXIT_FAILED)


@client_command(commands, "download")
def download(
    session: Session,
    files: Annotated[list[str], typer.Argument(help="Files: /paths or IDs.")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Where to save: a file, or a directory (ending in /; default .)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue interrupted downloads.")
    ] = True,
) -> None:
    """Download files (checked against their md5); an interrupted download continues.

    Example: openpan download /photos/cat.jpg -o ~/Pictures/
    """
    client = session.client()
    entries = [_entry(client, ref, session) for ref in files]
    target = Path(output or ".").expanduser()
    if len(entries) > 1 or (output or "").endswith(("/", os.sep)):
        target.mkdir(parents=True, exist_ok=True)
    results = []
    with session.bars() as progress:
        ui = _Bars(progress, {str(e.file_id): e.size for e in entries})
        for entry in entries:
            key = str(entry.file_id)
            got = client.download(
                entry.file_id,
                target,
                space=session.space,
                resume=resume,
                progress=lambda n, key=key: ui.advance(key, n),  # type: ignore[misc]
            )
            results.append(got)
            if not session.as_json:
                out.print(str(got.path) if session.quiet else f"{entry.filename} → {got.path}")
    if session.as_json:
        session.emit(
            [
                {"path": str(r.path), "size": r.size, "received": r.received, "resumed": r.resumed}
                for r in results
            ]
        )


# Offline downloads -------------------------------------------------------------------------


def _offline_view(task: OfflineTask, progress: Any) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "space": task.space,
        "status": progress.status.name.lower(),
        "status_code": int(progress.status),
        "process": progress.process,
    }


def _wait_all(
    session: Session,
    handles: list[Any],
    describe: Callable[[Any], str],
    timeout: float | None,
) -> list[Outcome]:
    """Wait for each task with a bar; (handle, last progress, failure) per task."""
    outcomes: list[Outcome] = []
    with session.bars(transfer=False) as bars:
        for handle in handles:
            bar = bars.add_task(describe(handle), total=100, state="")
            last: dict[str, Any] = {}

            def show(p: Any, bar: TaskID = bar, last: dict[str, Any] = last) -> None:
                last["p"] = p
                percent = float(getattr(p, "process", 0.0))
                if getattr(p, "finished", False) and percent == 0:
                    percent = 100.0
                bars.update(bar, completed=percent, state=p.status.name.lower())

            try:
                handle.wait(timeout=timeout, on_progress=show)
                outcomes.append((handle, last.get("p"), None))
            except TaskFailed as exc:
                outcomes.append((handle, last.get("p"), exc))
    return outcomes


@client_command(offline_app, "add", env="offline_add")
def offline_add(
    session: Session,
    urls: Annotated[list[str], typer.Argument(help="http(s) URLs.")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Target directory: /path or ID (default: 来自:离线下载)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="File name (one URL only).")] = None,
    callback: Annotated[
        str | None, typer.Option("--callback", help="URL the server POSTs the outcome to.")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = None,
) -> None:
    """Start offline downloads; prints each task ID (with --wait, waits for them).

    Example: openpan offline add https://example.com/a.jpg --oss --wait
    """
    if name and len(urls) > 1:
        raise Failed("--name needs exactly one URL", EXIT_USAGE)
    client = session.client()
    tasks = [
        client.offline(url, space=session.space, dest=to, name=name, callback_url=callback)
        for url in urls
    ]
    if not wait:
        if session.as_json:
            session.emit(
                [
                    {"url": u, "task_id": t.task_id, "space": t.space}
                    for u, t in zip(urls, tasks, strict=True)
                ]
            )
            return
        for url, task in zip(urls, tasks, strict=True):
            out.print(str(task.task_id) if session.quiet else f"{url} → task {task.task_id}")
        return
    outcomes = _wait_all(session, tasks, lambda t: f"task {t.task_id}", timeout)
    _report_offline(session, outcomes)


@client_command(offline_app, "status", env="offline_status")
def offline_status(
    session: Session,
    task_id: Annotated[int, typer.Argument(help="The task ID.")],
    wait: Wait = False,
    timeout: Timeout = None,
) -> None:
    """Show an offline download's progress and status (exit code 1 if it failed).

    Example: openpan offline status 394756 --disk
    """
    task = OfflineTask(session.client(), task_id, session.space)
    if wait:
        _report_offline(session, _wait_all(session, [task], lambda t: f"task {t.task_id}", timeout))
        return
    _report_offline(session, [(task, task.progress(), None)])


def _report_offline(
    session: Session, outcomes: list[tuple[Any, Any, BaseException | None]]
) -> None:
    views = [_offline_view(task, p) for task, p, _exc in outcomes if p is not None]
    if session.as_json:
        session.emit(views)
    else:
        for view in views:
            if session.quiet:
                out.print(view["status"])
            else:
                out.print(f"task {view['task_id']}: {view['status']} ({view['process']:g}%)")
    if any(v["status_code"] == OfflineStatus.FAILED for v in views):
        raise typer.Exit(EXIT_FAILED)


# Copy tasks --------------------------------------------------------------------------------


@client_command(copy_app, "add", space=False, env="copy_add")
def copy_add(
    session: Session,
    files: Annotated[
        list[str], typer.Argument(help="Cloud-disk files or directories: /paths or IDs.")
    ],
    to: Annotated[
        str | None, typer.Option("--to", help="Image-bed directory: /path (made if missing) or ID.")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = None,
) -> None:
    """Copy cloud-disk images into the image bed; prints the task ID.

    Example: openpan copy add /photos --to /gallery --wait
    """
    client = session.client()
    refs: list[int | str] = [int(f) if f.isdigit() else f for f in files]
    task = client.copy(refs, to)
    if not wait:
        if session.as_json:
            session.emit({"task_id": task.task_id})
        else:
            out.print(task.task_id if session.quiet else f"task {task.task_id}")
        return
    _report_copy(session, task, _wait_all(session, [task], lambda t: f"copy {t.task_id}", timeout))


@client_command(copy_app, "status", space=False, env="copy_status")
def copy_status(
    session: Session,
    task_id: Annotated[str, typer.Argument(help="The copy task ID.")],
    wait: Wait = False,
    timeout: Timeout = None,
) -> None:
    """Show a copy task's status (exit code 1 if it failed).

    Example: openpan copy status 1ketmmu1000d86isuyq33su100w1bnp6 --wait
    """
    task = CopyTask(session.client(), task_id)
    if wait:
        outcomes = _wait_all(session, [task], lambda t: f"copy {t.task_id}", timeout)
    else:
        outcomes = [(task, task.progress(), None)]
    _report_copy(session, task, outcomes)


def _report_copy(session: Session, task: CopyTask, outcomes: list[Outcome]) -> None:
    _handle, progress, _exc = outcomes[0]
    view = {
        "task_id": task.task_id,
        "status": progress.status.name.lower(),
        "status_code": int(progress.status),
        "fail_msg": progress.fail_msg,
    }
    if session.as_json:
        session.emit(view)
    elif session.quiet:
        out.print(view["status"])
    else:
        reason = f": {progress.fail_msg}" if progress.fail_msg else ""
        out.print(f"copy {task.task_id}: {view['status']}{reason}", markup=False)
    if view["status"] == "failed":
        raise typer.Exit(EXIT_FAILED)


@client_command(copy_app, "failures", space=False, env="copy_failures")
def copy_failures(
    session: Session, task_id: Annotated[str, typer.Argument(help="The copy task ID.")]
) -> None:
    """List the files a copy task could not copy.

    Example: openpan copy failures 1ketmmu1000d86isuyq33su100w1bnp6 --json
    """
    failures = CopyTask(session.client(), task_id).failures()
    if session.as_json:
        session.emit(failures)
        return
    for f in failures:
        out.print(f"{f.file_id}\t{f.filename}", markup=False)
