"""`flask privacy forget` and `flask privacy unsuppress`: a person's erasure and its undoing."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup

from app import backoffice
from app.cli.common import echo_json
from app.cli.common import fail
from app.cli.lists import marketo_call
from app.privacy.api import marketo_client_for
from app.privacy.forget import forget
from app.privacy.forget import unsuppress
from app.privacy.intake import suppression_list

privacy_cli = AppGroup("privacy", help="Forget a person and manage the suppression list.")


def _identifiers(email: str | None, user_id: str | None, anonymous_id: str | None) -> set:
    found = {
        (kind, value.strip())
        for kind, value in (("email", email), ("userId", user_id), ("anonymousId", anonymous_id))
        if value is not None and value.strip()
    }
    if not found:
        fail("name the person: --email, --user-id or --anonymous-id")
    return found


def _who(command: click.Command) -> click.Command:
    for option in (
        click.option("--anonymous-id", help="The person's Segment anonymousId."),
        click.option("--user-id", help="The person's Segment userId."),
        click.option("--email", help="The person's email address."),
    ):
        command = option(command)
    return command


@privacy_cli.command("forget")
@_who
@click.option("--marketo", is_flag=True, help="Also delete the person's lead(s) in Marketo.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def forget_command(
    email: str | None, user_id: str | None, anonymous_id: str | None, marketo: bool, as_json: bool
) -> None:
    """Remove a person's events and cache entries and suppress their future events."""
    from app.delivery import get_shared

    identifiers = _identifiers(email, user_id, anonymous_id)
    settings = backoffice.settings()
    client = marketo_call(lambda: marketo_client_for(settings)) if marketo else None
    try:
        result = marketo_call(
            lambda: forget(get_shared(current_app), settings, identifiers, time.time(), client)
        )
    finally:
        suppression_list(current_app).invalidate()
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(
        f"forgotten: {result.events_removed} event(s) removed, {len(result.cached_leads)}"
        f" cached lead(s) dropped, {result.suppressed} identifier(s) suppressed"
    )
    if marketo:
        click.echo(
            f"Marketo: {len(result.marketo_deleted)} lead(s) deleted,"
            f" {len(result.marketo_skipped)} skipped"
        )


@privacy_cli.command("unsuppress")
@_who
def unsuppress_command(email: str | None, user_id: str | None, anonymous_id: str | None) -> None:
    """Accept events about a person again (their forgotten data stays gone)."""
    from app.delivery import get_shared

    lifted = unsuppress(get_shared(current_app), _identifiers(email, user_id, anonymous_id))
    suppression_list(current_app).invalidate()
    click.echo(f"{lifted} identifier(s) no longer suppressed")
