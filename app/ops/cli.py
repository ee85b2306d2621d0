"""`flask status` and `flask dead-letters list|show|replay|purge`: parse, call the store, echo."""

from __future__ import annotations

import re
import time

import click
from flask import current_app
from flask.cli import AppGroup
from flask.cli import with_appcontext

from app.cli.common import echo_json
from app.cli.common import fail
from app.delivery.status import iso
from app.ops.status import build_status
from app.ops.status import format_status
from app.outbox import get_store
from app.outbox.store import State
from app.outbox.store import StoredEvent

# Units `--older-than` accepts, in seconds.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Return seconds for `30d`, `12h`, `45m`, `10s` or `2w`.

    :raises ValueError: the text is not a number followed by one unit.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h or 45m")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def _summary(item: StoredEvent) -> dict:
    return {
        "id": item.id,
        "reason": item.reason,
        "detail": item.detail,
        "type": item.event.type,
        "messageId": item.event.message_id,
        "attempts": item.attempts,
        "updated_at": iso(item.updated_at),
    }


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@with_appcontext
def status_command(as_json: bool) -> None:
    """Show queue depth, outcomes by reason and Marketo figures."""
    status = build_status(current_app)
    if as_json:
        echo_json(status)
        return
    for line in format_status(status):
        click.echo(line)


dead_letters_cli = AppGroup("dead-letters", help="Inspect, replay and purge dead-lettered events.")


@dead_letters_cli.command("list")
@click.option("--reason", help="Only this reason.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(reason: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, newest first."""
    items = [_summary(d) for d in get_store().dead_letters(reason=reason, limit=limit)]
    if as_json:
        echo_json(items)
        return
    if not items:
        click.echo("no dead letters")
        return
    click.echo(f"{'ID':>8}  {'REASON':<24} {'TYPE':<9} {'UPDATED':<20}  MESSAGE ID  DETAIL")
    for item in items:
        click.echo(
            f"{item['id']:>8}  {item['reason'] or '-':<24} {item['type']:<9}"
            f" {item['updated_at']:<20}  {item['messageId']}  {item['detail'] or ''}".rstrip()
        )


@dead_letters_cli.command("show")
@click.argument("event_id", type=int)
def show_command(event_id: int) -> None:
    """Print one dead letter with its full payload as JSON."""
    item = get_store().get(event_id)
    if item is None or item.state is not State.DEAD:
        fail(f"no dead letter with id {event_id}")
        return
    echo_json({**_summary(item), "payload": item.event.payload})


@dead_letters_cli.command("replay")
@click.argument("event_ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option("--reason", help="Replay the dead letters with this reason.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay_command(
    event_ids: tuple[int, ...], replay_all: bool, reason: str | None, as_json: bool
) -> None:
    """Send dead letters back to pending with their attempts reset."""
    chosen = sum(bool(x) for x in (event_ids, replay_all, reason))
    if chosen != 1:
        fail("name the events: IDs, --reason R or --all (exactly one)")
    ids = list(event_ids) if event_ids else None
    moved = get_store().replay(ids, reason, time.time())
    if as_json:
        echo_json({"replayed": moved})
        return
    click.echo(f"replayed {moved} event(s)")


@dead_letters_cli.command("purge")
@click.option("--older-than", default="30d", show_default=True, help="Age, e.g. 30d, 12h.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def purge_command(older_than: str, as_json: bool) -> None:
    """Delete dead letters last touched longer ago than --older-than."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        fail(str(exc))
        return
    removed = get_store().purge_dead(time.time() - age)
    if as_json:
        echo_json({"purged": removed})
        return
    click.echo(f"purged {removed} dead letter(s)")
