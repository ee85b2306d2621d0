"""`flask db …`: create and migrate the outbox schema, or show its version."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask import current_app
from flask.cli import AppGroup

from app.cli.common import echo_json
from app.cli.common import fail
from app.errors import SettingsInvalid
from app.outbox import default_store_url
from app.outbox import migrations
from app.outbox.sqlite_sql import path_from_url
from app.settings import settings_holder
from app.settings.redact import redact
from app.settings.redact import scrub

db_cli = AppGroup("db", help="Create, migrate and inspect the outbox database schema.")


def store_url(app: Flask) -> str:
    """Return the app's store URL, a SQLite path made absolute against the instance's parent."""
    try:
        url = settings_holder(app).get().store_url or default_store_url(app)
    except SettingsInvalid as exc:
        fail(f"settings are invalid: {'; '.join(exc.problems)}")
        raise AssertionError("unreachable") from exc
    if migrations.dialect_of(url) == migrations.SQLITE:
        path = path_from_url(url, Path(app.instance_path).parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return url


@db_cli.command("upgrade")
def upgrade_command() -> None:
    """Apply every pending schema step (safe to run on several nodes at once)."""
    url = store_url(current_app)
    try:
        before, after = migrations.upgrade_url(url)
    except Exception as exc:  # one line for the operator, whatever the driver raised
        fail(f"cannot upgrade {redact(url)}: {type(exc).__name__}: {scrub(str(exc), url)}")
        return
    if before == after:
        click.echo(f"schema already at version {after} (latest)")
    else:
        click.echo(f"schema upgraded from version {before} to {after}")


@db_cli.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def current_command(as_json: bool) -> None:
    """Show the schema version of the database and whether steps are pending."""
    url = store_url(current_app)
    try:
        version = migrations.current_url(url)
    except Exception as exc:  # one line for the operator, whatever the driver raised
        fail(f"cannot read {redact(url)}: {type(exc).__name__}: {scrub(str(exc), url)}")
        return
    pending = [step.name for step in migrations.pending_steps(version)]
    if as_json:
        echo_json({"version": version, "latest": migrations.LATEST, "pending": pending})
    elif pending:
        click.echo(f"version {version} of {migrations.LATEST}; pending: {', '.join(pending)}")
    else:
        click.echo(f"version {version} (latest)")


def init_app(app: Flask) -> None:
    """Register the `flask db` commands."""
    app.cli.add_command(db_cli)
