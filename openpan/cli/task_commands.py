"""``openpan offline add|status`` and ``openpan copy add|status|failures``: server-side
tasks, started and watched through the SDK's task handles."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import TaskID

from openpan.cli.session import (
    EXIT_FAILED,
    EXIT_USAGE,
    Failed,
    Session,
    client_command,
    out,
)
from openpan.client import TaskFailed

if TYPE_CHECKING:
    from openpan.client import CopyTask, OfflineTask

offline_app = typer.Typer(
    help="Offline downloads: the server fetches a URL into the disk or the image bed.",
    no_args_is_help=True,
)
copy_app = typer.Typer(
    help="Copy cloud-disk images into the image bed (server-side, no bytes through you).",
    no_args_is_help=True,
)

Outcome = tuple[Any, Any, BaseException | None]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the task to end, with progress.")]
Timeout = Annotated[
    float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")
]


# Offline downloads -------------------------------------------------------------------------


def _offline_view(task: OfflineTask, progress: Any) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "space": task.space,
        "status": progress.status.name.lower(),
        "status_code": int(progress.status),
        "process": progress.process,
        "fail_reason": progress.fail_reason,
        "file_id": progress.file_id,
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
    from openpan.client import OfflineTask

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
                detail = f": {view['fail_reason']}" if view["fail_reason"] else ""
                if view["file_id"]:
                    detail = f" → file {view['file_id']}"
                line = f"task {view['task_id']}: {view['status']} ({view['process']:g}%){detail}"
                out.print(line, markup=False)
    from openpan.client import OfflineStatus

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
    from openpan.client import CopyTask

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
    from openpan.client import CopyTask

    failures = CopyTask(session.client(), task_id).failures()
    if session.as_json:
        session.emit(failures)
        return
    for f in failures:
        out.print(f"{f.file_id}\t{f.filename}", markup=False)
