"""`flask gateway version`: which release this is (`flask --version` names Flask's own)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import echo_json
from app.version import __version__

gateway_cli = AppGroup("gateway", help="About this gateway: its version.")


@gateway_cli.command("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def version_command(as_json: bool) -> None:
    """Print the gateway's version (the package's, the browser library's and /healthz's)."""
    if as_json:
        echo_json({"version": __version__})
        return
    click.echo(f"marketo-gateway {__version__}")
