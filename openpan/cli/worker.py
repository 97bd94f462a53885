"""``openpan worker``: the background-work process of scale-out mode."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from openpan.settings import Settings

console = Console(stderr=True)
log = logging.getLogger("openpan.worker")


def worker(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Data directory (temp files) [env: OPENPAN_DATA_DIR]"),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Jobs run at once by this process [env: OPENPAN_JOB_WORKERS]"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run background jobs (offline downloads, copy tasks, upload verification) taken from the
    job broker. Needs OPENPAN_QUEUE_URL and OPENPAN_DATABASE_URL=postgresql://...; run as many
    as you like, on any machine. SIGTERM finishes or hands back running jobs, then exits.

    Example: OPENPAN_QUEUE_URL=postgresql://openpan@db/openpan openpan worker
    """
    from openpan.settings import SettingsError, load_settings

    try:
        settings = load_settings(data_dir=data_dir, job_workers=concurrency)
    except SettingsError as exc:
        console.print("[red]error:[/]", escape(str(exc)), soft_wrap=True)
        raise typer.Exit(2) from exc
    if not settings.queue_url:
        console.print("[red]error:[/] `openpan worker` needs OPENPAN_QUEUE_URL (the job broker)")
        raise typer.Exit(2)
    if settings.effective_database_url.startswith("sqlite"):
        console.print(
            "[red]error:[/] workers share the database with the API processes: "
            "set OPENPAN_DATABASE_URL=postgresql://..."
        )
        raise typer.Exit(2)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run_worker(settings))
    except ValueError as exc:  # a setting that cannot work (e.g. SQLite with a broker)
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


async def run_worker(settings: Settings) -> None:
    """Run jobs until SIGTERM or SIGINT, then stop cleanly."""
    from openpan.app import running

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, role="worker"):
        log.info("worker started (%d jobs at once)", settings.job_workers)
        await stop.wait()
        log.info("stopping: running jobs get %.0f s, then are handed back", settings.job_grace)
    log.info("worker stopped")
