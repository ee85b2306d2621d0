"""`flask demo`: a working gateway on this machine in one command, with a fake Marketo if needed."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click
from flask import current_app
from werkzeug.serving import run_simple

from app.browser.loader import render_snippet
from app.cli.common import settings_path
from app.console.links import LINK_MAX_AGE_S
from app.console.links import sign_in_url
from app.settings import Settings
from app.settings import read_raw
from app.settings import settings_holder
from app.settings import update_raw
from app.settings import write_raw
from app.settings.edits import create_key
from app.settings.edits import initial_document
from app.settings.edits import map_event

if TYPE_CHECKING:
    from app.devtools.fake_marketo import FakeMarketo

DEMO_FAKE_PORT = 9100
DEMO_FAKE_CLIENT = ("fake-client-id", "fake-client-secret")
# The fake's Forms 2.0 form that the demo's identify submits in the background.
DEMO_FORM_ID = 1003
# Labels that mark the keys the demo made (a restart updates and replaces only these).
DEMO_BROWSER_LABEL = "demo site"
DEMO_SERVER_LABEL = "demo backend"
DEMO_ADMIN_LABEL = "demo console"


def _demo_document(
    host: str, port: int, fake: bool, fake_port: int = DEMO_FAKE_PORT
) -> tuple[dict, str, str, str]:
    """Return a demo settings document with browser, server and admin keys, and their values."""
    base = f"http://{host}:{port}"
    document = initial_document("123-ABC-456")
    document["public_url"] = base
    document["limits"]["batch_wait_s"] = 0.5
    origins = [base, f"http://localhost:{port}"]
    _, browser = create_key(document, "browser", origins, DEMO_BROWSER_LABEL)
    _, server = create_key(document, "server", [], DEMO_SERVER_LABEL)
    _, admin = create_key(document, "admin", [], DEMO_ADMIN_LABEL)
    map_event(document, "Signed Up", 100001, "plan", [])
    if fake:
        document["client_id"], document["client_secret"] = DEMO_FAKE_CLIENT
        _use_fake(document, fake_port)
    return document, browser, server, admin


def _use_fake(raw: dict, fake_port: int) -> None:
    """Point the settings at the fake on `fake_port`: its REST API, its stand-in Munchkin and
    Forms 2.0 (so the demo site needs no internet), and let its demo page use the browser key."""
    from app.devtools.fake_marketo.web import MUNCHKIN_PATH  # only the demo loads the dev tools

    fake = f"http://127.0.0.1:{fake_port}"
    raw["rest_base_url"] = fake
    raw.pop("identity_url", None)
    raw["munchkin_script_url"] = fake + MUNCHKIN_PATH
    raw["form_base_url"] = fake
    raw["form_id"] = DEMO_FORM_ID
    _allow_origins(raw, "127.0.0.1", fake_port)


def _allow_origins(raw: dict, host: str, port: int) -> None:
    """Let pages on `host:port` (and localhost on that port) use the demo's browser key."""
    for entry in raw.get("keys") or []:
        if entry.get("kind") == "browser" and entry.get("label") == DEMO_BROWSER_LABEL:
            origins = entry.setdefault("allowed_origins", [])
            for origin in (f"http://{host}:{port}", f"http://localhost:{port}"):
                if origin not in origins:
                    origins.append(origin)


def _start_fake(port: int) -> FakeMarketo:
    """Start the fake Marketo (a development tool shipped in app.devtools) on `port`."""
    from app.devtools.fake_marketo import FakeMarketo  # only the demo loads the dev tools

    client_id, client_secret = DEMO_FAKE_CLIENT
    return FakeMarketo(client_id=client_id, client_secret=client_secret, port=port).start()


def _follow_port(
    raw: dict, host: str, port: int, marketo_port: int | None, fake: bool
) -> str | None:
    """Point an existing demo's settings at this run's ports; return a fresh server key.

    The demo's server key is shown once and kept only as a hash, so a restart replaces the
    secret of the key labelled "demo backend" (the old value stops working) to print one that
    works. Settings of an earlier demo get what this one adds: an admin key for the console
    link, and (with the fake) the fake's Munchkin and Forms 2.0. Returns None when the settings
    hold no demo server key.
    """
    base = f"http://{host}:{port}"
    raw["public_url"] = base
    _allow_origins(raw, host, port)
    if fake:
        current = urlsplit(str(raw.get("rest_base_url") or "")).port
        _use_fake(raw, marketo_port or current or DEMO_FAKE_PORT)
    elif marketo_port is not None:
        raw["rest_base_url"] = f"http://127.0.0.1:{marketo_port}"
        raw.pop("identity_url", None)
    keys = raw.get("keys") or []
    labels = {k.get("label") for k in keys}
    if DEMO_ADMIN_LABEL not in labels and labels & {DEMO_BROWSER_LABEL, DEMO_SERVER_LABEL}:
        create_key(raw, "admin", [], DEMO_ADMIN_LABEL)  # its secret is never needed: the link is
    demo_keys = [
        k for k in keys if k.get("kind") == "server" and k.get("label") == DEMO_SERVER_LABEL
    ]
    if not demo_keys:
        return None
    raw["keys"] = [k for k in keys if k not in demo_keys]
    _, server = create_key(raw, "server", [], DEMO_SERVER_LABEL)
    return server


def _forget_fake_leads(munchkin_id: str) -> None:
    """Drop the lead caches of the demo's instance: the fake it starts holds no leads yet."""
    from app.delivery import get_shared

    removed = get_shared(current_app).forget_scope(munchkin_id)
    if removed:
        click.echo(f"  (forgot {removed} cached lead identities of the previous fake)")


def _first_event_hint(server: str, host: str, port: int) -> str:
    # The email in context.traits lets the gateway find or create the lead (no userId field is
    # mapped in the demo), so the event becomes a custom activity.
    return (
        f"try: curl -u {server}: -H 'Content-Type: application/json' "
        f'-d \'{{"userId":"u1","event":"Signed Up","properties":{{"plan":"pro"}},'
        f'"context":{{"traits":{{"email":"ann@example.com"}}}}}}\' http://{host}:{port}/v1/track'
    )


def _uses_fake(raw: dict, has_credentials: bool) -> bool:
    """Tell whether these settings are the demo's on the fake (no real credentials given)."""
    return raw.get("client_id") == DEMO_FAKE_CLIENT[0] and not has_credentials


def _serve_demo_site(fake: FakeMarketo, snippet: str, base: str) -> None:
    """Give the fake its demo page: the snippet installed, links to the gateway and console."""
    from app.devtools.fake_marketo.web import DEMO_PATH
    from app.devtools.fake_marketo.web import DemoPage

    fake.demo_page = DemoPage(snippet, base, f"{base}/console/")
    click.echo(
        f"demo site: {fake.url}{DEMO_PATH} (the snippet on a page: page view, track and"
        " identify buttons, and a panel of the fake Marketo's leads and activities)"
    )


def _console_hint(settings: Settings, base: str) -> str:
    """Return the console line: a one-time sign-in link for the demo's admin key if it has one."""
    admin = next((k for k in settings.keys if k.label == DEMO_ADMIN_LABEL), None)
    if admin is not None and admin.kind == "admin" and settings.secret_key:
        link = sign_in_url(current_app, base, admin.id)
        minutes = LINK_MAX_AGE_S // 60
        return (
            f"console: {link}\n  (signs you in once, within {minutes} minutes; later use"
            f" {base}/console/ with an admin key, or restart the demo for a new link)"
        )
    return f"console: {base}/console/ (sign in with a key from `flask keys create --kind admin`)"


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--marketo-port",
    default=None,
    type=int,
    help=f"Port of the fake Marketo [default: {DEMO_FAKE_PORT}, or the one configured earlier].",
)
def demo_command(host: str, port: int, marketo_port: int | None) -> None:
    """Configure a demo on first run, start a fake Marketo without credentials, and serve.

    With the fake, the fake also serves a demo site with the snippet installed. The output ends
    with a one-time link that signs in to the console. A later run follows the port it is
    started on (public_url, the demo key's origins), prints a new demo server key, and forgets
    the lead caches of the previous fake.
    """
    path = settings_path()
    environ = current_app.config["ENVIRON"]
    has_credentials = bool(environ.get("MARKETO_CLIENT_ID"))
    base = f"http://{host}:{port}"
    if not path.exists():
        document, browser, server, admin = _demo_document(
            host, port, fake=not has_credentials, fake_port=marketo_port or DEMO_FAKE_PORT
        )
        write_raw(path, document)
        click.echo(f"wrote demo settings to {path}")
        click.echo(f"browser key: {browser}")
        click.echo(f"server key (shown once): {server}")
        click.echo(f"admin key for the console (shown once): {admin}")
    else:
        made: dict[str, str | None] = {}

        def follow(raw: dict) -> None:
            fake = _uses_fake(raw, has_credentials)
            made.update(server=_follow_port(raw, host, port, marketo_port, fake))

        update_raw(path, follow)
        click.echo(f"using the demo settings in {path} (public_url now {base})")
        if made["server"]:
            server = made["server"]
            click.echo(
                f"server key (new this run; the previous demo key stopped working): {server}"
            )
        else:
            server = "SERVER_KEY"
            click.echo(
                "no demo server key in these settings: make one with"
                " `flask keys create --kind server` and use it as SERVER_KEY"
            )
    raw = read_raw(path)
    fake = None
    if _uses_fake(raw, has_credentials):
        fake_port = urlsplit(str(raw.get("rest_base_url") or "")).port or DEMO_FAKE_PORT
        fake = _start_fake(fake_port)
        click.echo(f"fake Marketo on http://127.0.0.1:{fake_port} (GET / lists what it holds)")
        click.echo(
            "  (it starts empty each run: delete the instance folder to restart the demo"
            " from scratch)"
        )
        _forget_fake_leads(str(raw.get("munchkin_id")))
    settings = settings_holder(current_app).get()
    browser_key = next((k for k in settings.keys if k.label == DEMO_BROWSER_LABEL), None)
    if browser_key is not None and settings.public_url:
        snippet = render_snippet(settings.public_url, browser_key).rstrip("\n")
        click.echo("snippet for a page's <head> (also `flask snippet`):")
        click.echo(snippet)
        if fake is not None:
            _serve_demo_site(fake, snippet, base)
    click.echo(_first_event_hint(server, host, port))
    click.echo("then: flask status")
    click.echo(_console_hint(settings, base))
    click.echo(f"gateway on {base} (Ctrl-C stops it)")
    run_simple(host, port, current_app._get_current_object(), threaded=True)
