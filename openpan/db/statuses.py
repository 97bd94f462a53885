"""The status columns' values, one enum per table. ``IntEnum`` and ``StrEnum`` members are
their values (``OfflineStatus.SUCCEEDED == 2``), so they are stored, compared in SQL and sent
in answers as the numbers and words the real service and the schema use."""

from __future__ import annotations

from enum import IntEnum, StrEnum

# A review status above this is a rejection (the real service's documents).
REJECTED_ABOVE = 100


class FileStatus(IntEnum):
    """``files.status``: the real service's review status (审核状态; above 100: rejected)."""

    DIRECTORY = 0  # what the real service reports for a directory
    APPROVED = 2


class UploadStatus(StrEnum):
    """``upload_sessions.status``: open → verifying → done | failed."""

    OPEN = "open"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"


class JobStatus(StrEnum):
    """``jobs.status``: queued → running → done | failed; ``relayed`` once handed to the
    distributed job engine (scale-out)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    RELAYED = "relayed"


class CopyStatus(IntEnum):
    """``copy_tasks.status``, as the API answers it: 1 running, 2 done, 3 failed, 4 waiting."""

    RUNNING = 1
    DONE = 2
    FAILED = 3
    WAITING = 4

    @property
    def finished(self) -> bool:
        return self in (CopyStatus.DONE, CopyStatus.FAILED)


class OfflineStatus(IntEnum):
    """``offline_tasks.status``, as the API answers it: 0 running, 1 failed, 2 succeeded,
    3 retrying."""

    RUNNING = 0
    FAILED = 1
    SUCCEEDED = 2
    RETRYING = 3

    @property
    def finished(self) -> bool:
        return self in (OfflineStatus.FAILED, OfflineStatus.SUCCEEDED)
