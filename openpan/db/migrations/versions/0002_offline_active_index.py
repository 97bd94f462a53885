"""index the offline tasks that hold a download slot

Revision ID: 0002
Revises: 0001

Creating a task and ending one count the tasks holding a slot (``active``), per user. Without an
index that count read every task ever made, finished ones included, so it grew with the history.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_offline_tasks_active", "offline_tasks", ["active", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_offline_tasks_active", table_name="offline_tasks")
