"""Versioned schema on both backends: ordered steps, `flask db upgrade|current`, racing nodes."""

from __future__ import annotations

import json
import re
import sqlite3
import threading

import pytest

from app.outbox import migrations


def execute(url: str, sql: str) -> list[tuple]:
    """Run one statement on the database a store URL names and return its rows."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(migrations.sqlite_path(url), isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import psycopg

    from app.outbox.pg_pool import split_url

    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def tables(statements: tuple[str, ...]) -> set[str]:
    return {
        m.group(1) for s in statements if (m := re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
    }


def test_every_step_creates_the_same_tables_on_both_backends():
    assert [m.version for m in migrations.MIGRATIONS] == list(range(1, migrations.LATEST + 1))
    for step in migrations.MIGRATIONS:
        assert step.sqlite and step.postgres
        assert tables(step.sqlite) == tables(step.postgres), step.name


def test_steps_apply_in_order_up_to_a_target_and_only_once(store_url):
    assert migrations.current_url(store_url) == 0
    assert migrations.upgrade_url(store_url, target=1) == (0, 1)
    assert execute(store_url, "SELECT count(*) FROM events") == [(0,)]
    assert migrations.upgrade_url(store_url) == (1, migrations.LATEST)
    assert migrations.upgrade_url(store_url) == (migrations.LATEST, migrations.LATEST)
    rows = execute(store_url, "SELECT version, name FROM schema_version ORDER BY version")
    assert rows == [(m.version, m.name) for m in migrations.MIGRATIONS]


def test_nodes_upgrading_at_once_apply_each_step_once(store_url):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def node() -> None:
        barrier.wait()
        try:
            migrations.upgrade_url(store_url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert execute(store_url, "SELECT count(*) FROM schema_version") == [(migrations.LATEST,)]


@pytest.fixture
def db_runner(store_url, write_settings, request: pytest.FixtureRequest):
    """CLI runner of an app whose settings name the backend under test."""
    write_settings(store_url=store_url)
    return request.getfixturevalue("app").test_cli_runner()


def test_flask_db_current_and_upgrade_report_versions(db_runner, store_url):
    migrations.upgrade_url(store_url)
    execute(store_url, f"DELETE FROM schema_version WHERE version = {migrations.LATEST}")
    result = db_runner.invoke(args=["db", "current", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "version": migrations.LATEST - 1,
        "latest": migrations.LATEST,
        "pending": [migrations.MIGRATIONS[-1].name],
    }
    result = db_runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"from version {migrations.LATEST - 1} to {migrations.LATEST}" in result.output
    assert "already at version" in db_runner.invoke(args=["db", "upgrade"]).output
    assert db_runner.invoke(args=["db", "current"]).output.strip().endswith("(latest)")


def test_flask_db_fails_with_one_line_when_the_database_is_unreachable(write_settings, runner):
    write_settings(store_url="postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    result = runner.invoke(args=["db", "current"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read postgresql://postgres@127.0.0.1:9/nowhere")


def test_config_show_masks_the_database_password(write_settings, runner):
    write_settings(store_url="postgresql://gateway:db-pass-7421@127.0.0.1:9/gateway")
    result = runner.invoke(args=["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert "db-pass-7421" not in result.output
    assert json.loads(result.output)["store_url"] == (
        "postgresql://gateway:********@127.0.0.1:9/gateway"
    )
