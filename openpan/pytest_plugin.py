"""The pytest plugin that ships with openpan (a ``pytest11`` entry point): the fixture
``openpan_emulator`` is an ``openpan.testing.Emulator`` started once per test session (per
worker under pytest-xdist) and reset before each test that asks for it.

    def test_my_uploader(openpan_emulator):
        upload_with_my_code(openpan_emulator.base_url, openpan_emulator.client_id, ...)
        assert openpan_emulator.journal()[-1]["path"] == "/upload/v1/oss/file/upload_complete"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openpan.testing import Emulator


@pytest.fixture(scope="session")
def openpan_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for the whole session, not reset between tests."""
    with Emulator(data_dir=tmp_path_factory.mktemp("openpan-emulator")) as emulator:
        yield emulator


@pytest.fixture
def openpan_emulator(openpan_emulator_session: Emulator) -> Emulator:
    """The session's emulator, reset to empty (the default user kept) for this test."""
    openpan_emulator_session.reset()
    return openpan_emulator_session
