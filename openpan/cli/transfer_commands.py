"""``openpan upload|download``: transfers with progress bars, over ``Client.upload``,
``upload_dir`` and ``download``."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress, TaskID

from openpan.cli.client_commands import lookup
from openpan.cli.session import (
    ENV,
    EXIT_FAILED,
    Session,
    client_command,
    out,
)
from openpan.client import AuthenticationError, TransportError

if TYPE_CHECKING:
    from openpan.client import IfExists, UploadedFile, UploadFailure

commands = typer.Typer()


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


def _note(result: UploadedFile) -> str:
    if result.existed:
        return " (already there)"
    if result.instant:
        return " (instant)"
    return " (resumed)" if result.resumed else ""


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
    from openpan.client import UploadFailure

    client = session.client()
    space = session.space
    if_exists: IfExists = "overwrite" if overwrite else "skip"
    sizes = _sizes(paths)
    done: list[UploadedFile] = []
    failed: list[UploadFailure] = []
    # Printed once the bars are gone: a line written while they redraw gets glued to them.
    lines: list[str] = []

    with session.bars() as progress:
        ui = _Bars(progress, sizes)

        def report(result: UploadedFile | UploadFailure) -> None:
            ui.done(result.source)
            if isinstance(result, UploadFailure):
                failed.append(result)
                # Above the bars (their console keeps them drawn below).
                progress.console.print(
                    f"openpan: {result.source}: {result.error}", markup=False, soft_wrap=True
                )
                return
            done.append(result)
            if session.as_json:
                return
            if session.quiet:
                lines.append(result.link or str(result.file.file_id))
                return
            lines.append(f"{result.source} → {result.link or result.file.file_id}{_note(result)}")

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
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)
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
    entries = [lookup(client, ref, session) for ref in files]
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
