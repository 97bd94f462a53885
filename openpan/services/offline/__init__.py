"""Offline downloads (离线下载): a URL fetched in the background into the cloud disk or image bed.

A task is a row in ``offline_tasks``. The modules, top down:

- ``tasks``: creating and reading tasks, the URL check, download slots (``admit``);
- ``job``: the ``offline.download`` job, one run of a task: progress, retries, its end;
- ``fetch``: the HTTP transfer of one attempt, knowing nothing of the database;
- ``loop``: the event loop of its own that transfers run on;
- ``commit``: a finished transfer made a blob, then a file;
- ``names``, ``failures``, ``statements``: what they say.

The partial file a transfer writes is ``openpan.storage.partial``'s.
"""

from openpan.services.offline.job import SettleJob, close_connections, download_job
from openpan.services.offline.names import name_from_response, safe_name
from openpan.services.offline.tasks import (
    DEFAULT_DIR,
    DOWNLOAD_JOB,
    MAX_URL,
    admit,
    admit_waiting,
    check_url,
    create,
    default_dir,
    get_task,
    made_file_id,
)

__all__ = [
    "DEFAULT_DIR",
    "DOWNLOAD_JOB",
    "MAX_URL",
    "SettleJob",
    "admit",
    "admit_waiting",
    "check_url",
    "close_connections",
    "create",
    "default_dir",
    "download_job",
    "get_task",
    "made_file_id",
    "name_from_response",
    "safe_name",
]
