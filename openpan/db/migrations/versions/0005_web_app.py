"""web app: passwords, roles, browser sessions, sign-in throttling and shared folders

Revision ID: 0005
Revises: 0004

People sign in to the web app with a user name and a password (argon2 hash on the user row);
the first user is the administrator. A browser session is a row keyed by the hash of its
cookie; failed sign-ins are rows counted over the last minute, so every API process sees
them; an image-bed folder shared as a public gallery is a row with its unguessable token.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("users.id", ondelete="CASCADE", name=f"fk_{table}_user_id_users")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # The first user (the one the first start made) administers the others.
    op.execute("UPDATE users SET is_admin = true WHERE id = (SELECT min(id) FROM users)")
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", BigId, _user_fk("web_sessions"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])
    op.create_table(
        "folder_shares",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("user_id", BigId, _user_fk("folder_shares"), nullable=False),
        sa.Column(
            "folder_id",
            BigId,
            sa.ForeignKey("files.id", ondelete="CASCADE", name="fk_folder_shares_folder_id_files"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_folder_shares"),
        sa.UniqueConstraint("folder_id", name="uq_folder_shares_folder_id"),
    )


def downgrade() -> None:
    op.drop_table("folder_shares")
    op.drop_index("ix_login_failures_key_at", "login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_web_sessions_user_id", "web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled")
        batch.drop_column("is_admin")
        batch.drop_column("password_hash")
