"""Streaming ``multipart/form-data`` for uploads: file parts go to disk as they arrive.

The V2 slice and one-step upload endpoints receive files inside a form. Parts are parsed with
python-multipart's push parser as the body streams in; a file part is written to a temporary
file of the blob store while its md5 is computed, so nothing proportional to its size is held
in memory, and a part is refused the moment it passes its limit. Text fields are small and kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from openpan.api.body import BodyReader
from openpan.api.params import BodyTooLarge, Params
from openpan.errors import FieldError, OpenpanError

WRITE_BUFFER = 1024 * 1024
MAX_FIELD = 64 * 1024
MAX_FIELDS = 64
OVERHEAD = 1024 * 1024
"""Room for part headers and text fields on top of the file bytes."""


@dataclass
class ReceivedFile:
    """A file part, stored at ``path`` (the caller takes it over or it is removed)."""

    field: str
    filename: str
    path: Path
    size: int
    md5: str


@dataclass
class Received:
    """The parsed form: text fields as ``Params`` (with the query string), and the files."""

    params: Params
    files: dict[str, ReceivedFile] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove the files nobody took over."""
        for item in self.files.values():
            item.path.unlink(missing_ok=True)


class _Sink:
    """One file part on its way to disk: buffered, hashed, bounded."""

    def __init__(self, name: str, filename: str, path: Path, limit: int) -> None:
        self.name = name
        self.filename = filename
        self.path = path
        self.limit = limit
        self.size = 0
        self.ended = False
        self.buffer = bytearray()
        self.hasher = hashlib.md5()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def take(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise FieldError(self.name, f"过大: 最多{self.limit}字节 (larger than {self.limit})")
        self.buffer += data

    async def drain(self, force: bool = False) -> None:
        if self.buffer and (force or len(self.buffer) >= WRITE_BUFFER):
            data, self.buffer = bytes(self.buffer), bytearray()
            await anyio.to_thread.run_sync(_write_and_hash, self.fd, data, self.hasher)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def result(self) -> ReceivedFile:
        return ReceivedFile(
            field=self.name,
            filename=self.filename,
            path=self.path,
            size=self.size,
            md5=self.hasher.hexdigest(),
        )


def _write_and_hash(fd: int, data: bytes, hasher: hashlib._Hash) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    hasher.update(data)


class _Form:
    """The parser's callbacks: collect text fields, route file bytes into sinks."""

    def __init__(self, temp_path: Callable[[], Path], file_limits: dict[str, int]) -> None:
        self.temp_path = temp_path
        self.file_limits = file_limits
        self.fields: list[tuple[str, str]] = []
        self.sinks: list[_Sink] = []
        self.done: dict[str, ReceivedFile] = {}
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._text = bytearray()
        self._sink: _Sink | None = None

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._text = bytearray()
        self._sink = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise OpenpanError("multipart: a part has no name (Content-Disposition name=…)")
        self._name = options[b"name"].decode("utf-8", "replace").lower()
        if b"filename" in options or self._name in self.file_limits:
            limit = self.file_limits.get(self._name)
            taken = {sink.name for sink in self.sinks}
            if limit is None or self._name in taken:
                raise OpenpanError(f"multipart: unexpected file part {self._name!r}")
            filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self._sink = _Sink(self._name, filename, self.temp_path(), limit)
            self.sinks.append(self._sink)
        elif len(self.fields) >= MAX_FIELDS:
            raise OpenpanError(f"multipart: more than {MAX_FIELDS} fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.take(data[start:end])
            return
        self._text += data[start:end]
        if len(self._text) > MAX_FIELD:
            raise FieldError(self._name, f"过长: 最多{MAX_FIELD}字节 (too long)")

    def on_part_end(self) -> None:
        if self._sink is not None:
            self._sink.ended = True
        else:
            try:
                self.fields.append((self._name, self._text.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise FieldError(self._name, "不是有效的UTF-8 (not UTF-8)") from exc


async def receive(
    request: Request, temp_path: Callable[[], Path], file_limits: dict[str, int]
) -> Received:
    """Parse a multipart request whose file parts are named in ``file_limits`` (name → most
    bytes). Files land in ``temp_path()`` files; on any failure they are removed."""
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data" or b"boundary" not in options:
        raise OpenpanError(
            "Content-Type 必须是 multipart/form-data (the body must be multipart/form-data)"
        )
    reader = BodyReader(request)
    most = sum(file_limits.values()) + OVERHEAD
    if reader.declared is not None and reader.declared > most:
        reusable = await reader.discard()
        raise BodyTooLarge(
            f"请求体过大 (request body too large: at most {most} bytes)", close=not reusable
        )
    form = _Form(temp_path, {k.lower(): v for k, v in file_limits.items()})
    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_part_begin": form.on_part_begin,
            "on_part_data": form.on_part_data,
            "on_part_end": form.on_part_end,
            "on_header_field": form.on_header_field,
            "on_header_value": form.on_header_value,
            "on_header_end": form.on_header_end,
            "on_headers_finished": form.on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in reader.chunks():
            received += len(chunk)
            if received > most:
                raise BodyTooLarge(f"请求体过大 (request body too large: at most {most} bytes)")
            parser.write(chunk)
            for sink in form.sinks:
                await sink.drain()
        parser.finalize()
        for sink in form.sinks:
            if not sink.ended:
                raise OpenpanError(f"{sink.name} multipart: the body ended inside this part")
            await sink.drain(force=True)
            sink.close()
            form.done[sink.name] = sink.result()
    except FormParserError as exc:
        _discard(form)
        await reader.discard()
        raise OpenpanError(f"请求体不是有效的multipart (not valid multipart: {exc})") from exc
    except ClientDisconnect as exc:
        _discard(form)
        raise OpenpanError("客户端在请求体完整前断开 (the client went away mid-body)") from exc
    except OpenpanError as exc:
        _discard(form)
        # Refused mid-body: read the rest away so the client hears why (``api.body``).
        reusable = await reader.discard()
        if isinstance(exc, BodyTooLarge):
            exc.close = not reusable
        raise
    except BaseException:
        _discard(form)
        raise
    pairs: dict[str, object] = {k.lower(): v for k, v in request.query_params.multi_items()}
    pairs.update(form.fields)
    return Received(params=Params(pairs), files=form.done)


def _discard(form: _Form) -> None:
    for sink in form.sinks:
        sink.close()
        with contextlib.suppress(OSError):
            sink.path.unlink(missing_ok=True)
