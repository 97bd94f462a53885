"""What every client command shares: connection options, output modes, errors, progress bars.

``client_command`` adds the common options to a command (each also read from an ``OPENPAN_*``
environment variable), builds a ``Session`` from them and turns any failure into one line on
stderr and an exit code scripts can rely on:

    0  success
    1  the server refused, a task failed, or some files failed
    2  bad usage (unknown option, missing argument, bad value)
    3  not logged in, or the credentials were rejected (401)
    4  not found (code 5066, or no such path)
    5  the server could not be reached or did not answer as the API does
    130 interrupted
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, get_args, get_origin

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from typer.models import OptionInfo

from openpan.cli import profiles
from openpan.client import (  # the exceptions only: the SDK proper loads with the client
    APIError,
    AuthenticationError,
    ClientError,
    NotFoundError,
    TransportError,
)

if TYPE_CHECKING:
    from openpan.client import Client, Space

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130

# Environment variables the client commands read. The server's own settings are OPENPAN_*
# too (OPENPAN_DATA_DIR, OPENPAN_HOST, ...); none of these names is one of them.
ENV = {
    "profile": "OPENPAN_PROFILE",
    "base_url": "OPENPAN_BASE_URL",
    "client_id": "OPENPAN_CLIENT_ID",
    "client_secret": "OPENPAN_CLIENT_SECRET",
    "token": "OPENPAN_TOKEN",
    "as_json": "OPENPAN_JSON",
    "quiet": "OPENPAN_QUIET",
    "progress": "OPENPAN_PROGRESS",
    "space": "OPENPAN_SPACE",
    "jobs": "OPENPAN_JOBS",
    "config": "OPENPAN_CLI_CONFIG",
}

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Failed(Exception):
    """Stop a command with a message and an exit code (already-explained failures)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Session:
    """One run of a client command: where to connect, as whom, and how to print."""

    profile: str = profiles.DEFAULT_PROFILE
    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    as_json: bool = False
    quiet: bool = False
    progress: bool | None = None
    disk: bool | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def stored(self) -> dict[str, str]:
        return profiles.load(self.profile)

    @property
    def space(self) -> Space:
        if self.disk is not None:
            return "disk" if self.disk else "oss"
        chosen = os.environ.get(ENV["space"]) or self.stored.get("space") or "oss"
        if chosen not in ("oss", "disk"):
            raise Failed(f"{ENV['space']} must be 'oss' or 'disk', not {chosen!r}", EXIT_USAGE)
        return chosen  # type: ignore[return-value]

    @property
    def url(self) -> str:
        return self.base_url or self.stored.get("base_url") or profiles.DEFAULT_BASE_URL

    def credentials(self) -> dict[str, str]:
        """client_id + client_secret, or token: options and environment first, then profile."""
        if self.token:
            return {"access_token": self.token}
        if self.client_id or self.client_secret:
            if not (self.client_id and self.client_secret):
                raise Failed("give both the client ID and the client secret", EXIT_USAGE)
            return {"client_id": self.client_id, "client_secret": self.client_secret}
        stored = self.stored
        if stored.get("client_id") and stored.get("client_secret"):
            return {"client_id": stored["client_id"], "client_secret": stored["client_secret"]}
        if stored.get("token"):
            return {"access_token": stored["token"]}
        raise Failed(
            f"not logged in (profile {self.profile!r}): run `openpan login`, or set "
            "OPENPAN_CLIENT_ID and OPENPAN_CLIENT_SECRET (or OPENPAN_TOKEN)",
            EXIT_AUTH,
        )

    def client(self) -> Client:
        if self._client is None:
            from openpan.client import Client

            self._client = Client(
                base_url=self.url,
                token_cache=profiles.token_cache_path(),
                **self.credentials(),  # type: ignore[arg-type]
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # Output ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A line for people (not printed in quiet or JSON mode)."""
        if not (self.quiet or self.as_json):
            out.print(text)

    def emit(self, value: Any) -> None:
        """A JSON document for scripts."""
        print(json.dumps(jsonable(value), ensure_ascii=False, indent=2))

    def bars(self, transfer: bool = True) -> Progress:
        """Progress bars on stderr: shown on a terminal unless quiet or JSON (or --progress)."""
        show = self.progress
        if show is None:
            show = err.is_terminal and not (self.quiet or self.as_json)
        columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
        if transfer:
            columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            columns += [TextColumn("{task.percentage:>5.1f}%"), TextColumn("{task.fields[state]}")]
        console = err
        if show and not err.is_terminal:
            # Asked for explicitly (--progress) with stderr redirected: still draw them.
            console = Console(stderr=True, force_terminal=True, highlight=False)
        return Progress(*columns, console=console, disable=not show, transient=False)


def jsonable(value: Any) -> Any:
    """Models and dataclasses as plain JSON values."""
    # A model of the SDK (pydantic, whose import waits for the first model anyone makes).
    if callable(getattr(value, "model_dump", None)) and not isinstance(value, type):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"openpan: error: {message}", markup=False)
    raise typer.Exit(code)


def describe(exc: BaseException) -> tuple[str, int]:
    """One line and an exit code for any failure."""
    if isinstance(exc, Failed):
        return str(exc), exc.code
    if isinstance(exc, APIError):
        text = f"{exc.message} (code {exc.code}"
        text += f", trace ID {exc.trace_id})" if exc.trace_id else ")"
        if isinstance(exc, AuthenticationError):
            return text, EXIT_AUTH
        if isinstance(exc, NotFoundError):
            return text, EXIT_NOT_FOUND
        return text, EXIT_FAILED
    if isinstance(exc, TransportError):
        return exc.message, EXIT_UNREACHABLE
    if isinstance(exc, ClientError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", EXIT_FAILED
    if isinstance(exc, ValueError):
        return str(exc), EXIT_USAGE
    return f"{type(exc).__name__}: {exc}", EXIT_FAILED


@contextmanager
def guarded(session: Session) -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        err.print("openpan: interrupted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # every failure becomes one line and an exit code, never a trace
        message, code = describe(exc)
        fail(message, code)
    finally:
        session.close()


# The common options ----------------------------------------------------------------------------


def _option(
    name: str,
    default: Any,
    kind: Any,
    *flags: str,
    help: str,
    panel: str,
    show_default: bool = True,
) -> inspect.Parameter:
    """A keyword-only parameter that typer reads as the option ``flags`` (and ``ENV[name]``)."""
    option = typer.Option(
        *flags, envvar=ENV[name], help=help, rich_help_panel=panel, show_default=show_default
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


_COMMON: list[inspect.Parameter] = [
    _option(
        "profile",
        profiles.DEFAULT_PROFILE,
        str,
        "--profile",
        help="Stored login to use.",
        panel="Connection",
    ),
    _option(
        "base_url",
        None,
        str | None,
        "--base-url",
        help="Server URL (default: the profile's, else http://127.0.0.1:8123).",
        panel="Connection",
    ),
    _option(
        "client_id",
        None,
        str | None,
        "--client-id",
        help="clientID (instead of a stored login).",
        panel="Connection",
    ),
    _option(
        "client_secret",
        None,
        str | None,
        "--client-secret",
        help="clientSecret.",
        panel="Connection",
        show_default=False,
    ),
    _option(
        "token",
        None,
        str | None,
        "--token",
        help="A ready access token (instead of clientID/secret).",
        panel="Connection",
        show_default=False,
    ),
    _option("as_json", False, bool, "--json", help="Print JSON for scripts.", panel="Output"),
    _option(
        "quiet",
        False,
        bool,
        "--quiet",
        "-q",
        help="Print only the essentials (IDs, links).",
        panel="Output",
    ),
    _option(
        "progress",
        None,
        bool | None,
        "--progress/--no-progress",
        help="Progress bars (default: on a terminal).",
        panel="Output",
        show_default=False,
    ),
]

_SPACE = inspect.Parameter(
    "disk",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        bool | None,
        typer.Option(
            "--disk/--oss",
            help="Cloud disk or image bed (default: OPENPAN_SPACE, the profile's, else oss).",
            show_default=False,
        ),
    ],
)


def _with_envvar(param: inspect.Parameter, prefix: str) -> inspect.Parameter:
    """A command's own option, also read from ``{prefix}{NAME}`` unless it names a variable."""
    if get_origin(param.annotation) is not Annotated:
        return param
    base, *meta = get_args(param.annotation)
    changed = []
    for item in meta:
        if isinstance(item, OptionInfo) and not item.envvar:
            item = copy.copy(item)
            item.envvar = f"{prefix}{param.name.upper()}"
        changed.append(item)
    return param.replace(annotation=Annotated[(base, *changed)])


def client_command(
    group: typer.Typer, name: str, *, space: bool = True, env: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``fn(session, ...)`` as command ``name`` with the common options added.

    The command's own options are also read from ``OPENPAN_{ENV}_{OPTION}`` (``env`` defaults
    to the command's name), e.g. ``OPENPAN_UPLOAD_TO`` for ``openpan upload --to``.
    """
    prefix = f"OPENPAN_{(env or name).upper()}_"

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        own = [
            _with_envvar(p, prefix)
            for p in inspect.signature(fn, eval_str=True).parameters.values()
            if p.name != "session"
        ]
        extra = [*_COMMON, _SPACE] if space else list(_COMMON)
        common_names = {p.name for p in extra}

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            common = {k: kwargs.pop(k) for k in list(kwargs) if k in common_names}
            session = Session(**common)
            with guarded(session):
                fn(session, **kwargs)

        parameters = [*own, *extra]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        group.command(name)(command)
        return command

    return decorate


def is_interactive() -> bool:
    return sys.stdin.isatty()
