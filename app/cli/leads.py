"""`flask leads merge`: fold duplicate leads into one and repoint the gateway's lead cache."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app import backoffice
from app.cli.common import echo_json
from app.cli.lists import marketo_call
from app.marketo.merge import merge_leads

leads_cli = AppGroup("leads", help="Lead maintenance: merge duplicates.")


def _lead_cache() -> tuple[object | None, str]:
    """Return the shared identity cache and its scope (the Munchkin ID)."""
    return backoffice.lead_cache(), backoffice.settings().munchkin_id


@leads_cli.command("merge")
@click.argument("winner", type=int)
@click.argument("losers", type=int, nargs=-1, required=True)
@click.option("--merge-in-crm/--no-merge-in-crm", default=None, help="Default: merge_in_crm.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def merge_command(
    winner: int, losers: tuple[int, ...], merge_in_crm: bool | None, as_json: bool
) -> None:
    """Merge lead ids LOSERS into lead WINNER (winner's non-empty values win).

    Lead ids are the numbers in Marketo's lead detail URL, or those `flask lists show NAME
    --members` prints.
    """
    in_crm = backoffice.settings().merge_in_crm if merge_in_crm is None else merge_in_crm
    cache, scope = _lead_cache()
    moved = marketo_call(
        lambda: merge_leads(
            backoffice.marketo_client(),
            winner,
            list(losers),
            merge_in_crm=in_crm,
            cache=cache,  # type: ignore[arg-type]
            scope=scope,
        )
    )
    if as_json:
        echo_json({"winner": winner, "losers": list(losers), "identities_repointed": moved})
    else:
        click.echo(f"merged {len(losers)} lead(s) into {winner}; {moved} cached identities moved")
