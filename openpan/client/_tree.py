"""Walking directories of either space: paging, looking up paths, making directories.

A *reference* to a file or directory is its ID (``str`` in the image bed, ``int`` in the cloud
disk) or an absolute path such as ``"/photos/2024"`` (a string starting with ``/``), resolved
by listing one directory level at a time. The root is ``""``, ``0`` or ``"/"``.
"""

from __future__ import annotations

from typing import Any, cast

from openpan.client import _api
from openpan.client._exceptions import APIError, ClientError, NotFoundError
from openpan.client._models import DiskFile, DiskPage, OssFile, OssPage, Space
from openpan.client._protocol import Call, Flow, call

Entry = OssFile | DiskFile
Ref = str | int


def check_space(space: str) -> Space:
    if space not in ("oss", "disk"):
        raise ValueError(f"space must be 'oss' or 'disk', not {space!r}")
    return space  # type: ignore[return-value]


def root(space: Space) -> str | int:
    return "" if space == "oss" else 0


def is_path(ref: Ref | None) -> bool:
    return isinstance(ref, str) and ref.startswith("/")


def split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def as_id(space: Space, ref: Ref) -> str | int:
    """An ID as the space wants it (cloud-disk IDs given as text become integers)."""
    if space == "oss":
        return str(ref)
    if isinstance(ref, int):
        return ref
    text = ref.strip()
    if not text.lstrip("-").isdigit():
        raise ClientError(f"not a cloud-disk ID or /path: {ref!r}")
    return int(text)


def list_page(space: Space, parent: str | int, last: Any) -> Call[OssPage | DiskPage]:
    if space == "oss":
        return cast(Call[OssPage | DiskPage], _api.oss_list(str(parent), last_file_id=last))
    return cast(Call[OssPage | DiskPage], _api.disk_list(int(parent), last_file_id=last))


def detail(space: Space, file_id: str | int) -> Call[Entry]:
    if space == "oss":
        return cast(Call[Entry], _api.oss_detail(str(file_id)))
    return cast(Call[Entry], _api.disk_detail(int(file_id)))


def children(space: Space, parent: str | int, include_trashed: bool = False) -> Flow[list[Entry]]:
    """Every entry of a directory, through all pages."""
    entries: list[Entry] = []
    last: Any = None
    while True:
        page: OssPage | DiskPage = yield list_page(space, parent, last)
        entries.extend(f for f in page.files if include_trashed or not getattr(f, "trashed", False))
        if page.is_last or not page.files:
            return entries
        last = page.last_file_id


def mkdir(space: Space, parent: str | int, name: str) -> Flow[str | int]:
    if space == "oss":
        made = yield from call(_api.oss_mkdir([name], str(parent)))
        if not made:
            raise ClientError(f"mkdir {name!r}: the server made no directory")
        return made[0].dir_id
    return (yield from call(_api.disk_mkdir(name, int(parent))))


def ensure_dir(
    space: Space, parent: str | int, name: str, listing: list[Entry] | None = None
) -> Flow[str | int]:
    """The ID of directory ``name`` in ``parent``, made if missing."""
    if listing is None:
        listing = yield from children(space, parent)
    for entry in listing:
        if entry.filename == name:
            if not entry.is_dir:
                raise ClientError(f"{name!r} exists and is not a directory")
            return entry.file_id
    try:
        return (yield from mkdir(space, parent, name))
    except APIError:
        # Someone made it meanwhile (names are unique): use theirs; otherwise the error stands.
        for entry in (yield from children(space, parent)):
            if entry.filename == name and entry.is_dir:
                return entry.file_id
        raise


def resolve(space: Space, ref: Ref) -> Flow[Entry | None]:
    """The entry a reference names; ``None`` for the root. ``NotFoundError`` if missing."""
    if ref in ("", "/", 0) or (is_path(ref) and not split_path(str(ref))):
        return None
    if not is_path(ref):
        entry: Entry = yield detail(space, as_id(space, ref))
        return entry
    parent: str | int = root(space)
    found: Entry | None = None
    parts = split_path(str(ref))
    for depth, name in enumerate(parts):
        listing = yield from children(space, parent)
        found = next((e for e in listing if e.filename == name), None)
        if found is None or (depth < len(parts) - 1 and not found.is_dir):
            raise NotFoundError(5066, f"no such file or directory: {ref}")
        parent = found.file_id
    return found


def resolve_dir(space: Space, ref: Ref | None, create: bool = False) -> Flow[str | int]:
    """The ID of the directory a reference names (paths made when ``create``)."""
    if ref is None or ref in ("", "/", 0):
        return root(space)
    if not is_path(ref):
        return as_id(space, ref)
    if not create:
        entry = yield from resolve(space, ref)
        if entry is None:
            return root(space)
        if not entry.is_dir:
            raise ClientError(f"not a directory: {ref}")
        return entry.file_id
    parent: str | int = root(space)
    for name in split_path(str(ref)):
        parent = yield from ensure_dir(space, parent, name)
    return parent


class Pager:
    """The entries of one directory, a page at a time through ``lastFileId`` (``iter_files``)."""

    def __init__(self, space: str, directory: Ref | None, include_trashed: bool) -> None:
        self._space = space
        self._directory = directory
        self._include_trashed = include_trashed
        self._parent: str | int | None = None
        self._last: Any = None
        self._done = False

    def next(self) -> Flow[list[Entry] | None]:
        if self._done:
            return None
        space = check_space(self._space)
        if self._parent is None:
            self._parent = yield from resolve_dir(space, self._directory)
        page = yield from call(list_page(space, self._parent, self._last))
        self._done = page.is_last or not page.files
        self._last = page.last_file_id
        keep = self._include_trashed
        return [e for e in page.files if keep or not getattr(e, "trashed", False)]
