"""`flask lists …`: add, remove, show and sync static lists from the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import TypeVar

import click
from flask.cli import AppGroup

from app import backoffice
from app.cli.common import echo_json
from app.cli.common import fail
from app.errors import GatewayError
from app.lists_api import update_list
from app.marketo.lists import members

lists_cli = AppGroup("lists", help="Manage Marketo static lists: add, remove, show, sync.")

T = TypeVar("T")


def marketo_call(action: Callable[[], T]) -> T:
    """Run a back-office action, turning any gateway or Marketo error into a one-line exit 1."""
    try:
        return action()
    except GatewayError as exc:
        fail(exc.message)
    raise AssertionError("unreachable")


def _values(values: tuple[str, ...], file: Path | None) -> list[str]:
    out = [v.strip() for v in values if v.strip()]
    if file is not None:
        out += [line.strip() for line in file.read_text("utf-8").splitlines() if line.strip()]
    if not out:
        fail("name at least one lead (arguments or --file)")
    return out


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(report)
    else:
        lst = report["list"]
        click.echo(
            f"list {lst['name']} ({lst['id']}): {len(report['added'])} added,"
            f" {len(report['removed'])} removed, {len(report['failed'])} failed"
        )
        for item in report["failed"]:
            click.echo(f"  {item['action']} {item['value']}: {item['code']} {item['message']}")
    if report["failed"]:
        raise SystemExit(1)


field_option = click.option(
    "--field", default=None, help="Lookup field the values are (default: lead_lookup_field)."
)
file_option = click.option(
    "--file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="One per line."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@lists_cli.command("add")
@click.argument("name")
@click.argument("values", nargs=-1)
@field_option
@file_option
@click.option("--create-leads", is_flag=True, help="Create leads that do not exist yet.")
@click.option("--create-list/--no-create-list", default=None, help="Create the list if missing.")
@json_option
def add_command(
    name: str,
    values: tuple[str, ...],
    field: str | None,
    file: Path | None,
    create_leads: bool,
    create_list: bool | None,
    as_json: bool,
) -> None:
    """Add leads (emails, or values of --field) to the static list NAME."""
    field = field or backoffice.settings().lead_lookup_field
    leads = [(field, v) for v in _values(values, file)]
    report = marketo_call(
        lambda: update_list(name, leads, [], create_missing=create_leads, create_list=create_list)
    )
    _print_report(report, as_json)


@lists_cli.command("remove")
@click.argument("name")
@click.argument("values", nargs=-1)
@field_option
@file_option
@json_option
def remove_command(
    name: str, values: tuple[str, ...], field: str | None, file: Path | None, as_json: bool
) -> None:
    """Remove leads (emails, or values of --field) from the static list NAME."""
    field = field or backoffice.settings().lead_lookup_field
    leads = [(field, v) for v in _values(values, file)]
    report = marketo_call(lambda: update_list(name, [], leads, create_list=False))
    _print_report(report, as_json)


@lists_cli.command("show")
@click.argument("name")
@click.option("--members", "with_members", is_flag=True, help="Also print every member.")
@json_option
def show_command(name: str, with_members: bool, as_json: bool) -> None:
    """Show a static list's id and member count (and members with --members)."""
    client = backoffice.marketo_client()
    directory = backoffice.list_directory()

    def read() -> dict[str, Any]:
        list_id = directory.list_id(name, create=False)
        rows = list(members(client, list_id, ("id", "email")))
        return {"id": list_id, "name": name, "count": len(rows), "members": rows}

    info = marketo_call(read)
    if as_json:
        if not with_members:
            info.pop("members")
        echo_json(info)
        return
    click.echo(f"list {name} ({info['id']}): {info['count']} member(s)")
    if with_members:
        for row in info["members"]:
            click.echo(f"  {row.get('id')}\t{row.get('email') or ''}")


@lists_cli.command("sync")
@click.argument("names", nargs=-1)
@json_option
def sync_command(names: tuple[str, ...], as_json: bool) -> None:
    """Make sure the configured audience lists (and NAMES) exist; print each list's id."""
    settings = backoffice.settings()
    if settings.lists is None:
        fail('no lists folder configured: flask config set lists \'{"folder": {"id": N}}\'')
    wanted = list(dict.fromkeys([*settings.lists.names.values(), *names]))
    if not wanted:
        fail("no list names: map audiences in lists.names or name lists as arguments")
    directory = backoffice.list_directory()
    found = {n: marketo_call(lambda n=n: directory.list_id(n)) for n in wanted}
    if as_json:
        echo_json(found)
    else:
        for list_name, list_id in found.items():
            click.echo(f"{list_name}: {list_id}")
