"""Check a mapping against Marketo before `flask config` writes it (`--offline` skips this).

A name Marketo does not know (an activity attribute, a lead field) would otherwise be accepted
and then dead-letter every event that uses it (`marketo_1006`); refused here, the operator sees
the names that exist. Marketo unreachable or no credentials: the mapping is written unchecked,
with a note saying so.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import click
from flask import current_app

from app.errors import SettingsInvalid
from app.marketo.client import MarketoClient
from app.marketo.errors import MarketoError
from app.marketo.names import MarketoNames
from app.marketo.online import changed_mappings
from app.marketo.online import written_problems
from app.settings import parse
from app.settings import validate
from app.settings.store import apply_env

Change = Callable[[dict[str, Any]], None]


class MappingRefused(click.ClickException):
    """Marketo does not know a name the change maps; nothing was written."""


def _client(settings: Any) -> tuple[MarketoClient, Any]:
    """Return a client using the gateway's token cache and limiter, and the describe cache."""
    from app.delivery import get_engine  # the CLI loads delivery only for commands that need it
    from app.delivery import get_shared

    shared = get_shared(current_app)
    try:
        gate = get_engine(current_app).gate
    except SettingsInvalid:  # the file in force is broken; check without the shared limiter
        gate = None
    return MarketoClient(settings, tokens=shared, limiter=gate), shared


def check_against_marketo(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Refuse `after` when a mapping it changed names something Marketo does not have.

    :raises MappingRefused: with every problem printed above it.
    """
    merged = apply_env(after, current_app.config["ENVIRON"])
    changed = changed_mappings(before, after)
    if not changed or validate(merged):
        return  # nothing to check, or the offline validation refuses it with its own reasons
    settings = parse(merged)
    if not settings.has_credentials:
        return
    client, shared = _client(settings)
    try:
        problems = written_problems(settings, MarketoNames(client, shared), changed)
    except MarketoError as exc:
        click.echo(
            f"note: not checked against Marketo ({exc}); --offline skips the check", err=True
        )
        return
    finally:
        client.close()
    if problems:
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        raise MappingRefused(
            f"settings not changed: Marketo at {settings.rest_base_url} does not have"
            f" {len(problems)} name(s) this maps (see above; --offline writes it unchecked)"
        )


def checked(change: Change, offline: bool) -> Change:
    """Wrap a settings change so the mappings it writes are checked against Marketo first."""
    if offline:
        return change

    def run(raw: dict[str, Any]) -> None:
        before = copy.deepcopy(raw)
        change(raw)
        check_against_marketo(before, raw)

    return run
