"""The metadata schema. Portable SQL only: it runs on SQLite (embedded) and PostgreSQL (scale-out).

Times are naive UTC datetimes (``openpan.clock.utcnow``); answers convert them to the configured
time zone at the edge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.attributes import manager_of_class

from openpan.db.statuses import CopyStatus, FileStatus, JobStatus, OfflineStatus, UploadStatus

# Named constraints so migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")

SPACE_OSS = "oss"
SPACE_DISK = "disk"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


M = TypeVar("M", bound=Base)


def table_of(model: type[Base]) -> Table:
    """The model's table, for Core statements (``__table__`` is typed as any FROM clause)."""
    return cast(Table, model.__table__)


def from_row(model: type[M], row: Any) -> M:
    """An instance of ``model``, attached to no session, from a Core row that selected the
    columns of its table (the hot paths query with Core: see ``Database.rows``).

    Made the way the ORM itself loads a row (a bare instance, its values put in place) rather
    than through the constructor, whose instrumented attribute sets cost some 40 µs an object
    against 2: an authenticated request makes at least one."""
    mapping = row._mapping
    instance = cast(M, manager_of_class(model).new_instance())
    instance.__dict__.update({column.key: mapping[column] for column in table_of(model).columns})
    return instance


class Meta(Base):
    """Server-wide key/value facts, e.g. the token-signing key shared by every API process."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    custom_domain: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Hotlink protection: comma-separated allowed Referer hosts; None = off.
    referer_allow: Mapped[str | None] = mapped_column(Text, nullable=True)
    referer_allow_empty: Mapped[bool] = mapped_column(Boolean, default=True)
    # Signed direct links (auth_key); None = off.
    link_sign_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # HMAC key for X-Openpan-Signature on offline-download callbacks.
    callback_secret: Mapped[str] = mapped_column(String(128), default="")
    storage_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # The web app's sign-in (argon2, ``services.web_auth``); None = no web password set.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The administrator (the first user) manages the others in the web app.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A disabled user's tokens and sessions are refused; its files stay.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class WebSession(Base):
    """A signed-in browser: keyed by the sha256 of its cookie (the cookie itself is never
    stored), with the CSRF token its writes must carry."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class LoginFailure(Base):
    """One failed sign-in, by ``user:<name>`` and by ``addr:<address>``; counted over the last
    minute to slow password guessing, in the database so every process counts the same."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime)


class FolderShare(Base):
    """An image-bed folder shared as a public, read-only gallery at ``/s/<token>``; deleting
    the row revokes the link."""

    __tablename__ = "folder_shares"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    folder_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AccessToken(Base):
    __tablename__ = "access_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Blob(Base):
    """Content-addressed bytes: one row per distinct (md5, size), shared by every file using it."""

    __tablename__ = "blobs"
    __table_args__ = (UniqueConstraint("md5", "size", name="uq_blobs_md5_size"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(255))
    refcount: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # What the bytes are as an image, read from their header once (``services.image_info``):
    # ``image_format`` NULL means not read yet, "" no image libvips reads. Sizes are as shown
    # (turned by the EXIF orientation); frames is 1 for a still image.
    image_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    image_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)


class BlobVariant(Base):
    """A thumbnail or web-sized copy of a blob's image (``services.variant_store``), made once.

    The row is a claim while ``key`` is NULL: the process that inserted it is making the
    variant (since ``claimed_at``); ``refused`` says why none can be made (the original is
    served instead). Removed with its blob.
    """

    __tablename__ = "blob_variants"
    __table_args__ = (UniqueConstraint("blob_id", "name", name="uq_blob_variants_blob_id_name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("blobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    md5: Mapped[str] = mapped_column(String(32), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    refused: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class File(Base):
    """A file or directory of one user, in the image bed (``oss``) or the cloud disk (``disk``).

    Disk IDs are ``id`` (JSON numbers); image-bed IDs are ``oss_id`` (opaque, time-ordered
    strings). ``parent_id`` is 0 for the root of a space.
    """

    __tablename__ = "files"
    __table_args__ = (
        # Names are unique among the live (not trashed) entries of one directory.
        Index(
            "uq_files_live_name",
            "user_id",
            "space",
            "parent_id",
            "name",
            unique=True,
            sqlite_where=text("trashed = 0"),
            postgresql_where=text("trashed = false"),
        ),
        Index("ix_files_listing", "user_id", "space", "parent_id", "id"),
        Index("ix_files_oss_listing", "user_id", "space", "parent_id", "oss_id"),
        # The space a user's cloud disk takes (summed at every upload and download into it):
        # read from the index alone rather than from every row of the account.
        Index("ix_files_space_used", "user_id", "space", "is_dir", "size"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    space: Mapped[str] = mapped_column(String(8))
    oss_id: Mapped[str | None] = mapped_column(String(40), unique=True, nullable=True)
    parent_id: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(255))
    is_dir: Mapped[bool] = mapped_column(Boolean, default=False)
    blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"), nullable=True, index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    etag: Mapped[str] = mapped_column(String(32), default="")
    ext: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[int] = mapped_column(Integer, default=FileStatus.APPROVED)
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    trashed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    total_traffic: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class UploadSession(Base):
    """An upload between create and complete. Its slices live in the blob store, not here."""

    __tablename__ = "upload_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(8))
    parent_id: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(255))
    etag: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    slice_size: Mapped[int] = mapped_column(BigInteger)
    duplicate: Mapped[int] = mapped_column(Integer, default=0)
    api_version: Mapped[int] = mapped_column(Integer, default=1)
    # open → verifying → done | failed
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.OPEN)
    file_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Job(Base):
    """A unit of background work, persisted so a restart resumes it."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    # queued → running → done | failed
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(DateTime)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CopyTask(Base):
    """Cloud-disk images copied into the image bed.

    status: 1 running, 2 done, 3 failed, 4 waiting.
    """

    __tablename__ = "copy_tasks"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    target_parent_id: Mapped[int] = mapped_column(BigInteger, default=0)
    source_ids: Mapped[str] = mapped_column(Text, default="[]")
    status: Mapped[int] = mapped_column(Integer, default=CopyStatus.WAITING)
    fail_msg: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CopyFailure(Base):
    __tablename__ = "copy_failures"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(
        ForeignKey("copy_tasks.id", ondelete="CASCADE"), index=True
    )
    file_id: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")


class OfflineTask(Base):
    """An offline download. status: 0 running, 1 failed, 2 succeeded, 3 retrying.

    ``active`` marks a task holding a download slot (its job is queued or running); unfinished
    tasks without one wait for a slot. ``target_parent_id`` 0 means the space's default
    directory, resolved when the file is made.
    """

    __tablename__ = "offline_tasks"
    __table_args__ = (
        Index("ix_offline_tasks_waiting", "status", "active", "id"),
        # The tasks holding a slot, counted per user whenever a task is created or ends.
        Index("ix_offline_tasks_active", "active", "user_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    target_parent_id: Mapped[int] = mapped_column(BigInteger, default=0)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[int] = mapped_column(Integer, default=OfflineStatus.RUNNING)
    process: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fail_reason: Mapped[str] = mapped_column(Text, default="")
    file_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_done: Mapped[bool] = mapped_column(Boolean, default=False)
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    # The name the origin suggests (Content-Disposition, else the URL path), learnt on first answer.
    origin_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The bytes received so far, and the origin's validator (ETag or Last-Modified) they belong
    # to: a resumed download asks for the rest only if the resource is still the same.
    partial_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    validator: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class DownloadTraffic(Base):
    """Bytes of self-use download traffic per user per day (the 5113 quota)."""

    __tablename__ = "download_traffic"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class RateBucket(Base):
    """A rate-limit token bucket shared by every API process (used on PostgreSQL).

    ``updated`` is the database's clock in epoch seconds, so processes on machines whose clocks
    differ still agree on how much a bucket has refilled.
    """

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    allowed: Mapped[bool] = mapped_column(Boolean, default=True)
