"""`flask demo`: a working gateway on this machine in one command, with a fake Marketo if needed."""

from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask import current_app
from werkzeug.serving import run_simple

from app.cli.common import settings_path
from app.settings import read_raw
from app.settings import write_raw
from app.settings.edits import create_key
from app.settings.edits import initial_document
from app.settings.edits import map_event

DEMO_FAKE_PORT = 9100
DEMO_FAKE_CLIENT = ("fake-client-id", "fake-client-secret")


def _demo_document(
    host: str, port: int, fake: bool, fake_port: int = DEMO_FAKE_PORT
) -> tuple[dict, str, str]:
    """Return a demo settings document with a browser and a server key, and both key values."""
    base = f"http://{host}:{port}"
    document = initial_document("123-ABC-456")
    document["public_url"] = base
    document["limits"]["batch_wait_s"] = 0.5
    origins = [base, f"http://localhost:{port}"]
    _, browser = create_key(document, "browser", origins, "demo site")
    _, server = create_key(document, "server", [], "demo backend")
    map_event(document, "Signed Up", 100001, "plan", [])
    if fake:
        document["rest_base_url"] = f"http://127.0.0.1:{fake_port}"
        document["client_id"], document["client_secret"] = DEMO_FAKE_CLIENT
    return document, browser, server


def _start_fake(port: int) -> object:
    """Start the fake Marketo (a development tool shipped in app.devtools) on `port`."""
    from app.devtools.fake_marketo import FakeMarketo  # only the demo loads the dev tools

    client_id, client_secret = DEMO_FAKE_CLIENT
    return FakeMarketo(client_id=client_id, client_secret=client_secret, port=port).start()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--marketo-port",
    default=DEMO_FAKE_PORT,
    show_default=True,
    type=int,
    help="Port of the fake Marketo (first run; later runs reuse the configured one).",
)
def demo_command(host: str, port: int, marketo_port: int) -> None:
    """Configure a demo on first run, start a fake Marketo without credentials, and serve."""
    path = settings_path()
    environ = current_app.config["ENVIRON"]
    has_credentials = bool(environ.get("MARKETO_CLIENT_ID"))
    if not path.exists():
        document, browser, server = _demo_document(
            host, port, fake=not has_credentials, fake_port=marketo_port
        )
        write_raw(path, document)
        click.echo(f"wrote demo settings to {path}")
        click.echo(f"browser key: {browser}")
        click.echo(f"server key (shown once): {server}")
    else:
        server = "SERVER_KEY"  # printed on the first run only; `flask keys create` makes another
    raw = read_raw(path)
    if raw.get("client_id") == DEMO_FAKE_CLIENT[0] and not has_credentials:
        fake_port = urlsplit(str(raw.get("rest_base_url") or "")).port or marketo_port
        _start_fake(fake_port)
        click.echo(f"fake Marketo on http://127.0.0.1:{fake_port} (GET / lists what it holds)")
        click.echo(
            "  (it starts empty each run: delete the instance folder to restart the demo"
            " from scratch)"
        )
    # The email in context.traits lets the gateway find or create the lead (no userId field is
    # mapped in the demo), so the event becomes a custom activity.
    click.echo(
        f"try: curl -u {server}: -H 'Content-Type: application/json' "
        f'-d \'{{"userId":"u1","event":"Signed Up","properties":{{"plan":"pro"}},'
        f'"context":{{"traits":{{"email":"ann@example.com"}}}}}}\' http://{host}:{port}/v1/track'
    )
    click.echo("then: flask status")
    click.echo(f"gateway on http://{host}:{port} (Ctrl-C stops it)")
    run_simple(host, port, current_app._get_current_object(), threaded=True)
