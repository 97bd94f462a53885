"""Identifiers: their shapes, their order, and that they differ."""

from __future__ import annotations

import re
import uuid

from openpan import ids


def test_a_trace_id_is_a_version_4_uuid_and_each_is_new() -> None:
    made = {ids.trace_id() for _ in range(1000)}
    assert len(made) == 1000
    for text in list(made)[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_sortable_id_sorts_by_time_and_its_random_part_varies() -> None:
    made = [ids.sortable_id() for _ in range(500)]
    assert all(re.fullmatch(r"[0-9a-z]{32}", one) for one in made)
    assert made == sorted(made, key=lambda one: one[:11])
    assert len({one[11:] for one in made}) == 500
    # Every digit of the random part is used (not, say, only the low ones).
    for position in range(11, 32):
        assert len({one[position] for one in made}) > 20
