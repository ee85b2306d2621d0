"""`flask config …`: create, show, change, map and validate the settings."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from app.cli.common import echo_json
from app.cli.common import edit
from app.cli.common import fail
from app.cli.common import settings_holder
from app.cli.common import settings_path
from app.cli.mapping_check import checked
from app.errors import SettingsInvalid
from app.settings import FIELD_TYPES
from app.settings import SettingsFileError
from app.settings import masked
from app.settings import parse
from app.settings import validate
from app.settings import write_raw
from app.settings.describe import KEY_HELP
from app.settings.edits import initial_document
from app.settings.edits import map_event
from app.settings.edits import map_field
from app.settings.edits import parse_value
from app.settings.edits import set_path
from app.settings.edits import unmap
from app.settings.edits import unset_path

config_cli = AppGroup("config", help="Create, show, change and validate the gateway settings.")


@config_cli.command("init")
@click.option("--munchkin-id", default="000-AAA-000", help="Marketo instance id, like 123-ABC-456.")
@click.option("--force", is_flag=True, help="Overwrite an existing settings file.")
def init_command(munchkin_id: str, force: bool) -> None:
    """Write a new settings file with a fresh signing secret."""
    path = settings_path()
    if path.exists() and not force:
        fail(f"{path} already exists; use --force to overwrite it")
    document = initial_document(munchkin_id)
    problems = validate(document)
    if problems:
        fail(problems[0])
    write_raw(path, document)
    click.echo(f"wrote {path}")
    if munchkin_id == "000-AAA-000":
        click.echo("next: flask config set munchkin_id YOUR-MUNCHKIN-ID")


def effective(raw: dict) -> dict:
    """Return the settings with every default filled in, as plain JSON data."""
    settings = parse(raw)
    data = dataclasses.asdict(settings)
    data["keys"] = [dict(k, allowed_origins=list(k["allowed_origins"])) for k in data["keys"]]
    data["lead_lookup"] = list(settings.lead_lookup)
    return data


def leaves(name: str, value: Any) -> list[tuple[str, Any]]:
    """Flatten objects (and lists of objects) into dotted keys, one value a line."""
    if isinstance(value, dict) and value:
        return [pair for k in sorted(value) for pair in leaves(f"{name}.{k}", value[k])]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [pair for i, v in enumerate(value) for pair in leaves(f"{name}[{i}]", v)]
    return [(name, value)]


@config_cli.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(as_json: bool) -> None:
    """Print the effective settings (file + environment), secrets masked."""
    try:
        raw = settings_holder().raw()
    except SettingsFileError as exc:
        fail(str(exc))
    problems = validate(raw)
    data = masked(effective(raw) if not problems else raw)
    if as_json:
        echo_json(data)
    else:
        for key in sorted(data):
            if key in KEY_HELP:
                click.echo(f"# {KEY_HELP[key]}")
            for name, value in leaves(key, data[key]):
                shown = json.dumps(value, ensure_ascii=False, sort_keys=True)
                click.echo(f"{name} = {click.style(shown, bold=True)}")
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)


@config_cli.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--offline", is_flag=True, help="Write without checking names against Marketo.")
def set_command(key: str, value: str, offline: bool) -> None:
    """Set KEY (dotted, e.g. limits.calls_per_20s) to VALUE (parsed as JSON when it parses).

    A mapping (events, traits, page_activity, lead_fields) is checked against Marketo first.
    """
    edit(checked(lambda raw: set_path(raw, key, parse_value(value, key)), offline))
    click.echo(f"set {key}")


@config_cli.command("unset")
@click.argument("key")
def unset_command(key: str) -> None:
    """Remove KEY, so its default applies."""
    edit(lambda raw: unset_path(raw, key))
    click.echo(f"unset {key}")


@config_cli.command("map-event")
@click.argument("event")
@click.option("--activity-id", type=int, required=True, help="Custom activity type id.")
@click.option("--primary", help="Property path for the primary attribute.")
@click.option("--property", "properties", multiple=True, help="PROP=ATTRIBUTE[:TYPE], repeatable.")
@click.option("--offline", is_flag=True, help="Write without checking names against Marketo.")
def map_event_command(
    event: str, activity_id: int, primary: str | None, properties: tuple[str, ...], offline: bool
) -> None:
    """Send track EVENT to Marketo as a custom activity (names checked against Marketo)."""
    edit(
        checked(lambda raw: map_event(raw, event, activity_id, primary, list(properties)), offline)
    )
    click.echo(f"mapped event {event!r} to activity type {activity_id}")


@config_cli.command("unmap-event")
@click.argument("event")
def unmap_event_command(event: str) -> None:
    """Stop sending track EVENT to Marketo."""
    edit(lambda raw: unmap(raw, "events", event))
    click.echo(f"unmapped event {event!r}")


@config_cli.command("map-field")
@click.argument("trait")
@click.argument("field")
@click.option("--type", "type_", default="string", type=click.Choice(sorted(FIELD_TYPES)))
@click.option("--offline", is_flag=True, help="Write without checking names against Marketo.")
def map_field_command(trait: str, field: str, type_: str, offline: bool) -> None:
    """Write identify TRAIT (dotted path) to the Marketo lead FIELD (checked against Marketo)."""
    edit(checked(lambda raw: map_field(raw, trait, field, type_), offline))
    click.echo(f"mapped trait {trait!r} to field {field!r}")


@config_cli.command("unmap-field")
@click.argument("trait")
def unmap_field_command(trait: str) -> None:
    """Stop writing identify TRAIT to Marketo."""
    edit(lambda raw: unmap(raw, "traits", trait))
    click.echo(f"unmapped trait {trait!r}")


@config_cli.command("validate")
@click.option("--online", is_flag=True, help="Also check mappings against Marketo itself.")
def validate_command(online: bool) -> None:
    """Check the settings and print every problem (exit 1 when there is any)."""
    holder = settings_holder()
    try:
        problems = validate(holder.raw())
    except SettingsFileError as exc:
        fail(str(exc))
    source = "in the settings file"
    if not problems and online:
        from app.delivery import online_problems

        settings = holder.get()
        source = f"against Marketo at {settings.rest_base_url}"
        click.echo(f"checking the mappings {source}")
        try:
            problems = list(online_problems(current_app, settings))
        except SettingsInvalid as exc:
            problems = exc.problems
    for problem in problems:
        click.echo(problem)
    if problems:
        pending = " (the checks against Marketo run once these are fixed)"
        skipped = pending if online and source == "in the settings file" else ""
        fail(f"{len(problems)} problem(s) found {source}{skipped}")
    click.echo("settings are valid" + (" and match Marketo" if online else ""))
    if not holder.get().has_credentials:
        click.echo(
            "note: no Marketo credentials (client_id, client_secret): events are accepted and"
            " kept pending, and nothing is delivered until they are set"
        )
