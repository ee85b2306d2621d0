"""The operator console through the Flask test client: sign-in, sessions, CSRF, every page."""

from __future__ import annotations

import re
import time

import pytest

from app.settings import hash_secret
from tests.conftest import BROWSER_KEY
from tests.conftest import SERVER_KEY
from tests.conftest import base_document
from tests.fixtures_intake import basic_auth

ADMIN_KEY = "ak_test_admin_key_0123456789abcdef"
SECRETS = {
    "MARKETO_CLIENT_ID": "client-id-visible-prefix-0000",
    "MARKETO_CLIENT_SECRET": "client-secret-never-shown-1111",
    "MARKETO_PRIVATE_KEY": "private-key-never-shown-2222",
    "GATEWAY_SECRET_KEY": "signing-secret-never-shown-3333",
}
PAGES = ["/console/", "/console/events", "/console/dead-letters", "/console/install"]
EVENT_NAMES = ("Signed Up", "First", "Second")
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'

#: Track events mapped to a custom activity, so intake stores them as pending.
MAPPED = {name: {"activity_type_id": 100001} for name in (*EVENT_NAMES, HOSTILE)}


def admin_keys() -> list[dict]:
    """The base document's keys plus one admin key."""
    return [
        *base_document()["keys"],
        {"id": "key_admin", "kind": "admin", "secret_hash": hash_secret(ADMIN_KEY)},
    ]


@pytest.fixture
def environ() -> dict[str, str]:
    """Every secret set, so pages can be searched for them."""
    return dict(SECRETS)


@pytest.fixture(autouse=True)
def _admin_settings(write_settings):
    """Settings with an admin key and an https public_url, written before the app starts."""
    write_settings(keys=admin_keys(), public_url="https://gw.example.com", events=MAPPED)


def csrf_of(html: str) -> str:
    """Return the CSRF token a page's form carries."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


def sign_in(client, key: str = ADMIN_KEY):
    """Post the sign-in form with its token; return the response."""
    token = csrf_of(client.get("/console/sign-in").text)
    return client.post("/console/sign-in", data={"csrf_token": token, "key": key})


@pytest.fixture
def admin(client):
    """A test client signed in to the console."""
    assert sign_in(client).status_code == 302
    return client


def send_track(client, **fields) -> None:
    """Send one server-side track call through intake."""
    body = {"userId": "u-1", "event": "Signed Up", "properties": {}, **fields}
    response = client.post("/v1/track", json=body, headers=basic_auth())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path", [*PAGES, "/console/events/1", "/console/events?rows=1", "/console/?part=1"]
)
def test_every_page_without_a_session_redirects_to_sign_in(client, path):
    """No session: every page answers a redirect to the sign-in form, naming where to return."""
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/sign-in?next=/console/")


@pytest.mark.parametrize("action", ["replay", "purge"])
def test_actions_without_a_session_redirect_and_change_nothing(client, store, action):
    """A dead-letter action without a session redirects and the dead letter stays."""
    send_track(client)
    [claimed] = store.claim(1, 60, time.time())
    store.dead([claimed.id], "marketo_1006", time.time())
    response = client.post(
        f"/console/dead-letters/{action}", data={"id": str(claimed.id), "confirm": "yes"}
    )
    assert response.status_code == 302
    assert "/console/sign-in" in response.headers["Location"]
    assert store.get(claimed.id).state.value == "dead"


@pytest.mark.parametrize("key", [BROWSER_KEY, SERVER_KEY, "", "ak_wrong"])
def test_browser_and_server_keys_cannot_sign_in(client, key):
    """Only an admin key opens a session; the others get 403 and pages still redirect."""
    response = sign_in(client, key)
    assert response.status_code == 403
    assert "not an admin key" in response.text
    assert client.get("/console/").status_code == 302


def test_admin_key_signs_in_with_a_strict_httponly_cookie(client):
    """The session cookie is HttpOnly, SameSite=Strict, scoped to /console, Secure on https."""
    response = sign_in(client)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    for part in ("HttpOnly", "SameSite=Strict", "Path=/console", "Secure"):
        assert part in cookie
    assert client.get("/console/").status_code == 200


def test_revoking_the_admin_key_ends_its_sessions(admin, write_settings):
    """A session names its key; once the key is gone the next page redirects to sign-in."""
    assert admin.get("/console/").status_code == 200
    write_settings(keys=base_document()["keys"], public_url="https://gw.example.com", events=MAPPED)
    assert admin.get("/console/").status_code == 302


def test_sign_in_attempts_are_rate_limited(client):
    """After 10 wrong keys from one address, even the right key waits (429)."""
    token = csrf_of(client.get("/console/sign-in").text)
    for _ in range(10):
        assert (
            client.post("/console/sign-in", data={"csrf_token": token, "key": "x"}).status_code
            == 403
        )
    response = client.post("/console/sign-in", data={"csrf_token": token, "key": ADMIN_KEY})
    assert response.status_code == 429
    assert client.get("/console/").status_code == 302


def test_sign_in_without_csrf_token_is_refused(client):
    """The sign-in form itself needs its token (no login CSRF)."""
    client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={"key": ADMIN_KEY})
    assert response.status_code == 400
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_post_without_the_csrf_token_is_refused(admin, store, token):
    """A signed-in POST without (or with a wrong) token is 400 and replays nothing."""
    send_track(admin)
    [claimed] = store.claim(1, 60, time.time())
    store.dead([claimed.id], "marketo_1006", time.time())
    data = {"id": str(claimed.id), "confirm": "yes"}
    if token:
        data["csrf_token"] = token
    response = admin.post("/console/dead-letters/replay", data=data)
    assert response.status_code == 400
    assert store.get(claimed.id).state.value == "dead"
    assert admin.post("/console/sign-out", data={}).status_code == 400


def test_hostile_event_is_shown_as_text(admin, store):
    """An event name, property and email holding markup render escaped on every page."""
    send_track(
        admin,
        userId=HOSTILE,
        event=HOSTILE,
        properties={"note": HOSTILE},
        context={"traits": {"email": HOSTILE}},
    )
    [stored] = store.recent({}, 1)
    pages = [
        admin.get("/console/events").text,
        admin.get(f"/console/events?userId={HOSTILE}").text,
        admin.get(f"/console/events/{stored.id}").text,
    ]
    store.dead([c.id for c in store.claim(1, 60, time.time())], "marketo_1006", time.time())
    pages.append(admin.get("/console/dead-letters").text)
    for html in pages:
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(2)" in html
    assert "Content-Security-Policy" in admin.get("/console/events").headers


def test_no_secret_in_any_console_page(admin, store):
    """With every secret set (and one inside an event), no page shows any of them."""
    send_track(
        admin, properties={"leak": SECRETS["MARKETO_CLIENT_SECRET"], "password": "pw-123456"}
    )
    [claimed] = store.claim(1, 60, time.time())
    store.dead([claimed.id], "marketo_1006", time.time(), detail=SECRETS["GATEWAY_SECRET_KEY"])
    html = "".join(
        admin.get(path).text
        for path in [*PAGES, f"/console/events/{claimed.id}", "/console/events?rows=1"]
    )
    for name, value in SECRETS.items():
        if name != "MARKETO_CLIENT_ID":
            assert value not in html, name
    assert SERVER_KEY not in html and ADMIN_KEY not in html and "pw-123456" not in html
    assert hash_secret(SERVER_KEY) not in html


def test_overview_shows_counts_budget_and_chart(admin, store):
    """The overview counts what intake stored and draws the last hour."""
    for i in range(3):
        send_track(admin, messageId=f"m-{i}")
    html = admin.get("/console/").text
    assert re.search(r'id="count-pending">3<', html)
    assert "Calls today" in html and "of 45000" in html
    assert "Quota resets" in html and "running" in html
    assert 'class="series-received"' in html and "received 3" in html


def test_live_events_newest_first_with_filters(admin, store):
    """Live events list the newest first and filter by userId, anonymousId, messageId, state."""
    send_track(admin, userId="alice", event="First", messageId="mid-a")
    send_track(admin, userId="bob", event="Second", messageId="mid-b")
    html = admin.get("/console/events").text
    assert html.index("Second") < html.index("First")
    only_alice = admin.get("/console/events?userId=alice").text
    assert "First" in only_alice and "Second" not in only_alice
    by_message = admin.get("/console/events?messageId=mid-b&rows=1").text
    assert "Second" in by_message and "First" not in by_message and "<html" not in by_message
    assert "No events match" in admin.get("/console/events?state=dead").text
    assert "First" in admin.get("/console/events?state=pending").text
    assert admin.get("/console/events?state=bogus").status_code == 400


def test_event_page_masks_payload_secrets(admin, store):
    """An event's page shows its state, attempts and payload with secret-named values masked."""
    send_track(admin, properties={"apiKey": "hidden-value-42", "plan": "pro"})
    [stored] = store.recent({}, 1)
    html = admin.get(f"/console/events/{stored.id}").text
    assert "hidden-value-42" not in html and "pro" in html and "pending" in html
    assert admin.get("/console/events/999999").status_code == 404


def test_dead_letters_grouped_replay_and_purge_with_confirmation(admin, store):
    """Dead letters show per reason with a hint; replay and purge each ask first."""
    for i in range(3):
        send_track(admin, messageId=f"d-{i}")
    claimed = store.claim(3, 60, time.time())
    store.dead([c.id for c in claimed[:2]], "marketo_1006", time.time())
    store.dead([claimed[2].id], "retries_exhausted", time.time())
    page = admin.get("/console/dead-letters").text
    assert "marketo_1006" in page and "fix the mapping" in page and "retries_exhausted" in page
    token = csrf_of(page)
    first = claimed[0].id
    ask = admin.post("/console/dead-letters/replay", data={"csrf_token": token, "id": str(first)})
    assert ask.status_code == 200 and "Yes, replay" in ask.text
    assert store.get(first).state.value == "dead"
    done = admin.post(
        "/console/dead-letters/replay",
        data={"csrf_token": csrf_of(ask.text), "id": str(first), "confirm": "yes"},
    )
    assert done.status_code == 302
    assert store.get(first).state.value == "pending"
    assert "Replayed 1 dead letter" in admin.get("/console/dead-letters").text
    purge = admin.post(
        "/console/dead-letters/purge",
        data={"csrf_token": token, "reason": "marketo_1006", "confirm": "yes"},
    )
    assert purge.status_code == 302
    assert store.get(claimed[1].id) is None
    assert store.get(claimed[2].id).state.value == "dead"
    bad = admin.post("/console/dead-letters/purge", data={"csrf_token": token, "id": "x"})
    assert bad.status_code == 400


def test_install_shows_each_browser_keys_snippet(admin):
    """Install lists the browser key's ready snippet (escaped) with a copy button, the masked
    settings and what `config validate` says."""
    html = admin.get("/console/install").text
    assert f"https://gw.example.com/v1/loader.js?k={BROWSER_KEY}" in html
    assert "&lt;script" in html and 'class="copy"' in html
    assert 'id="settings-valid"' in html and "123-ABC-456" in html


def test_install_reports_settings_problems(admin, settings_path):
    """A settings problem `config validate` would print shows on the install page."""
    import json

    document = json.loads(settings_path.read_text())
    document["limits"] = {"calls_per_20s": -1}
    settings_path.write_text(json.dumps(document))
    html = admin.get("/console/install").text
    assert "limits.calls_per_20s" in html and 'id="settings-valid"' not in html


def test_replay_all_dead_letters_after_confirmation(admin, store):
    """Replay every dead letter: asked first, then all move back to pending."""
    for i in range(2):
        send_track(admin, messageId=f"all-{i}")
    claimed = store.claim(2, 60, time.time())
    store.dead([claimed[0].id], "marketo_1006", time.time())
    store.dead([claimed[1].id], "retries_exhausted", time.time())
    token = csrf_of(admin.get("/console/dead-letters").text)
    ask = admin.post("/console/dead-letters/replay", data={"csrf_token": token, "all": "yes"})
    assert "every dead letter?" in ask.text
    assert store.recent({"state": "dead"}) != []
    done = admin.post(
        "/console/dead-letters/replay", data={"csrf_token": token, "all": "yes", "confirm": "yes"}
    )
    assert done.status_code == 302
    assert store.recent({"state": "dead"}) == []


def test_sign_out_ends_the_session(admin):
    """Sign-out with its token clears the session."""
    token = csrf_of(admin.get("/console/").text)
    assert admin.post("/console/sign-out", data={"csrf_token": token}).status_code == 302
    assert admin.get("/console/").status_code == 302


def test_admin_key_is_created_hashed(runner, settings_path):
    """`flask keys create --kind admin` prints the secret once and stores only its hash."""
    import json

    result = runner.invoke(args=["keys", "create", "--kind", "admin", "--label", "ops"])
    assert result.exit_code == 0, result.output
    secret = re.search(r"(ak_\S+)", result.output).group(1)
    stored = [k for k in json.loads(settings_path.read_text())["keys"] if k["kind"] == "admin"]
    assert any(k.get("secret_hash") == hash_secret(secret) for k in stored)
    assert secret not in settings_path.read_text()
    refused = runner.invoke(args=["keys", "create", "--kind", "admin", "--origin", "https://a.b"])
    assert refused.exit_code != 0


class TestWithoutCredentials:
    """A gateway whose Marketo credentials are not set yet."""

    @pytest.fixture
    def environ(self) -> dict[str, str]:
        return {}

    def test_overview_says_delivery_waits_without_credentials(self, admin):
        """Nothing can be delivered: the overview says what is missing, not 'running'."""
        page = admin.get("/console/").text
        pause = re.search(r'<td id="pause">(.*?)</td>', page).group(1)
        assert "waiting for Marketo credentials" in pause and "running" not in pause


def test_overview_says_running_with_credentials(admin):
    """With credentials (this module's environment) and no pause, delivery is running."""
    assert '<td id="pause"><span class="good">running</span>' in admin.get("/console/").text
