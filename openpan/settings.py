"""Settings: environment variables ``OPENPAN_*``, an optional TOML file, then defaults.

The config file is named by ``OPENPAN_CONFIG`` (or ``--config`` on the CLI); its keys are the
field names below in lower case, e.g. ``data_dir = "/srv/openpan"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
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

    instant_upload: Literal["all", "own"] = "all"
    """Instant upload (秒传) from bytes any user stored (``all``, as the real service), or only
    from the user's own files (``own``: no user learns what another holds)."""

    emulator: bool = False
    """Emulator mode: the control API under ``/_openpan/`` (reset, seed, faults, journal,
    clock, simulated remote files) for test suites. Embedded mode only."""
    control_token: str = ""
    """The bearer token the control API requires when the server listens beyond loopback."""
    journal_size: int = Field(10_000, ge=1, le=1_000_000)
    """Requests the emulator's journal keeps (the oldest go first)."""

    custom_domain_default: str = ""
    """If set, users without their own custom domain get userSelfURL under this base URL."""

    job_workers: int = Field(4, ge=1)
    """In-process background workers (embedded mode)."""

    sweep_interval: float = Field(60.0, gt=0)
    """Seconds between sweeps that expire abandoned upload sessions."""

    traffic_flush_interval: float = Field(5.0, gt=0)
    """Seconds between writes of the bytes public links sent (``totalTraffic``); a crash loses
    at most this much counting, a clean stop nothing."""
    link_cache_ttl: float = Field(2.0, ge=0)
    """Seconds a public link's lookup (file, owner's access options, custom domains) is reused.
    Deletes in the same process take effect at once; changes made elsewhere within this time."""
    hot_blob_max: int = Field(1 * MiB, ge=0)
    """Blobs up to this size are kept in memory while popular (public links); larger ones are
    always streamed from storage."""
    hot_blob_memory: int = Field(64 * MiB, ge=0)
    """Memory for popular small blobs, in bytes, per server process."""

    disk_quota: int = Field(2 * 1024**4, ge=0)
    """Cloud-disk space per user in bytes (the real free tier: 2 TB); ``openpan user set
    --quota`` overrides it for one user. Checked when an upload starts."""
    download_traffic_daily: int = Field(1024**3, ge=0)
    """Self-use download traffic per non-VIP user per day, in bytes (download_info → 5113)."""
    download_link_ttl: int = Field(3 * 3600, ge=60)
    """Seconds a download_info link stays valid."""
    copy_batch_size: int = Field(100, ge=1)
    """Images a copy task commits per database transaction (keeps write transactions short)."""
    copy_batch_pause: float = Field(0.0, ge=0)
    """Seconds a copy task pauses between batches, to leave the writer to interactive requests."""

    fetch_allow: str = ""
    """Comma-separated hosts and CIDR networks that offline downloads and their callbacks may
    reach although they are loopback, private, link-local... (e.g. ``10.0.0.0/8,files.lan``).
    Everything else non-public is refused."""
    offline_max_active: int = Field(10, ge=1)
    """Offline downloads running at once in this process; more tasks wait their turn."""
    offline_max_active_per_user: int = Field(5, ge=1)
    """Offline downloads of one user running at once; more tasks of that user wait."""
    offline_max_unfinished_per_user: int = Field(0, ge=0)
    """If set, creating a task is refused while the user has this many unfinished ones (the
    real service's "too many tasks" answer); 0 queues every task."""
    offline_retries: int = Field(5, ge=0)
    """Transient failures (connection lost, timeout, 5xx, 429) retried before a task fails."""
    offline_retry_delay: float = Field(2.0, gt=0)
    """Seconds before the first retry; each later one waits twice as long (at most 5 minutes)."""
    offline_timeout: float = Field(30.0, gt=0)
    """Seconds an origin may take to accept the connection or to send the next bytes."""
    offline_max_redirects: int = Field(10, ge=0)
    """Redirects followed per download attempt."""
    offline_max_size: int = Field(0, ge=0)
    """Largest cloud-disk offline download in bytes; 0 = no limit but the user's space. (The
    image bed's limit is ``oss_max_file_size``.)"""
    offline_progress_interval: float = Field(1.0, gt=0)
    """Seconds between progress writes of a running download."""
    callback_retries: int = Field(5, ge=0)
    """Times a failed callback delivery (receiver down or non-2xx) is tried again."""
    callback_retry_delay: float = Field(5.0, gt=0)
    """Seconds before the first callback retry; each later one waits twice as long."""
    callback_timeout: float = Field(10.0, gt=0)
    """Seconds a callback receiver has to answer."""

    # Scale-out mode ------------------------------------------------------------------------

    queue_url: str = ""
    """Job broker (``postgresql://...``). Set: ``openpan serve`` runs API processes only and
    ``openpan worker`` runs the background work (procrastinate). Empty: jobs run in-process."""
    worker_heartbeat: float = Field(10.0, gt=0)
    """Seconds between a worker's heartbeats (scale-out)."""
    worker_stalled_after: float = Field(30.0, gt=0)
    """Seconds without a heartbeat after which a worker's jobs go to another worker."""
    job_grace: float = Field(10.0, ge=0)
    """At worker shutdown, seconds running jobs get to finish before they are handed back."""
    object_serving: Literal["proxy", "redirect"] = "proxy"
    """Links to blobs in an object store: ``proxy`` streams them through openpan (works when
    the store is internal); ``redirect`` answers 302 to a short-lived presigned GET."""
    object_redirect_ttl: int = Field(300, ge=10)
    """Seconds a presigned GET of ``object_serving=redirect`` stays valid."""
    shutdown_timeout: int = Field(30, ge=0)
    """On SIGTERM, seconds in-flight requests get to finish before connections are closed."""
    variant_sizes: str = "64,128,256,512,1024,2048,4096"
    """The widths and heights image variants are made at (``?w=`` and ``?h=`` on a link are
    rounded up to one of them, never beyond the original): comma-separated pixels."""
    variant_max_pixels: int = Field(100_000_000, ge=1)
    """Images with more pixels than this (all frames together) get no variant: the link serves
    the original. Guards against decompression bombs."""
    variant_renders: int = Field(0, ge=0)
    """Variants made at the same time per process; 0: as many as the machine has cores."""
    variant_timeout: float = Field(30.0, gt=0)
    """Seconds making one variant may take; a slower image gets none (the original is served)."""

    @field_validator("variant_sizes")
    @classmethod
    def _sizes(cls, value: str) -> str:
        sizes = [part.strip() for part in value.split(",") if part.strip()]
        if not sizes or not all(size.isdigit() and 0 < int(size) <= 65_500 for size in sizes):
            raise ValueError("variant_sizes must list whole numbers of pixels, 1 to 65500")
        return ",".join(sizes)

    @property
    def variant_ladder(self) -> tuple[int, ...]:
        """``variant_sizes`` as numbers, smallest first."""
        return tuple(sorted({int(size) for size in self.variant_sizes.split(",")}))

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

    def emulator_problem(self) -> str | None:
        """Why emulator mode cannot start with these settings, if it cannot."""
        if not self.emulator:
            return None
        if self.queue_url or not self.effective_database_url.startswith("sqlite"):
            return "emulator mode is the embedded shape: SQLite and one process (no queue)"
        if not self.effective_storage_url.startswith("file://"):
            return "emulator mode keeps blobs in a local directory (OPENPAN_STORAGE_URL=file://)"
        if self.host not in ("127.0.0.1", "::1", "localhost") and not self.control_token:
            return (
                f"emulator mode on {self.host} (not loopback) needs OPENPAN_CONTROL_TOKEN: "
                "the control API can erase everything"
            )
        return None

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


class SettingsError(ValueError):
    """A setting has a value it cannot have; the message names it as the operator wrote it."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and config file, with explicit overrides (CLI flags) on
    top. ``SettingsError`` names each bad one (``OPENPAN_…``) and says what is wrong."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            problems.append(f"OPENPAN_{name.upper()} ({name}): {error['msg']}")
        raise SettingsError("bad setting: " + "; ".join(problems)) from None
