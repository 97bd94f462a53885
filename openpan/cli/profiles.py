"""Where the CLI keeps what ``openpan login`` stored: named profiles in an INI file.

The file is ``config.ini`` in the user's config directory (``~/.config/openpan`` on Linux,
honouring ``XDG_CONFIG_HOME``), or the file named by ``OPENPAN_CLI_CONFIG``. Each section is a
profile with ``base_url`` and either ``client_id`` + ``client_secret`` or ``token``, and an
optional default ``space``. It holds secrets, so it is written readable by its owner only.
Fetched tokens are cached next to other per-user caches (``tokens.json``) so that CLI runs
reuse one token instead of retiring each other's (at most three live per clientID).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import tempfile
from pathlib import Path

import platformdirs

DEFAULT_PROFILE = "default"
DEFAULT_BASE_URL = "http://127.0.0.1:8123"
KEYS = ("base_url", "client_id", "client_secret", "token", "space")


def config_path() -> Path:
    override = os.environ.get("OPENPAN_CLI_CONFIG")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_config_path("openpan") / "config.ini"


def token_cache_path() -> Path:
    return platformdirs.user_cache_path("openpan") / "tokens.json"


def _read(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    with contextlib.suppress(FileNotFoundError):
        parser.read(path, encoding="utf-8")
    return parser


def load(profile: str) -> dict[str, str]:
    """The stored values of a profile (empty when there is none)."""
    parser = _read(config_path())
    if not parser.has_section(profile):
        return {}
    return {k: v for k, v in parser.items(profile) if k in KEYS and v}


def names() -> list[str]:
    return _read(config_path()).sections()


def save(profile: str, values: dict[str, str]) -> Path:
    """Replace a profile's values; returns the file written."""
    path = config_path()
    parser = _read(path)
    if parser.has_section(profile):
        parser.remove_section(profile)
    parser.add_section(profile)
    for key in KEYS:
        if values.get(key):
            parser.set(profile, key, values[key])
    _write(path, parser)
    return path


def remove(profile: str) -> bool:
    path = config_path()
    parser = _read(path)
    if not parser.remove_section(profile):
        return False
    _write(path, parser)
    return True


def _write(path: Path, parser: configparser.RawConfigParser) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            parser.write(out)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
