"""Shared fixtures: a fresh state directory per test; a store location per backend (LMDB, PostgreSQL); the fake
Telegram Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from afactors.store.pg_server import PgServer, PgUnavailable, throwaway_server
from afactors_telegram.testing import FakeBotApi, open_fake_bot_api
from tests.telegram_fake import FAKE_LIMITS


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the session (skipped, saying why, where its binaries are absent)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL store's driver (the `postgresql` extra) is not installed")
    try:
        server = throwaway_server()
        running = server.__enter__()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield running
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(params=["lmdb", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's store lives, once per backend: an LMDB state directory, or a fresh PostgreSQL schema."""
    if request.param == "lmdb":
        return tmp_path / "state"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_store_url()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    """A fake Bot API on loopback with `FAKE_LIMITS`."""
    async with open_fake_bot_api(rate_limits=FAKE_LIMITS) as api:
        yield api
