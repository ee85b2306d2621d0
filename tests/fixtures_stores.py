"""Store fixtures over both backends: `backend_store` and `backend_shared` run a test twice,
on SQLite and on PostgreSQL.

(`store`, without prefix, is intake's fixture for the app's own store, see fixtures_intake.py.)

PostgreSQL runs use the server on 127.0.0.1:5432 (trust auth, user postgres): one throw-away
database `gw_test_<random>` per test session, dropped at the end, and one fresh schema per test
inside it (selected through the URL's search_path), so tests never see each other's rows. Without
a reachable server those tests are skipped with the reason, never passed; with CI=true they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from app.coordination import open_shared
from app.coordination.state import SharedState
from app.outbox import open_store
from app.outbox.store import Store

# The maintenance database the tests connect to first; override for a server elsewhere.
ADMIN_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Dedupe window the store fixtures use (short, so tests can step past it).
TEST_DEDUPE_WINDOW_S = 3600.0


def _connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a throw-away PostgreSQL database for this test session (skips without a server)."""
    try:
        admin = _connect(ADMIN_URL)
    except Exception as exc:  # any failure to reach the server means "skip", with the reason
        reason = f"PostgreSQL not reachable at {ADMIN_URL} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":  # CI must prove the multi-node store, not skip it
            pytest.fail(reason + "; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    name = f"gw_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with _connect(ADMIN_URL) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """Store URL on a fresh schema of the session's database, dropped after the test."""
    schema = f"t_{secrets.token_hex(5)}"
    with _connect(pg_database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_database}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with _connect(pg_database) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend the test runs on."""
    return request.param


@pytest.fixture
def store_url(store_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on an empty database of the backend under test."""
    if store_backend == "sqlite":
        (tmp_path / "store").mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / 'store' / 'outbox.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def backend_store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """An open, empty outbox on the backend under test."""
    opened = open_store(store_url, tmp_path, dedupe_window_s=TEST_DEDUPE_WINDOW_S)
    yield opened
    opened.close()


@pytest.fixture
def backend_shared(store_url: str, tmp_path: Path) -> Iterator[SharedState]:
    """Open, empty shared Marketo state (limiter, token, caches) on the backend under test."""
    opened = open_shared(store_url, tmp_path)
    yield opened
    opened.close()
