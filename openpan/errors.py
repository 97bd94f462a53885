"""The one error root. Every rule that refuses a request raises one of these.

    OpenpanError (code 1)            validation or generic failure; the message names the field
    ├── Unauthorized (401)           token missing, invalid, expired or retired
    ├── RateLimited (429)            too many requests for this endpoint
    ├── NotFound (5066)              file, directory, task or upload session not found / not yours
    ├── TrafficExceeded (5113)       the day's download traffic is spent
    └── StillVerifying (20103)       V2 upload_complete while the file is still being checked

The HTTP layer turns each into the 123pan envelope ``{code, message, data: null, x-traceID}``.
"""

from __future__ import annotations


class OpenpanError(Exception):
    """参数错误"""

    code: int = 1

    def __init__(self, message: str | None = None, *, code: int | None = None) -> None:
        self.message = message or (self.__doc__ or "error").strip()
        if code is not None:
            self.code = code
        super().__init__(self.message)


class Unauthorized(OpenpanError):
    """access_token无效"""

    code = 401


class RateLimited(OpenpanError):
    """请求太频繁"""

    code = 429


class NotFound(OpenpanError):
    """文件不存在"""

    code = 5066


class TrafficExceeded(OpenpanError):
    """今日下载流量已超出限制"""

    code = 5113


class StillVerifying(OpenpanError):
    """文件校验中"""

    code = 20103


class FieldError(OpenpanError):
    """A request field is missing or invalid; the message always starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field} {problem}")
