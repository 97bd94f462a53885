"""Which job runner a process gets: in-process (embedded) or distributed (scale-out)."""

from __future__ import annotations

from typing import Literal

from openpan.db.engine import Database
from openpan.jobs.runner import InProcessRunner, JobRunner
from openpan.settings import Settings

Role = Literal["all", "api", "worker"]
"""``all``: the embedded server (API and jobs in one process). ``api`` and ``worker``: the
two kinds of process of scale-out mode."""


def default_role(settings: Settings) -> Role:
    """``api`` when a job broker is set (jobs then run in ``openpan worker``), else ``all``."""
    return "api" if settings.queue_url else "all"


def make_runner(
    settings: Settings, db: Database, role: Role, lanes: dict[str, int] | None = None
) -> JobRunner:
    """The job runner for a process of ``role``.

    ``lanes`` gives job kinds workers of their own (see ``InProcessRunner``); in scale-out mode
    each lane is a queue of its own with that many workers per worker process.
    """
    if role == "all":
        if settings.queue_url:
            raise ValueError("OPENPAN_QUEUE_URL is set: run `openpan serve` and `openpan worker`")
        return InProcessRunner(db, workers=settings.job_workers, lanes=lanes)
    if not settings.queue_url:
        raise ValueError("`openpan worker` needs OPENPAN_QUEUE_URL (the job broker)")
    if db.is_sqlite:
        raise ValueError(
            "scale-out mode (OPENPAN_QUEUE_URL) needs a shared database: "
            "set OPENPAN_DATABASE_URL=postgresql://..."
        )
    # Imported here so the embedded server never loads the broker's client.
    try:
        from openpan.jobs.distributed import DistributedRunner
    except ImportError as exc:
        raise ValueError(f"scale-out mode needs: pip install 'openpan[scaleout]' ({exc})") from exc

    return DistributedRunner(
        db,
        settings.queue_url,
        run_jobs=role == "worker",
        workers=settings.job_workers,
        lanes=lanes,
        heartbeat=settings.worker_heartbeat,
        stalled_after=settings.worker_stalled_after,
        job_grace=settings.job_grace,
    )
