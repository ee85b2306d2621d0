"""One-time console sign-in links (what `flask demo` prints): once, in time, minted here only."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from app.console.links import LINK_MAX_AGE_S
from app.console.links import LINK_PATH
from app.console.links import SALT
from app.console.links import sign_in_url
from app.settings import hash_secret
from tests.conftest import base_document

ADMIN_ID = "key_admin"
SECRET_KEY = base_document()["secret_key"]


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    """The app's wall clock, frozen."""
    clock = Clock()
    app.config["WALL_CLOCK"] = clock
    return clock


@pytest.fixture(autouse=True)
def _admin_settings(write_settings):
    """The base keys plus one admin key."""
    admin = {"id": ADMIN_ID, "kind": "admin", "secret_hash": hash_secret("ak_" + "x" * 40)}
    write_settings(keys=[*base_document()["keys"], admin])


def link(app, key_id: str = ADMIN_ID) -> str:
    """Mint a link the way `flask demo` does and return its path and query."""
    return sign_in_url(app, "http://127.0.0.1:5000", key_id).removeprefix("http://127.0.0.1:5000")


def signed_in(client) -> bool:
    """Tell whether the overview opens (rather than redirecting to the sign-in form)."""
    return client.get("/console/").status_code == 200


def test_a_link_signs_in_once_then_leads_to_the_sign_in_form(app, client):
    """The first visit opens a session and lands on the overview; the same link again does not."""
    url = link(app)
    assert url.startswith(LINK_PATH + "?token=")
    first = client.get(url)
    assert first.status_code == 302 and first.headers["Location"] == "/console/"
    assert signed_in(client)
    overview = client.get("/console/")
    assert 'name="csrf_token"' in overview.text  # the session of a normal sign-in (CSRF token)

    other = app.test_client()  # someone else replaying the used link
    again = other.get(url)
    assert again.status_code == 302 and again.headers["Location"] == "/console/sign-in"
    assert "used, expired or not valid" in other.get("/console/sign-in").text
    assert not signed_in(other)


def test_an_expired_link_is_refused(app, client, clock):
    """Past LINK_MAX_AGE_S the link leads to the sign-in form and opens no session."""
    url = link(app)
    clock.now += LINK_MAX_AGE_S + 1
    assert client.get(url).headers["Location"] == "/console/sign-in"
    assert not signed_in(client)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        URLSafeTimedSerializer("wrong-secret", salt=SALT).dumps({"k": ADMIN_ID, "n": "x"}),
        # Signed with the real secret but never minted by this process: no pending nonce.
        URLSafeTimedSerializer(SECRET_KEY, salt=SALT).dumps({"k": ADMIN_ID, "n": "guessed"}),
    ],
    ids=["empty", "garbage", "wrong-secret", "not-minted"],
)
def test_a_forged_link_is_refused(app, client, token):
    """Anything but a token this process minted leads to the sign-in form without a session."""
    link(app)  # a real link is pending meanwhile; the forgery must not ride on it
    response = client.get(LINK_PATH, query_string={"token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/console/sign-in"
    assert not signed_in(client)


def test_a_minted_nonce_under_another_key_id_is_refused(app, client):
    """The nonce of a real link, re-signed under another key id, opens nothing (forging needs
    the secret, which the test has), and the attempt spends the nonce."""
    url = link(app)
    claims = URLSafeTimedSerializer(SECRET_KEY, salt=SALT).loads(url.split("token=")[1])
    forged = URLSafeTimedSerializer(SECRET_KEY, salt=SALT).dumps({**claims, "k": "key_server"})
    assert client.get(LINK_PATH, query_string={"token": forged}).status_code == 302
    assert not signed_in(client)
    assert client.get(url).headers["Location"] == "/console/sign-in"  # the nonce was spent


@pytest.mark.parametrize("key_id", ["key_browser", "key_server", "key_missing"])
def test_links_are_only_minted_for_admin_keys(app, key_id):
    """Browser and server keys (and unknown ids) never get a sign-in link."""
    with pytest.raises(ValueError, match="not an admin key"):
        link(app, key_id)


def test_a_link_stops_working_when_its_admin_key_is_revoked(app, client, write_settings):
    """The session is only as good as the key: revoke it and the pending link opens nothing."""
    url = link(app)
    write_settings()  # the base keys only: the admin key is gone (the app re-reads the file)
    assert client.get(url).headers["Location"] == "/console/sign-in"
    assert not signed_in(client)
