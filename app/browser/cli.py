"""`flask snippet` and `flask identity-token`: parse, call, echo."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from app.browser import loader
from app.browser import tokens
from app.errors import GatewayError
from app.errors import SettingsInvalid
from app.settings import Settings
from app.settings import SourceKey
from app.settings import settings_holder


def _settings() -> Settings:
    try:
        return settings_holder(current_app).get()
    except SettingsInvalid as exc:
        raise click.ClickException(str(exc)) from exc


def pick_browser_key(settings: Settings, key_id: str | None) -> SourceKey:
    """Return the browser key to print a snippet for: the one named, or the only one.

    :raises click.ClickException: no such key, or a choice is needed.
    """
    browser_keys = [k for k in settings.keys if k.kind == "browser"]
    if key_id is not None:
        # The key's id (key_...) or its public value (bk_...): `keys create` prints both.
        key = settings.key_by_id(key_id) or next((k for k in browser_keys if k.key == key_id), None)
        if key is None or key.kind != "browser":
            raise click.ClickException(f"no browser key with id {key_id}; see `flask keys list`")
        return key
    if len(browser_keys) == 1:
        return browser_keys[0]
    if not browser_keys:
        raise click.ClickException("no browser key: run `flask keys create --kind browser`")
    ids = ", ".join(k.id for k in browser_keys)
    raise click.ClickException(f"several browser keys ({ids}): choose one with --key")


@click.command("snippet")
@click.option("--key", "key_id", help="Browser key id or value (needed when there are several).")
@click.option("--url", help="Gateway URL as websites reach it (default: public_url).")
@with_appcontext
def snippet_command(key_id: str | None, url: str | None) -> None:
    """Print the <script> snippet to paste into a site's <head>."""
    settings = _settings()
    key = pick_browser_key(settings, key_id)
    gateway_url = url or settings.public_url
    if not gateway_url:
        raise click.ClickException(
            "no gateway URL: pass --url or run `flask config set public_url https://...`"
        )
    click.echo(loader.render_snippet(gateway_url, key).rstrip("\n"))


@click.command("identity-token")
@click.argument("email")
@click.option(
    "--ttl",
    default=tokens.DEFAULT_TTL_S,
    show_default=True,
    type=int,
    help="Seconds the token stays valid.",
)
@click.option("--user-id", default=None, help="Also let the token bind this userId.")
@click.option("--json", "as_json", is_flag=True, help="Print {token, expiresAt} as JSON.")
@with_appcontext
def identity_token_command(email: str, ttl: int, user_id: str | None, as_json: bool) -> None:
    """Mint an identity token for EMAIL: /v1/hash and browser identifies accept it."""
    settings = _settings()
    try:
        minted = tokens.mint(settings.secret_key, email, ttl, user_id=user_id)
    except GatewayError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(minted.as_json()) if as_json else minted.token)
