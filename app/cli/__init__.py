"""The `flask` command groups owned by the foundation: config and keys."""

from __future__ import annotations

from flask import Flask

from app.cli.config import config_cli
from app.cli.keys import keys_cli


def init_app(app: Flask) -> None:
    """Register the config and keys command groups."""
    app.cli.add_command(config_cli)
    app.cli.add_command(keys_cli)
