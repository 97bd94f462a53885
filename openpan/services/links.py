"""URLs handed to clients: public direct links of image-bed files and presigned slice URLs."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from openpan.db.models import File, User
from openpan.settings import Settings


def direct_path(user_id: int, oss_id: str, ext: str) -> str:
    """The path of an image-bed file's public link: ``/{uid}/{fileId}.{ext}``.

    It names the file by ID, so renaming or moving the file keeps the link.
    """
    return f"/{user_id}/{oss_id}.{ext}" if ext else f"/{user_id}/{oss_id}"


def download_url(settings: Settings, file: File) -> str:
    if file.is_dir or not file.oss_id:
        return ""
    return settings.effective_public_url + direct_path(file.user_id, file.oss_id, file.ext)


def user_self_url(settings: Settings, user: User, file: File) -> str:
    """The link under the user's custom domain (or the server-wide default, or the public URL)."""
    if file.is_dir or not file.oss_id:
        return ""
    base = user.custom_domain or settings.custom_domain_default
    if not base:
        return download_url(settings, file)
    if "://" not in base:
        scheme = settings.effective_public_url.split("://", 1)[0]
        base = f"{scheme}://{base}"
    return base.rstrip("/") + direct_path(file.user_id, file.oss_id, file.ext)


def _slice_signature(key: bytes, upload_id: str, number: int, expires: int) -> str:
    message = f"slice:{upload_id}:{number}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def presigned_slice_url(
    settings: Settings, key: bytes, upload_id: str, number: int, expires: int
) -> str:
    signature = _slice_signature(key, upload_id, number, expires)
    return (
        f"{settings.effective_public_url}/upload/slice/{quote(upload_id)}/{number}"
        f"?expires={expires}&signature={signature}"
    )


def slice_signature_ok(
    key: bytes, upload_id: str, number: int, expires: int, signature: str
) -> bool:
    expected = _slice_signature(key, upload_id, number, expires)
    return hmac.compare_digest(expected, signature)
