"""Register the back-office command groups: lists, campaign, bulk and leads."""

from __future__ import annotations

from flask import Flask

from app.cli.bulk import bulk_cli
from app.cli.campaigns import campaign_cli
from app.cli.leads import leads_cli
from app.cli.lists import lists_cli


def init_app(app: Flask) -> None:
    """Add `flask lists|campaign|bulk|leads`."""
    for group in (lists_cli, campaign_cli, bulk_cli, leads_cli):
        app.cli.add_command(group)
