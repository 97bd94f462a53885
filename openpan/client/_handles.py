"""Handles of server tasks (offline downloads, copies) that ``offline()`` and ``copy()`` return.

Each handle is written once; the blocking and the asyncio flavour differ only in the driver
they mark (see ``_shell``), so ``wait()`` blocks on one and is awaited on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from openpan.client import _api, _tasks
from openpan.client._models import CopyFailure, CopyProgress, OfflineProgress, Space
from openpan.client._protocol import Flow, call
from openpan.client._shell import AsyncDriver, SyncDriver, flow

if TYPE_CHECKING:
    from typing import Self

    from openpan.client._async_client import AsyncClient
    from openpan.client._client import Client


class _Handle:
    client: Any

    def __init__(self, client: Any) -> None:
        self.client = client

    def _drive(self, flow: Flow[Any]) -> Any:
        return self.client._drive(flow)


class _OfflineTask(_Handle):
    def __init__(self, client: Any, task_id: int, space: Space) -> None:
        super().__init__(client)
        self.task_id = task_id
        self.space = space

    @classmethod
    def started(cls, client: Any, started: tuple[int, Space]) -> Self:
        return cls(client, *started)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_id={self.task_id!r}, space={self.space!r})"

    def _progress(self) -> Flow[OfflineProgress]:
        """The task's progress now."""
        return call(_tasks.offline_process(self.space, self.task_id))

    def _wait(
        self,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_progress: Callable[[OfflineProgress], None] | None = None,
    ) -> Flow[OfflineProgress]:
        """Wait until the download succeeds; ``TaskFailed`` if it fails."""
        return _tasks.wait_offline(
            self.space, self.task_id, timeout=timeout, interval=interval, on_progress=on_progress
        )

    progress = flow(_progress)
    wait = flow(_wait)


class _CopyTask(_Handle):
    def __init__(self, client: Any, task_id: str) -> None:
        super().__init__(client)
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_id={self.task_id!r})"

    def _progress(self) -> Flow[CopyProgress]:
        """The task's status now."""
        return call(_api.oss_copy_process(self.task_id))

    def _wait(
        self,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_progress: Callable[[CopyProgress], None] | None = None,
    ) -> Flow[CopyProgress]:
        """Wait until the task is done; ``TaskFailed`` if it fails."""
        return _tasks.wait_copy(
            self.task_id, timeout=timeout, interval=interval, on_progress=on_progress
        )

    def _failures(self) -> Flow[list[CopyFailure]]:
        """Every file the task could not copy."""
        return _tasks.copy_failures(self.task_id)

    progress = flow(_progress)
    wait = flow(_wait)
    failures = flow(_failures)


class OfflineTask(_OfflineTask, SyncDriver):
    """An offline download (either space) in progress."""

    client: Client


class AsyncOfflineTask(_OfflineTask, AsyncDriver):
    """An offline download (either space) in progress, for ``AsyncClient``."""

    client: AsyncClient


class CopyTask(_CopyTask, SyncDriver):
    """A copy from the cloud disk into the image bed in progress."""

    client: Client


class AsyncCopyTask(_CopyTask, AsyncDriver):
    """A copy from the cloud disk into the image bed in progress, for ``AsyncClient``."""

    client: AsyncClient
