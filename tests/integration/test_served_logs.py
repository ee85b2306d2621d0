"""The shipped gunicorn config: no key in the access log, one escaped line per logged value."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.conftest import BROWSER_KEY
from tests.conftest import SERVER_KEY
from tests.conftest import base_document
from tests.fixtures_intake import basic_auth
from tests.fixtures_marketo import marketo_document

# A value that would forge a log line, repaint a terminal and cut a C string.
FORGERY = "x\n[2026-01-01 00:00:00 +0000] [1] [CRITICAL] admin password reset OK\r\x1b[31m\x00!"


def test_access_log_of_an_authenticated_request_holds_no_key(serve):
    server = serve(base_document())
    answer = requests.post(
        f"{server.url}/v1/track?writeKey={SERVER_KEY}",
        json={"userId": "u1", "event": "E"},
        headers=basic_auth(),
        timeout=5,
    )
    assert answer.status_code == 200
    loader = requests.get(f"{server.url}/v1/loader.js?k={BROWSER_KEY}", timeout=5)
    assert loader.status_code == 200
    track_lines = server.wait_for_line('"POST /v1/track')
    server.wait_for_line('"GET /v1/loader.js')
    assert " 200 " in track_lines[0]
    text = server.log.read_text()
    assert SERVER_KEY not in text and BROWSER_KEY not in text


def test_a_path_with_control_characters_is_one_escaped_access_line(serve):
    server = serve(base_document())
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/%0A%0D%1B[31mFORGED%00x HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 404")
    (line,) = server.wait_for_line("FORGED")
    assert "\\n\\r\\x1b[31mFORGED\\x00x" in line
    assert all(ord(c) >= 0x20 for c in "".join(server.lines()))


def test_marketo_error_echoing_a_cookie_is_one_log_line(serve, fake_marketo):
    """Marketo's message is logged escaped: \\n, \\r, ANSI escapes and NUL stay on one line."""
    fake_marketo.script(
        "activities/external.json", {"code": "1003", "message": f"Invalid value '{FORGERY}'"}
    )
    server = serve({**base_document(), **marketo_document(fake_marketo)}, embedded_worker=True)
    answer = requests.post(
        f"{server.url}/v1/track",
        json={"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}},
        headers=basic_auth(),
        timeout=5,
    )
    assert answer.status_code == 200
    (line,) = server.wait_for_line("Invalid value")
    assert "x\\n[2026-01-01 00:00:00 +0000] [1] [CRITICAL] admin password reset OK" in line
    assert "\\r\\x1b[31m\\x00!" in line
    assert not [x for x in server.lines() if x.startswith("[2026-01-01")]


@pytest.mark.parametrize(
    "field", [{"event": FORGERY}, {"context": {"Marketo": {"marketoCookie": FORGERY}}}]
)
def test_cookie_or_event_name_with_control_characters_never_reaches_the_log(serve, field):
    """Refused at intake (400), so no line is written for it beyond the escaped access line."""
    server = serve(base_document())
    answer = requests.post(
        f"{server.url}/v1/track",
        json={"userId": "u1", "event": "E", **field},
        headers=basic_auth(),
        timeout=5,
    )
    assert answer.status_code == 400
    server.wait_for_line('"POST /v1/track')
    assert not [x for x in server.lines() if "CRITICAL" in x]
