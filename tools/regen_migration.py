"""Regenerate the initial migration from ``openpan/db/models.py``.

Only while nothing has been released: once a schema ships, changes get new migrations instead.
Run: python tools/regen_migration.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from openpan.db.migrate import MIGRATIONS, alembic_config

target = MIGRATIONS / "versions" / "0001_initial_schema.py"
target.unlink(missing_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    config = alembic_config(f"sqlite+aiosqlite:///{Path(tmp) / 'gen.db'}")
    command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
print(f"wrote {target}")
