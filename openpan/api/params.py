"""Lenient request input, as the real service accepts it.

Clients in the wild send JSON (sometimes labelled otherwise), urlencoded or multipart bodies,
parameters in the query string on POST and in the body on GET, keys in any case, numbers as
strings and strings as numbers. ``read_params`` folds all of that into one case-insensitive
mapping; the typed getters turn a value into what an endpoint needs or raise a ``FieldError``
that names the field.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from openpan.api.body import BodyReader
from openpan.errors import FieldError, OpenpanError

_MISSING = object()


class BodyTooLarge(OpenpanError):
    """请求体过大. ``close``: the rest of the body was not read, so the connection must end."""

    def __init__(self, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.close = close


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused once it passes ``limit`` bytes: the rest is read and thrown
    away (within a bound) so that the client hears the refusal (``api.body``)."""
    reader = BodyReader(request)
    too_large = reader.declared is not None and reader.declared > limit
    chunks = bytearray()
    if not too_large:
        async for chunk in reader.chunks():
            chunks += chunk
            if len(chunks) > limit:
                too_large = True
                break
    if too_large:
        reusable = await reader.discard()
        raise BodyTooLarge(
            f"请求体过大 (request body too large: at most {limit} bytes)", close=not reusable
        )
    return bytes(chunks)


async def read_params(request: Request, limit: int) -> Params:
    """Query string and body of any format, merged (body wins), keys folded to lower case."""
    merged: dict[str, Any] = {}
    _merge_pairs(merged, request.query_params.multi_items())
    body = await read_body(request, limit)
    from_body: dict[str, Any] = {}
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data") and not body.lstrip().startswith(b"{"):
        await _merge_multipart(from_body, request, body)
    else:
        _merge_body(from_body, body, json_type="json" in content_type)
    merged.update(from_body)
    return Params(merged)


async def _merge_multipart(target: dict[str, Any], request: Request, body: bytes) -> None:
    # Parsed from the bytes already read (so bounded by the body limit), not from the socket.
    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=1000)
    except Exception as exc:  # python-multipart's errors: the body is not valid multipart
        raise OpenpanError(
            f"请求体不是有效的multipart (request body is not valid multipart: {exc})"
        ) from exc
    _merge_pairs(target, [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)])


def _merge_pairs(target: dict[str, Any], pairs: Any) -> None:
    for key, value in pairs:
        name = key.lower()
        if name.endswith("[]"):
            name = name[:-2]
        if name not in target:
            target[name] = value
        elif isinstance(target[name], list):
            target[name].append(value)  # in place: a body of many repeated keys stays linear
        else:
            target[name] = [target[name], value]


def _merge_body(target: dict[str, Any], body: bytes, *, json_type: bool = False) -> None:
    """The body's parameters: a JSON object, or form pairs. A JSON value that is not an
    object (``"str"``, ``[1]``, ``5``) is refused, not read as no parameters."""
    try:
        # Some clients (and editors) put a byte order mark before the JSON.
        decoded = body.decode("utf-8").lstrip("\ufeff").strip()
    except UnicodeDecodeError as exc:
        raise OpenpanError("请求体不是UTF-8编码 (request body is not UTF-8)") from exc
    if not decoded:
        return
    if "\x00" in decoded:
        raise OpenpanError("请求体不能包含NUL字符 (request body contains NUL bytes)")
    if decoded[0] in '{["' or (json_type and _is_json_scalar(decoded)):
        try:
            value = json.loads(decoded)
        except (ValueError, RecursionError) as exc:
            # ValueError also covers integers longer than Python will convert.
            raise OpenpanError(
                f"请求体不是有效的JSON (request body is not valid JSON: {exc})"
            ) from exc
        if not isinstance(value, dict):
            raise OpenpanError("请求体必须是JSON对象 (request body must be a JSON object)")
        for key, item in value.items():
            target[str(key).lower()] = item
        return
    _merge_pairs(target, parse_qsl(decoded, keep_blank_values=True))


def _is_json_scalar(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False  # not JSON at all: read as form pairs, leniently
    return True


class Params:
    """Case-insensitive request parameters with typed, field-naming getters."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def raw(self, name: str, *aliases: str) -> Any:
        for key in (name, *aliases):
            value = self._values.get(key.lower(), _MISSING)
            if value is not _MISSING:
                return value
        return _MISSING

    def has(self, name: str, *aliases: str) -> bool:
        value = self.raw(name, *aliases)
        return value is not _MISSING and value is not None

    def string(
        self,
        name: str,
        *aliases: str,
        required: bool = True,
        default: str = "",
        max_len: int = 1024,
        allow_empty: bool = True,
    ) -> str:
        """A string; numbers are accepted and turned into their decimal text."""
        value = self.raw(name, *aliases)
        if value is _MISSING or value is None:
            if required:
                raise FieldError(name, "不能为空 (required)")
            return default
        if isinstance(value, bool):
            raise FieldError(name, "必须是字符串 (must be a string)")
        if isinstance(value, int | float):
            value = _number_text(value)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]
        if not isinstance(value, str):
            raise FieldError(name, "必须是字符串 (must be a string)")
        if len(value) > max_len:
            raise FieldError(name, f"过长: 最多{max_len}个字符 (too long)")
        if not allow_empty and not value:
            raise FieldError(name, "不能为空 (required)")
        return _storable(name, value)

    def integer(
        self,
        name: str,
        *aliases: str,
        required: bool = True,
        default: int = 0,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        """An integer; decimal strings are accepted."""
        value = self.raw(name, *aliases)
        if value is _MISSING or value is None or value == "":
            if required:
                raise FieldError(name, "不能为空 (required)")
            return default
        number = _to_int(name, value)
        if minimum is not None and number < minimum:
            raise FieldError(name, f"不能小于{minimum} (must be >= {minimum})")
        if maximum is not None and number > maximum:
            raise FieldError(name, f"不能大于{maximum} (must be <= {maximum})")
        return number

    def boolean(self, name: str, *aliases: str, default: bool = False) -> bool:
        value = self.raw(name, *aliases)
        if value is _MISSING or value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
            return value.lower() in ("true", "1")
        raise FieldError(name, "必须是布尔值 (must be true or false)")

    def strings(
        self,
        name: str,
        *aliases: str,
        required: bool = True,
        max_items: int = 100,
        max_len: int = 255,
    ) -> list[str]:
        """A list of strings: a JSON array, repeated keys, a JSON array in a string, or one
        string (a list of one)."""
        value = self.raw(name, *aliases)
        if value is _MISSING or value is None:
            if required:
                raise FieldError(name, "不能为空 (required)")
            return []
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise FieldError(name, "必须是数组 (must be an array)") from exc
        if isinstance(value, str | int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise FieldError(name, "必须是数组 (must be an array)")
        if required and not value:
            raise FieldError(name, "不能为空 (must not be empty)")
        if len(value) > max_items:
            raise FieldError(name, f"最多{max_items}个 (at most {max_items} items)")
        items: list[str] = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise FieldError(name, "的元素必须是字符串 (items must be strings)")
            text = item if isinstance(item, str) else _number_text(item)
            if len(text) > max_len:
                raise FieldError(name, f"的元素过长: 最多{max_len}个字符 (item too long)")
            items.append(_storable(name, text))
        return items

    def integers(
        self, name: str, *aliases: str, required: bool = True, max_items: int = 100
    ) -> list[int]:
        """A list of integers (numbers or decimal strings)."""
        return [
            _to_int(name, item)
            for item in self.strings(
                name, *aliases, required=required, max_items=max_items, max_len=30
            )
        ]


def _storable(name: str, text: str) -> str:
    """``text``, unless it holds what no database column takes: NUL (PostgreSQL refuses it in
    text) or a lone surrogate from a JSON ``\\ud800`` escape (not encodable as UTF-8)."""
    if "\x00" in text:
        raise FieldError(name, "不能包含空字符 (must not contain NUL)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(name, "不是有效的UTF-8文本 (not valid UTF-8 text)") from None
    return text


def _number_text(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise FieldError(name, "必须是整数 (must be an integer)")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            number = int(text)
    if number is None:
        raise FieldError(name, "必须是整数 (must be an integer)")
    # Everything numeric ends up in a 64-bit column.
    if not -(2**63) < number < 2**63:
        raise FieldError(name, "超出范围 (out of range)")
    return number
