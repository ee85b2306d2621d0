"""`flask campaign trigger`: request a Marketo trigger campaign for leads, with tokens."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from app import backoffice
from app.cli.common import echo_json
from app.cli.common import fail
from app.cli.lists import marketo_call
from app.marketo.campaigns import request_campaign
from app.marketo.campaigns import token_name
from app.marketo.list_members import resolve

campaign_cli = AppGroup("campaign", help="Request Marketo trigger campaigns (transactional email).")


@campaign_cli.command("trigger")
@click.argument("campaign_id", type=int)
@click.argument("values", nargs=-1, required=True)
@click.option("--field", default=None, help="Lookup field the values are (default: email).")
@click.option("--token", "tokens", multiple=True, help="NAME=VALUE, e.g. plan=Pro. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def trigger_command(
    campaign_id: int, values: tuple[str, ...], field: str | None, tokens: tuple[str, ...], as_json
) -> None:
    """Run trigger campaign CAMPAIGN_ID for the leads named by VALUES (emails by default)."""
    token_map: dict[str, str] = {}
    for item in tokens:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--token {item!r}: write NAME=VALUE")
        token_map[token_name(name)] = value
    field = field or backoffice.settings().lead_lookup_field
    client = backoffice.marketo_client()

    def run() -> dict[str, Any]:
        found = resolve(client, field, values)
        leads = [v for v in found.values() if isinstance(v, int)]
        missing = [k for k, v in found.items() if not isinstance(v, int)]
        calls = request_campaign(client, campaign_id, leads, token_map) if leads else 0
        return {"campaign_id": campaign_id, "leads": leads, "not_found": missing, "calls": calls}

    result = marketo_call(run)
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"campaign {campaign_id} requested for {len(result['leads'])} lead(s)"
            f" in {result['calls']} call(s)"
        )
        for value in result["not_found"]:
            click.echo(f"  not found: {value}")
    if result["not_found"]:
        raise SystemExit(1)
