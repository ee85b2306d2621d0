"""The `flask` command groups owned by the foundation: config, keys, demo and fake-marketo."""

from __future__ import annotations

from flask import Flask

from app.cli import backoffice as backoffice_cli
from app.cli import db as db_commands
from app.cli.common import guard_commands
from app.cli.config import config_cli
from app.cli.demo import demo_command
from app.cli.fake_marketo import fake_marketo_command
from app.cli.keys import keys_cli
from app.cli.version import gateway_cli


def init_app(app: Flask) -> None:
    """Register the config, keys, demo and fake-marketo commands."""
    app.cli.add_command(config_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(fake_marketo_command)
    app.cli.add_command(gateway_cli)
    backoffice_cli.init_app(app)
    db_commands.init_app(app)


def guard(app: Flask) -> None:
    """Turn gateway errors in every registered command into one line and exit code 1."""
    guard_commands(app.cli)
