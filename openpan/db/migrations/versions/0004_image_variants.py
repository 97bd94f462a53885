"""images: what a blob is as an image, and its variants

Revision ID: 0004
Revises: 0003

Public links serve thumbnails and web-sized copies (``?w=…``). A blob's image size, format and
frame count are read once and kept on its row; each variant made is a row of ``blob_variants``
(its storage key and md5), which is also the claim that makes it once across processes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("image_format", sa.String(16), nullable=True))
        batch.add_column(sa.Column("image_width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("image_height", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("image_frames", sa.Integer(), nullable=True))
    op.create_table(
        "blob_variants",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "blob_id",
            BigId,
            sa.ForeignKey("blobs.id", ondelete="CASCADE", name="fk_blob_variants_blob_id_blobs"),
            nullable=False,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blob_variants"),
        sa.UniqueConstraint("blob_id", "name", name="uq_blob_variants_blob_id_name"),
    )


def downgrade() -> None:
    op.drop_table("blob_variants")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("image_frames")
        batch.drop_column("image_height")
        batch.drop_column("image_width")
        batch.drop_column("image_format")
