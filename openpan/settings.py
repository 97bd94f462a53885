"""Settings: environment variables ``OPENPAN_*``, an optional TOML file, then defaults.

The config file is named by ``OPENPAN_CONFIG`` (or ``--config`` on the CLI); its keys are the
field names below in lower case, e.g. ``data_dir = "/srv/openpan"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything an operator can set. Defaults give the embedded, zero-configuration server."""

    model_config = SettingsConfigDict(env_prefix="OPENPAN_", extra="ignore")

    data_dir: Path = Path("./openpan-data")
    host: str = "127.0.0.1"
    port: int = 8123
    public_url: str = ""
    """Base of presigned, public and download URLs. Default: http://{host}:{port}."""

    database_url: str = ""
    """Default: sqlite+aiosqlite:///{data_dir}/openpan.db."""
    storage_url: str = ""
    """Default: file://{data_dir}/blobs."""

    timezone: str = "Asia/Shanghai"
    """Time zone of the timestamps in answers (the real service speaks +08:00)."""

    slice_size: int = Field(16 * MiB, ge=64 * 1024)
    """Slice size handed out by upload create; every slice but the last has exactly this size."""
    sync_complete_max: int = Field(16 * MiB, ge=0)
    """upload_complete verifies files up to this size before answering; larger ones async."""
    upload_session_ttl: int = Field(24 * 3600, ge=60)
    """Seconds an unfinished upload session lives before it and its slices are removed."""
    presign_ttl: int = Field(24 * 3600, ge=60)
    """Seconds a presigned slice URL stays valid."""
    oss_max_file_size: int = 100 * 1000 * 1000
    """Image-bed size limit per image (the real service says 100M)."""
    max_body_size: int = Field(1 * MiB, ge=1024)
    """Largest API request body (JSON or form). Slices have their own limit: slice_size."""

    token_ttl_days: int = Field(30, ge=1)
    max_tokens_per_client: int = Field(3, ge=1)

    rate_limit: bool = True
    """Enforce the real service's per-endpoint QPS limits (code 429)."""

    custom_domain_default: str = ""
    """If set, users without their own custom domain get userSelfURL under this base URL."""

    job_workers: int = Field(4, ge=1)
    """In-process background workers (embedded mode)."""

    sweep_interval: float = Field(60.0, gt=0)
    """Seconds between sweeps that expire abandoned upload sessions."""

    @field_validator("public_url", "custom_domain_default")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("OPENPAN_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # Derived values: computed, never stored, so one override changes everything after it.

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'openpan.db').resolve()}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'blobs').resolve()}"


def normalise_database_url(url: str) -> str:
    """Accept the plain URLs people write and pick the async driver for them."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and config file, with explicit overrides (CLI flags) on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
