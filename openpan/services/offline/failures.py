"""How a download attempt can end other than with its bytes, and the reasons a person reads in
``failReason`` (Chinese first, English in brackets, as every message of the API)."""

from __future__ import annotations

from openpan.db.models import SPACE_OSS


class Permanent(Exception):
    """The task fails now; the message is its failReason."""


class Transient(Exception):
    """Worth another try later; ``retry_after`` is the origin's own hint, if it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Restart(Exception):
    """The bytes kept so far are of no use (the origin ignored Range or changed the resource)."""


class BlobGone(Exception):
    """The stored blob with these bytes was deleted between looking and taking it."""


class AlreadyEnded(Exception):
    """The task ended while this run was committing (a job run twice)."""


def transport_reason(exc: Exception) -> str:
    """Why a connection to the origin failed."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return f"连接源站超时 (timed out: {detail})"
    return f"连接源站失败 (connection failed: {detail})"


def short(received: int, total: int) -> str:
    """The origin ended the body before its announced length."""
    return (
        f"源站发送的数据少于Content-Length: 收到{received}字节, 声明{total}字节 "
        f"(the origin sent {received} of the {total} bytes its Content-Length announced)"
    )


def too_large(size: int, cap: int, space: str) -> str:
    """The download is over the space's size limit."""
    where = "图床单个图片" if space == SPACE_OSS else "离线下载单个文件"
    return f"文件过大: {size}字节, {where}最大{cap}字节 (too large: at most {cap} bytes)"


def not_an_image(head: bytes) -> str:
    """An image-bed download whose first bytes are no image format."""
    return f"下载的内容不是图片 (the downloaded bytes are not an image: {_describe(head)})"


def _describe(head: bytes) -> str:
    start = head.lstrip()[:64].lower()
    if start.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512].lower():
        return "looks like an HTML page"
    if not head:
        return "empty"
    return "unknown format"
