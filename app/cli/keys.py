"""`flask keys …`: create, list and revoke source keys."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import echo_json
from app.cli.common import edit
from app.cli.common import fail
from app.cli.common import settings_path
from app.settings import SettingsFileError
from app.settings import read_raw
from app.settings.edits import create_key
from app.settings.edits import revoke_key

keys_cli = AppGroup("keys", help="Create, list and revoke the keys sites and servers send with.")


@keys_cli.command("create")
@click.option("--kind", type=click.Choice(["browser", "server", "admin"]), required=True)
@click.option("--origin", "origins", multiple=True, help="Allowed origin, repeatable.")
@click.option("--label", default="", help="A note for operators.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--quiet", is_flag=True, help='Print only the key, for scripts: KEY="$(flask keys create ...)".'
)
def create_command(
    kind: str, origins: tuple[str, ...], label: str, as_json: bool, quiet: bool
) -> None:
    """Create a key; a server or admin (console sign-in) secret is printed once, kept hashed."""
    if kind == "browser" and not origins:
        fail("a browser key needs at least one --origin, e.g. --origin https://www.example.com")
    if kind != "browser" and origins:
        fail("--origin is for browser keys only")
    made: dict = {}

    def change(raw: dict) -> None:
        made["entry"], made["value"] = create_key(raw, kind, list(origins), label)

    edit(change)
    entry, value = made["entry"], made["value"]
    if as_json:
        echo_json({"id": entry["id"], "kind": kind, "key": value})
    elif quiet:
        click.echo(value)
    elif kind in ("server", "admin"):
        click.echo(f"created {kind} key {entry['id']}")
        click.echo(f"secret (shown once, store it now): {value}")
    else:
        click.echo(f"created browser key {entry['id']}: {value}")


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """List keys; server secrets are never shown."""
    try:
        keys = read_raw(settings_path()).get("keys") or []
    except SettingsFileError as exc:
        fail(str(exc))
    rows = [
        {
            "id": k.get("id"),
            "kind": k.get("kind"),
            "key": k.get("key") if k.get("kind") == "browser" else None,
            "allowed_origins": k.get("allowed_origins", []),
            "label": k.get("label", ""),
            "created": k.get("created", ""),
        }
        for k in keys
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no keys; create one with `flask keys create --kind browser --origin URL`")
        return
    table = [("ID", "KIND", "KEY", "CREATED", "ALLOWED ORIGINS", "LABEL")]
    for row in rows:
        shown = row["key"] or "(secret hidden)"
        origins = ",".join(row["allowed_origins"]) or "-"
        table.append((row["id"], row["kind"], shown, row["created"], origins, row["label"]))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)]
        click.echo("  ".join([*cells, str(line[-1])]).rstrip())


@keys_cli.command("revoke")
@click.argument("key_id")
def revoke_command(key_id: str) -> None:
    """Revoke a key at once; a running gateway stops accepting it on its next request."""
    edit(lambda raw: revoke_key(raw, key_id))
    click.echo(f"revoked {key_id}")
