"""Running a command on a pseudo-terminal, as a person at a shell would: what it drew, and
answers typed to its prompts."""

from __future__ import annotations

import os
import pty
import select
import time
from collections.abc import Callable


def run_on_terminal(
    argv: list[str],
    env: dict[str, str],
    *,
    answer: Callable[[bytes], bytes | None] | None = None,
    timeout: float = 120,
) -> tuple[int, bytes]:
    """Run ``argv`` with a terminal on stdin, stdout and stderr until it exits; returns its
    wait status and everything it wrote. After each piece of output, ``answer(all so far)``
    may give bytes to type."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.execve(argv[0], argv, env)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child ended: the terminal is gone
            break
        if not chunk:
            break
        seen += chunk
        typed = answer(seen) if answer else None
        if typed:
            os.write(fd, typed)
    _, status = os.waitpid(pid, 0)
    return status, seen
