"""Consent and privacy on the server: `no_consent` and `suppressed` drops, and forgetting a
person everywhere the gateway keeps them (SQLite and PostgreSQL), Marketo's lead included."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from app.delivery import get_shared
from app.outbox import get_store
from app.privacy.identity import hashes_of
from app.privacy.suppression import CHECK_INTERVAL_S
from app.privacy.suppression import SuppressionList
from app.ratelimit import Budget
from app.settings import settings_holder
from tests.conftest import BROWSER_KEY
from tests.conftest import SERVER_KEY
from tests.integration.test_lists_audiences import AUTH
from tests.integration.test_lists_audiences import Gateway

LEAD_FIELDS = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}
CONSENT = {"categories": {"marketing": ["C0004", "advertising"]}, "required": ["marketing"]}
ANN = ("ann@example.com", "u-ann", "anon-ann")


def _consented(value: bool | None, **prefs: bool) -> dict:
    message = {"userId": "u1", "event": "Signed Up", "properties": {"plan": "Pro"}}
    if value is not None or prefs:
        message["context"] = {"consent": {"categoryPreferences": prefs}}
    return message


def test_events_without_the_required_consent_are_dropped_as_no_consent(bo_app_factory):
    """Consent object present: every required category must be true under one of its names."""
    app = bo_app_factory(events=EVENTS, consent=CONSENT)
    gateway = Gateway(app)
    gateway.send("track", **_consented(True, C0004=True))
    gateway.send("track", **_consented(True, advertising=True, C0004=False))
    gateway.send("track", **_consented(None))  # no consent object: as before
    gateway.send("track", **_consented(False, C0004=False))
    gateway.send("track", **_consented(False, analytics=True))  # marketing not named: no
    gateway.send("track", **_consented(False, marketing="yes"))  # only true counts
    counts = gateway.counts()
    assert counts["dropped"] == {"no_consent": 3}
    assert counts["pending"] == 3
    result = app.test_cli_runner().invoke(args=["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["outbox"]["dropped"]["no_consent"] == 3


def test_consent_settings_are_validated(write_settings, settings_path):
    """A bad consent section is reported key by key and the settings are refused."""
    from app.settings import validate

    document = write_settings()
    document["consent"] = {
        "mode": "always",
        "categories": {"ads": ["x"], "marketing": "C0004"},
        "required": [],
        "honor_gpc": "yes",
        "extra": 1,
    }
    problems = validate(document)
    for path in (
        "consent.mode",
        "consent.categories.ads",
        "consent.categories.marketing",
        "consent.required",
        "consent.honor_gpc",
        "consent.extra",
    ):
        assert any(p.startswith(path + ":") for p in problems), (path, problems)
    document["consent"] = {"mode": "opt_in", **CONSENT, "honor_gpc": False}
    assert validate(document) == []


@pytest.mark.parametrize(
    ("purposes", "fragment"),
    [
        ([1, 3], "must be an object of category -> TCF purpose ids"),
        ({"ads": [1]}, "unknown category"),
        ({"marketing": []}, "non-empty list of distinct TCF purpose ids 1 to 11"),
        ({"marketing": [0, 3]}, "TCF purpose ids 1 to 11"),
        ({"marketing": [1, 12]}, "TCF purpose ids 1 to 11"),
        ({"marketing": [1, 1]}, "distinct"),
        ({"marketing": ["1"]}, "TCF purpose ids"),
        ({"marketing": [True]}, "TCF purpose ids"),
        ({"analytics": [1, 8]}, "no purposes for the required category 'marketing'"),
    ],
)
def test_tcf_purposes_are_validated(write_settings, purposes, fragment):
    """A TCF map that is malformed, or leaves a required category out, is refused clearly."""
    from app.settings import validate

    document = write_settings()
    document["consent"] = {"mode": "opt_in", "tcf_purposes": purposes}
    problems = validate(document)
    assert any(p.startswith("consent.tcf_purposes") and fragment in p for p in problems), problems


def test_tcf_purposes_default_and_may_be_turned_off(write_settings):
    """Absent: the documented defaults; `{}`: TCF is not read; a full map is accepted."""
    from app.settings import parse
    from app.settings import validate

    document = write_settings(consent={"mode": "opt_in"})
    assert dict(parse(document).consent.tcf_purposes) == {
        "analytics": (1, 8, 9),
        "marketing": (1, 3, 4),
    }
    for purposes in ({}, {"marketing": [1, 2, 3, 4, 7]}):
        document["consent"] = {"mode": "opt_in", "tcf_purposes": purposes}
        assert validate(document) == [], purposes
        assert dict(parse(document).consent.tcf_purposes) == {
            k: tuple(v) for k, v in purposes.items()
        }


def _tables_holding(app, store_url: str, needles: tuple[str, ...]) -> dict[str, list]:
    """Return, per table of the outbox database, the rows that mention any needle."""
    needles = tuple(n.lower() for n in needles)
    found: dict[str, list] = {}
    if store_url.startswith("sqlite:"):
        conn = sqlite3.connect(store_url[len("sqlite:///") :])
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows_of = {n: conn.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}
        conn.close()
    else:
        import psycopg

        with psycopg.connect(store_url) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()"
                )
            ]
            rows_of = {n: conn.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}
    assert "suppressions" in rows_of and "events" in rows_of
    for name, rows in rows_of.items():
        hits = [r for r in rows if any(n in repr(r).lower() for n in needles)]
        if hits:
            found[name] = hits
    return found


def _person_everywhere(fake_marketo, gateway) -> int:
    """Put Ann in delivered, dead, held and pending events and in the lead cache; Bob too."""
    email, user_id, anonymous_id = ANN
    lead = fake_marketo.add_lead(email=email, userId=user_id)
    fake_marketo.add_lead(email="bob@example.com", userId="u-bob")
    gateway.send("identify", userId=user_id, traits={"email": email, "name": "Ann"})
    gateway.send("identify", userId="u-bob", traits={"email": "bob@example.com"})
    gateway.deliver()
    fake_marketo.script("/activities/external.json", {"record_errors": {0: "1001"}})
    gateway.send("track", userId=user_id, event="Signed Up", properties={"plan": "Free"})
    gateway.deliver()
    gateway.send("track", anonymousId=anonymous_id, event="Signed Up", properties={"plan": "A"})
    gateway.send("track", userId=user_id, event="Signed Up", properties={"plan": "Pro"})
    gateway.send("track", userId="u-bob", event="Signed Up", properties={"plan": "Pro"})
    counts = gateway.counts()
    assert counts["dead"] == {"marketo_1001": 1}
    assert counts["held"] == 1 and counts["pending"] == 2 and counts["delivered"] == 2
    return lead


def test_forget_removes_every_trace_and_suppresses_later_events(
    fake_marketo, bo_app_factory, store_url, caplog
):
    """Forget by email and anonymousId: events in every state and cache rows go, Bob stays."""
    app = bo_app_factory(
        events=EVENTS, lead_fields=LEAD_FIELDS, track_anonymous=False, store_url=store_url
    )
    gateway = Gateway(app)
    _person_everywhere(fake_marketo, gateway)
    assert set(_tables_holding(app, store_url, ANN)) >= {"events", "mkto_leads"}
    caplog.set_level(logging.INFO)
    answer = gateway.client.post(
        "/v1/privacy/forget",
        json={"email": "  Ann@Example.COM ", "anonymousId": "anon-ann"},
        headers=AUTH,
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["events_removed"] == 4  # delivered identify, dead, held, pending
    assert len(answer.json["cached_leads"]) == 1
    assert _tables_holding(app, store_url, ANN) == {}
    assert _tables_holding(app, store_url, ("bob@example.com", "u-bob"))["events"]
    logged = "\n".join(r.getMessage() for r in caplog.records).lower()
    assert "privacy forget" in logged
    assert not any(n in logged for n in ANN)
    if store_url.startswith("sqlite:"):
        path = Path(store_url[len("sqlite:///") :])
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*")).lower()
        assert not any(n.encode() in raw for n in ANN)
    # Later events about Ann, by any of her identifiers, are dropped as suppressed and kept
    # without her identifiers; Bob's still go.
    gateway.send("track", userId="u-ann", event="Signed Up", properties={"plan": "X"})
    gateway.send("identify", anonymousId="anon-ann", traits={"email": "ann@example.com"})
    gateway.send("identify", userId="someone-new", traits={"email": "ANN@example.com"})
    assert gateway.counts()["dropped"] == {"suppressed": 3}
    assert _tables_holding(app, store_url, ANN) == {}
    gateway.deliver()
    assert gateway.counts()["dead"] == {}


def test_unsuppress_lets_a_person_back_in(fake_marketo, bo_app_factory):
    """`flask privacy unsuppress` lifts it: the next event is routed as usual."""
    app = bo_app_factory(events=EVENTS)
    gateway = Gateway(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["privacy", "forget", "--user-id", "u-9", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["suppressed"] == 1
    gateway.send("track", userId="u-9", event="Signed Up")
    assert gateway.counts()["dropped"] == {"suppressed": 1}
    result = runner.invoke(args=["privacy", "unsuppress", "--user-id", "u-9"])
    assert result.exit_code == 0 and "1 identifier" in result.output
    gateway.send("track", userId="u-9", event="Signed Up")
    assert gateway.counts()["pending"] == 1
    assert runner.invoke(args=["privacy", "forget"]).exit_code != 0


def test_forget_with_marketo_deletes_the_lead_through_the_limiter(fake_marketo, bo_app_factory):
    """--marketo looks the lead up and deletes it; both calls are counted by the shared budget."""
    app = bo_app_factory(lead_fields=LEAD_FIELDS)
    cached = fake_marketo.add_lead(email="ann@example.com", userId="u-ann")
    uncached = fake_marketo.add_lead(email="ann@example.com")
    other = fake_marketo.add_lead(email="bob@example.com")
    gateway = Gateway(app)
    gateway.send("identify", userId="u-ann", traits={"email": "ann@example.com"})
    gateway.deliver()
    budget = Budget.from_limits(settings_holder(app).get().limits)
    before = get_shared(app).limiter(budget, time.time()).calls_today
    calls_before = len(fake_marketo.calls)
    result = app.test_cli_runner().invoke(
        args=["privacy", "forget", "--email", "ann@example.com", "--marketo", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted(report["marketo_deleted"]) == sorted([cached, uncached])
    assert sorted(fake_marketo.deletions) == sorted([cached, uncached])
    assert other in fake_marketo.leads and cached not in fake_marketo.leads
    made = fake_marketo.calls[calls_before:]
    assert [c.path for c in made][-1].endswith("/leads/delete.json")
    after = get_shared(app).limiter(budget, time.time()).calls_today
    assert after - before == len(made) >= 2


def test_forget_api_refuses_bad_requests(bo_app_factory):
    """No server key: 401; no identifier, wrong types or unknown fields: 400, nothing stored."""
    app = bo_app_factory()
    client = app.test_client()
    assert client.post("/v1/privacy/forget", json={"email": "a@b.c"}).status_code == 401
    bad = ({}, {"email": 3}, {"email": ""}, {"mail": "a@b.c"}, [], {"email": "a@b.c", "marketo": 1})
    for body in bad:
        answer = client.post("/v1/privacy/forget", json=body, headers=AUTH)
        assert answer.status_code == 400, (body, answer.json)
    assert get_shared(app).suppressed({"x"}) == set()
    store = get_store(app)
    assert store.counts(0)["pending"] == 0


def test_unsuppress_api_lifts_a_suppression_as_the_cli_does(bo_app_factory):
    """POST /v1/privacy/unsuppress with a server key: the next event is routed as usual."""
    app = bo_app_factory(events=EVENTS)
    gateway = Gateway(app)
    forgotten = gateway.client.post(
        "/v1/privacy/forget", json={"email": "ann@example.com", "userId": "u-9"}, headers=AUTH
    )
    assert forgotten.status_code == 200 and forgotten.json["suppressed"] == 2
    gateway.send("track", userId="u-9", event="Signed Up")
    assert gateway.counts()["dropped"] == {"suppressed": 1}
    answer = gateway.client.post("/v1/privacy/unsuppress", json={"userId": "u-9"}, headers=AUTH)
    assert answer.status_code == 200
    assert answer.json == {"success": True, "unsuppressed": 1}
    gateway.send("track", userId="u-9", event="Signed Up")
    assert gateway.counts()["pending"] == 1
    # The email named in the same forget is still suppressed; lifting it twice counts it once.
    gateway.send("identify", userId="u-10", traits={"email": "Ann@Example.com"})
    assert gateway.counts()["dropped"] == {"suppressed": 2}
    for expected in (1, 0):
        answer = gateway.client.post(
            "/v1/privacy/unsuppress", json={"email": " ann@example.com"}, headers=AUTH
        )
        assert answer.json["unsuppressed"] == expected


def _basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("sk_wrong"),
        _basic(BROWSER_KEY),  # a browser key is public: it may not lift a suppression
        {"Authorization": "Bearer " + SERVER_KEY},
    ],
)
def test_unsuppress_api_needs_a_server_key(bo_app_factory, headers):
    """No key, a wrong one or a browser key: 401 and the person stays suppressed."""
    app = bo_app_factory()
    shared = get_shared(app)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["privacy", "forget", "--user-id", "u-9"]).exit_code == 0
    listed = shared.suppressed(hashes_of({("userId", "u-9")}))
    answer = app.test_client().post(
        "/v1/privacy/unsuppress", json={"userId": "u-9"}, headers=headers
    )
    assert answer.status_code == 401, answer.json
    assert answer.json["success"] is False
    assert shared.suppressed(hashes_of({("userId", "u-9")})) == listed != set()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_body"),
        ([], "invalid_body"),
        ({"userId": 9}, "invalid_identifier"),
        ({"userId": "  "}, "invalid_identifier"),
        ({"userId": "u" * 513}, "invalid_identifier"),
        ({"user_id": "u-9"}, "invalid_body"),
        ({"userId": "u-9", "marketo": True}, "invalid_body"),  # forget's option only
        ("not json", None),
    ],
)
def test_unsuppress_api_refuses_bad_input(bo_app_factory, body, code):
    """Bad bodies: 400 with a code, and the suppression list is unchanged."""
    app = bo_app_factory()
    shared = get_shared(app)
    assert (
        app.test_cli_runner().invoke(args=["privacy", "forget", "--user-id", "u-9"]).exit_code == 0
    )
    client = app.test_client()
    if isinstance(body, str):
        headers = {**AUTH, "Content-Type": "application/json"}
        answer = client.post("/v1/privacy/unsuppress", data=body, headers=headers)
    else:
        answer = client.post("/v1/privacy/unsuppress", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.json
    if code is not None:
        assert answer.json["error"]["code"] == code
    assert shared.suppressed(hashes_of({("userId", "u-9")})) != set()


class Clock:
    """A monotonic clock the test moves by hand."""

    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_forget_on_another_node_applies_within_the_interval_and_at_delivery(
    fake_marketo, bo_app_factory, store_url
):
    """Node A answers intake from its copy of the list; node B forgets Ann. Within the second
    A still accepts her event, but its delivery drops it as suppressed and keeps no trace;
    after the second A's intake drops her events itself."""
    settings = {"events": EVENTS, "lead_fields": LEAD_FIELDS, "store_url": store_url}
    node_a, node_b = bo_app_factory(**settings), bo_app_factory(**settings)
    clock = Clock()
    node_a.extensions["suppression_list"] = SuppressionList(lambda: get_shared(node_a), clock=clock)
    a, b = Gateway(node_a), Gateway(node_b)
    fake_marketo.add_lead(email="bob@example.com", userId="u-bob")
    a.send("track", userId="u-bob", event="Signed Up", properties={"plan": "Pro"})
    forgotten = b.client.post("/v1/privacy/forget", json={"userId": "u-ann"}, headers=AUTH)
    assert forgotten.status_code == 200 and forgotten.json["suppressed"] == 1
    clock.now += CHECK_INTERVAL_S / 2
    a.send("track", userId="u-ann", event="Signed Up", properties={"plan": "Late"})
    assert a.counts()["pending"] == 2  # accepted: A's copy is up to a second old
    a.deliver()
    counts = a.counts()
    assert counts["dropped"] == {"suppressed": 1} and counts["delivered"] == 1
    assert _tables_holding(node_a, store_url, ("u-ann", "Late")) == {}
    sent = b"".join(c.body for c in fake_marketo.calls)
    assert b"Pro" in sent and b"Late" not in sent and b"u-ann" not in sent
    clock.now += CHECK_INTERVAL_S
    a.send("track", userId="u-ann", event="Signed Up", properties={"plan": "Later"})
    assert a.counts()["dropped"] == {"suppressed": 2}
    # Lifted on B: A's intake lets her in again after the interval.
    lifted = b.client.post("/v1/privacy/unsuppress", json={"userId": "u-ann"}, headers=AUTH)
    assert lifted.json["unsuppressed"] == 1
    clock.now += CHECK_INTERVAL_S
    a.send("track", userId="u-ann", event="Signed Up", properties={"plan": "Back"})
    assert a.counts()["pending"] == 1


@pytest.mark.parametrize("kind", ["email", "userId", "anonymousId"])
def test_suppression_hash_never_holds_the_identifier(kind):
    """The list holds a SHA-256 digest; emails match whatever their case."""
    from app.privacy.identity import identity_hash

    digest = identity_hash(kind, "Ann@Example.com")
    assert len(digest) == 64 and "ann" not in digest.lower()
    same = identity_hash(kind, " ann@example.com ") == digest
    assert same is (kind == "email")


def test_forget_clears_a_marketo_message_quoting_the_person(
    fake_marketo, bo_app_factory, store_url
):
    """The console keeps Marketo's error messages per call; one quoting Ann's email goes with
    her, the call itself (endpoint, code) stays for the operator."""
    app = bo_app_factory(events=EVENTS, lead_fields=LEAD_FIELDS, store_url=store_url)
    gateway = Gateway(app)
    fake_marketo.script(
        "/leads.json",
        {"code": "1003", "message": "Invalid value 'Ann@Example.com'", "method": "POST"},
    )
    gateway.send("identify", userId="u-ann", traits={"email": "ann@example.com"})
    gateway.deliver()
    assert "delivery_calls" in _tables_holding(app, store_url, ("ann@example.com",))
    answer = gateway.client.post("/v1/privacy/forget", json={"email": "ann@example.com"},
                                 headers=AUTH)  # fmt: skip
    assert answer.status_code == 200, answer.json
    assert _tables_holding(app, store_url, ("ann@example.com", "u-ann")) == {}
    calls = _tables_holding(app, store_url, ("1003",))["delivery_calls"]
    assert calls and all("forgotten person" in repr(c) for c in calls)
