"""Tests of the fake Marketo itself, over real HTTP on 127.0.0.1 with ``requests``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from app.devtools.fake_marketo import FakeClock
from app.devtools.fake_marketo import FakeMarketo

CHICAGO = ZoneInfo("America/Chicago")
# A fixed instant so quota-day arithmetic is deterministic: 2024-03-02 10:00 in Chicago.
START = datetime(2024, 3, 2, 10, 0, tzinfo=CHICAGO).timestamp()
TIMEOUT = 5


class Api:
    """Small client for the tests: fetches a token and calls REST paths with it."""

    def __init__(self, fake: FakeMarketo) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.token = ""

    def fetch_token(self, **overrides: str) -> requests.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.fake.client_id,
            "client_secret": self.fake.client_secret,
            **overrides,
        }
        response = self.session.post(
            self.fake.url + "/identity/oauth/token", data=data, timeout=TIMEOUT
        )
        if response.status_code == 200:
            self.token = response.json()["access_token"]
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if not self.token:
            self.fetch_token()
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {self.token}")
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.fake.url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call("POST", path, **kwargs).json()


def error_code(body: dict[str, Any]) -> str | None:
    """Return the first response-level error code of an envelope, or None on success."""
    return None if body["success"] else body["errors"][0]["code"]


def activity(lead_id: int, **overrides: Any) -> dict[str, Any]:
    """Build one valid signedUp activity for ``lead_id``."""
    item = {
        "leadId": lead_id,
        "activityDate": "2024-03-02T10:15:00Z",
        "activityTypeId": 100001,
        "primaryAttributeValue": "Pro",
        "attributes": [{"apiName": "price", "value": "49.00"}],
    }
    item.update(overrides)
    return item


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeMarketo]:
    with FakeMarketo(clock=clock) as server:
        yield server


@pytest.fixture
def api(fake: FakeMarketo) -> Api:
    return Api(fake)


# ---------------------------------------------------------------- identity


def test_token_is_reused_with_falling_expires_in(api: Api, clock: FakeClock) -> None:
    first = api.fetch_token().json()
    clock.advance(100)
    second = api.fetch_token().json()
    assert second["access_token"] == first["access_token"]
    assert (first["expires_in"], second["expires_in"]) == (3600, 3500)
    assert second["token_type"] == "bearer"


def test_token_by_get_query_is_accepted(api: Api, fake: FakeMarketo) -> None:
    params = {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    response = requests.get(fake.url + "/identity/oauth/token", params=params, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["expires_in"] == 3600


def test_bad_credentials_get_401_oauth_body_and_are_not_counted(
    api: Api, fake: FakeMarketo
) -> None:
    response = api.fetch_token(client_secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    api.fetch_token()
    assert fake.counted_calls_today() == 0


def test_expired_token_answers_602_once_then_601(api: Api, fake: FakeMarketo) -> None:
    assert api.get("/rest/v1/leads/describe.json")["success"]
    fake.expire_token()
    codes = [error_code(api.get("/rest/v1/leads/describe.json")) for _ in range(2)]
    assert codes == ["602", "601"]
    fresh = api.fetch_token().json()
    assert fresh["expires_in"] == 3600
    assert api.get("/rest/v1/leads/describe.json")["success"]
    assert fake.errors_returned["602"] == 1


def test_token_expires_by_clock(api: Api, fake: FakeMarketo, clock: FakeClock) -> None:
    api.fetch_token()
    clock.advance(3600)
    assert error_code(api.get("/rest/v1/leads/describe.json")) == "602"


def test_unknown_token_and_query_token_answer_601(api: Api, fake: FakeMarketo) -> None:
    api.fetch_token()
    bogus = api.get("/rest/v1/leads/describe.json", headers={"Authorization": "Bearer nope"})
    assert error_code(bogus) == "601"
    query = requests.get(
        fake.url + "/rest/v1/leads/describe.json",
        params={"access_token": api.token},
        timeout=TIMEOUT,
    ).json()
    assert error_code(query) == "601"
    fake.allow_query_token = True
    query = requests.get(
        fake.url + "/rest/v1/leads/describe.json",
        params={"access_token": api.token},
        timeout=TIMEOUT,
    ).json()
    assert query["success"] is True


# ---------------------------------------------------------------- limits


def test_606_after_window_full_and_clears_when_window_rolls(clock: FakeClock) -> None:
    with FakeMarketo(clock=clock, calls_per_20s=5) as fake:
        api = Api(fake)
        codes = [error_code(api.get("/rest/v1/leads/describe.json")) for _ in range(6)]
        assert codes == [None] * 5 + ["606"]
        clock.advance(19.9)
        assert error_code(api.get("/rest/v1/leads/describe.json")) == "606"
        clock.advance(0.2)
        assert error_code(api.get("/rest/v1/leads/describe.json")) is None
        assert fake.counted_calls_today() == 6


def test_607_when_daily_quota_spent_and_reset_at_chicago_midnight(clock: FakeClock) -> None:
    with FakeMarketo(clock=clock, daily_quota=3, token_ttl=86400) as fake:
        api = Api(fake)
        codes = [error_code(api.get("/rest/v1/leads/describe.json")) for _ in range(4)]
        assert codes == [None, None, None, "607"]
        assert fake.counted_calls_today() == 3
        midnight = datetime(2024, 3, 3, 0, 0, tzinfo=CHICAGO).timestamp()
        clock.advance(midnight - clock.now() - 1)
        assert error_code(api.get("/rest/v1/leads/describe.json")) == "607"
        clock.advance(1)
        assert error_code(api.get("/rest/v1/leads/describe.json")) is None
        assert fake.counted_calls_today() == 1


def test_615_when_more_than_concurrency_in_flight(clock: FakeClock) -> None:
    with FakeMarketo(clock=clock, concurrency=3) as fake:
        api = Api(fake)
        api.fetch_token()
        gate = threading.Event()
        fake.script("describe.json", *[{"wait_for": gate}] * 3)
        results: list[str | None] = []

        def worker() -> None:
            client = Api(fake)
            client.token = api.token
            results.append(error_code(client.get("/rest/v1/leads/describe.json")))

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        poll = threading.Event()
        for _ in range(500):  # poll (deadline 5 s) until the three gated calls are in flight
            if fake.in_flight >= 3:
                break
            poll.wait(0.01)
        extra = error_code(api.get("/rest/v1/leads/describe.json"))
        gate.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT)
        assert extra == "615"
        assert results == [None, None, None]
        assert fake.max_concurrency_seen == 4
        assert fake.counted_calls_today() == 3


def test_parallel_delayed_calls_within_limit_all_succeed(clock: FakeClock) -> None:
    with FakeMarketo(clock=clock, concurrency=4) as fake:
        api = Api(fake)
        api.fetch_token()
        fake.script("describe.json", *[{"delay": 0.2}] * 4)
        results: list[str | None] = []

        def worker() -> None:
            client = Api(fake)
            client.token = api.token
            results.append(error_code(client.get("/rest/v1/leads/describe.json")))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=TIMEOUT)
        assert results == [None] * 4
        assert 1 <= fake.max_concurrency_seen <= 4
        assert fake.errors_returned["615"] == 0


def test_body_over_1mb_gets_413_and_long_uri_414(api: Api, fake: FakeMarketo) -> None:
    big = {"input": [{"email": "a@x.io", "company": "x" * (1024 * 1024)}]}
    assert api.call("POST", "/rest/v1/leads.json", json=big).status_code == 413
    long_query = {"filterType": "email", "filterValues": ",".join(["a@x.io"] * 800)}
    response = api.call("GET", "/rest/v1/leads.json", params=long_query)
    assert response.status_code == 414
    assert fake.leads == {}


def test_method_tunnel_post_with_form_body_acts_as_get(api: Api, fake: FakeMarketo) -> None:
    emails = [f"user{i}@example.com" for i in range(300)]
    for email in emails[:3]:
        fake.add_lead(email=email)
    form = {"filterType": "email", "filterValues": ",".join(emails), "fields": "email"}
    body = api.post("/rest/v1/leads.json", params={"_method": "GET"}, data=form)
    assert sorted(row["email"] for row in body["result"]) == emails[:3]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code"),
    [
        ("PUT", "/rest/v1/leads.json", {}, "605"),
        ("GET", "/rest/v1/nothing.json", {}, "610"),
        ("POST", "/rest/v1/leads.json", {"data": '{"input": []}'}, "612"),
        (
            "POST",
            "/rest/v1/leads.json",
            {"data": "{not json", "headers": {"Content-Type": "application/json"}},
            "609",
        ),
    ],
)
def test_malformed_requests_get_their_codes_and_are_not_counted(
    api: Api, fake: FakeMarketo, method: str, path: str, kwargs: dict[str, Any], code: str
) -> None:
    assert error_code(api.call(method, path, **kwargs).json()) == code
    assert fake.counted_calls_today() == 0
    assert fake.calls_to(path)[-1].code == code


# ---------------------------------------------------------------- leads


def test_lead_sync_creates_updates_and_skips_in_input_order(api: Api, fake: FakeMarketo) -> None:
    existing = fake.add_lead(email="Ann@Example.com", firstName="Ann")
    body = api.post(
        "/rest/v1/leads.json",
        json={
            "input": [
                {"email": "bob@example.com", "userId": "u_2"},
                {"email": "ann@example.com", "lastName": "Lee"},
                {"email": "not-an-email"},
                {"email": "c@example.com", "favouriteColour": "red"},
                {"firstName": "No lookup"},
            ]
        },
    )
    rows = body["result"]
    assert rows[0]["status"] == "created"
    assert rows[1] == {"id": existing, "status": "updated"}
    assert [row["status"] for row in rows[2:]] == ["skipped"] * 3
    assert [row["reasons"][0]["code"] for row in rows[2:]] == ["1001", "1006", "1003"]
    assert fake.leads[existing]["lastName"] == "Lee"
    assert fake.leads[rows[0]["id"]]["userId"] == "u_2"


def test_lead_actions_create_only_update_only_and_duplicates(api: Api, fake: FakeMarketo) -> None:
    fake.add_lead(email="dup@example.com")
    fake.add_lead(email="dup@example.com")
    fake.add_lead(email="one@example.com", userId="u_1")

    def statuses(action: str, lookup: str, records: list[dict[str, Any]]) -> list[str]:
        body = api.post(
            "/rest/v1/leads.json",
            json={"action": action, "lookupField": lookup, "input": records},
        )
        return [r.get("reasons", [{}])[0].get("code") or r["status"] for r in body["result"]]

    assert statuses("createOrUpdate", "email", [{"email": "dup@example.com"}]) == ["1007"]
    assert statuses("createOnly", "email", [{"email": "one@example.com"}]) == ["1005"]
    assert statuses("updateOnly", "userId", [{"userId": "u_9"}, {"userId": "u_1"}]) == [
        "1004",
        "updated",
    ]
    assert statuses("createDuplicate", "email", [{"email": "one@example.com"}]) == ["created"]
    assert len(fake.leads) == 4


def test_lead_sync_rejects_more_than_300_records(api: Api, fake: FakeMarketo) -> None:
    records = [{"email": f"u{i}@example.com"} for i in range(301)]
    assert error_code(api.post("/rest/v1/leads.json", json={"input": records})) == "1003"
    assert fake.leads == {}


def test_filter_by_custom_field_with_fields_and_paging(api: Api, fake: FakeMarketo) -> None:
    ids = [fake.add_lead(email=f"p{i}@example.com", anonymousId=f"anon{i}") for i in range(5)]
    values = ",".join(f"anon{i}" for i in range(5)) + ",anon-missing"
    params = {"filterType": "anonymousId", "filterValues": values, "fields": "email,anonymousId"}
    first = api.get("/rest/v1/leads.json", params={**params, "batchSize": 3})
    assert [row["id"] for row in first["result"]] == ids[:3]
    assert first["result"][0] == {"id": ids[0], "email": "p0@example.com", "anonymousId": "anon0"}
    second = api.get(
        "/rest/v1/leads.json",
        params={**params, "batchSize": 3, "nextPageToken": first["nextPageToken"]},
    )
    assert [row["id"] for row in second["result"]] == ids[3:]
    assert "nextPageToken" not in second
    none = api.get("/rest/v1/leads.json", params={**params, "filterValues": "zzz"})
    assert none == {**none, "success": True, "result": []}


def test_filter_with_more_than_1000_matches_is_1003(api: Api, fake: FakeMarketo) -> None:
    for _ in range(1001):
        fake.add_lead(email="same@example.com")
    params = {"filterType": "email", "filterValues": "same@example.com"}
    assert error_code(api.get("/rest/v1/leads.json", params=params)) == "1003"


# ---------------------------------------------------------------- activities


def test_activities_added_and_skips_under_errors(api: Api, fake: FakeMarketo) -> None:
    lead = fake.add_lead(email="a@example.com")
    items = [
        activity(lead),
        activity(999),
        activity(lead, activityTypeId=100004),
        activity(lead, attributes=[{"apiName": "colour", "value": "red"}]),
        activity(lead, attributes=[{"name": "Trial Days", "value": "many"}]),
        activity(lead, attributes=[{"name": "Price", "value": "9.5"}]),
    ]
    rows = api.post("/rest/v1/activities/external.json", json={"input": items})["result"]
    assert rows[0]["status"] == "added" and rows[0]["marketoGUID"] == str(rows[0]["id"])
    assert [r["errors"][0]["code"] for r in rows[1:5]] == ["1004", "1013", "1006", "1001"]
    assert rows[5]["status"] == "added"
    assert [a["id"] for a in fake.activities] == [rows[0]["id"], rows[5]["id"]]
    assert fake.activities[0]["leadId"] == lead


def test_activity_type_catalogue(api: Api, fake: FakeMarketo) -> None:
    fake.add_activity_type(100050, "trialStarted", primary=("plan", "string"))
    types = api.get("/rest/v1/activities/external/types.json")["result"]
    by_name = {t["apiName"]: t for t in types}
    assert by_name["signedUp"]["id"] == 100001 and by_name["draftThing"]["status"] == "draft"
    assert "trialStarted" in by_name
    described = api.get("/rest/v1/activities/external/type/signedUp/describe.json")["result"][0]
    assert described["primaryAttribute"]["apiName"] == "plan"
    assert {a["apiName"] for a in described["attributes"]} >= {"price", "currency"}
    missing = api.get("/rest/v1/activities/external/type/nope/describe.json")
    assert error_code(missing) == "1013"
    all_types = {t["id"] for t in api.get("/rest/v1/activities/types.json")["result"]}
    assert {1, 100001, 100050} <= all_types and 100004 not in all_types


# ---------------------------------------------------------------- scripts and control


def test_scripted_codes_and_http_status_are_consumed_in_order(api: Api, fake: FakeMarketo) -> None:
    lead = fake.add_lead(email="a@example.com")
    fake.script("activities/external.json", {"code": "606"}, {"http_status": 503})
    payload = {"input": [activity(lead)]}
    first = api.call("POST", "/rest/v1/activities/external.json", json=payload)
    second = api.call("POST", "/rest/v1/activities/external.json", json=payload)
    third = api.call("POST", "/rest/v1/activities/external.json", json=payload)
    assert error_code(first.json()) == "606"
    assert second.status_code == 503
    assert third.json()["result"][0]["status"] == "added"
    assert [c.code for c in fake.calls_to("activities/external.json")] == ["606", None, None]
    assert fake.errors_returned["606"] == 1 and len(fake.activities) == 1
    assert fake.counted_calls_today() == 1


def test_scripted_record_errors_skip_those_indexes(api: Api, fake: FakeMarketo) -> None:
    lead = fake.add_lead(email="a@example.com")
    fake.script("activities/external.json", {"record_errors": {0: "1004", 2: "1001"}})
    rows = api.post("/rest/v1/activities/external.json", json={"input": [activity(lead)] * 3})[
        "result"
    ]
    assert [r["status"] for r in rows] == ["skipped", "added", "skipped"]
    assert rows[0]["errors"][0]["code"] == "1004"
    fake.script("/rest/v1/leads.json", {"record_errors": {1: "1007"}})
    rows = api.post(
        "/rest/v1/leads.json", json={"input": [{"email": "b@x.io"}, {"email": "c@x.io"}]}
    )["result"]
    assert rows[1]["reasons"][0]["code"] == "1007" and rows[0]["status"] == "created"


def test_scripted_hang_times_out_client_and_drop_closes_connection(
    api: Api, fake: FakeMarketo
) -> None:
    api.fetch_token()
    fake.script("describe.json", {"hang": True}, {"drop": True})
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.call("GET", "/rest/v1/leads/describe.json", timeout=(1, 0.3))
    with pytest.raises(requests.exceptions.ConnectionError):
        api.call("GET", "/rest/v1/leads/describe.json")
    assert api.get("/rest/v1/leads/describe.json")["success"] is True


def test_control_endpoints_summarise_script_and_reset(api: Api, fake: FakeMarketo) -> None:
    api.get("/rest/v1/leads/describe.json")
    requests.post(
        fake.url + "/_fake/script",
        json={"path": "describe.json", "outcomes": [{"code": "611"}]},
        timeout=TIMEOUT,
    )
    assert error_code(api.get("/rest/v1/leads/describe.json")) == "611"
    summary = requests.get(fake.url + "/_fake/calls", timeout=TIMEOUT).json()
    assert summary["by_path"]["/rest/v1/leads/describe.json"] == 2
    assert summary["by_code"]["611"] == 1 and summary["max_concurrency_seen"] == 1
    detail = requests.get(fake.url + "/_fake/calls?detail=1", timeout=TIMEOUT).json()
    assert [c["code"] for c in detail["calls"]] == [None, None, "611"]
    requests.post(fake.url + "/_fake/expire_token", timeout=TIMEOUT)
    assert error_code(api.get("/rest/v1/leads/describe.json")) == "602"
    before = fake.clock.now()
    requests.post(fake.url + "/_fake/advance", json={"seconds": 30}, timeout=TIMEOUT)
    assert fake.clock.now() == before + 30
    fake.add_lead(email="kept@example.com")
    requests.post(fake.url + "/_fake/reset", json={}, timeout=TIMEOUT)
    assert fake.calls == [] and fake.counted_calls_today() == 0 and len(fake.leads) == 1
    requests.post(fake.url + "/_fake/reset", json={"reset_data": True}, timeout=TIMEOUT)
    assert fake.leads == {}


# ---------------------------------------------------------------- describe, associate, merge

COOKIE = "id:123-ABC-456&token:_mch-example.com-1700000000000-12345"


def test_describe_and_describe2_share_one_field_table(api: Api, fake: FakeMarketo) -> None:
    fake.add_field("planTier", searchable=True)
    fields = api.get("/rest/v1/leads/describe.json")["result"]
    soap = {f["rest"]["name"]: f["soap"]["name"] for f in fields}
    assert soap["email"] == "Email" and soap["dateOfBirth"] == "DateofBirth"
    assert soap["userId"] == "userId" and soap["planTier"] == "planTier"
    described = api.get("/rest/v1/leads/describe2.json")["result"][0]
    assert {f["name"] for f in described["fields"]} == set(soap)
    searchable = {name for group in described["searchableFields"] for name in group}
    assert {"email", "userId", "anonymousId", "planTier"} <= searchable
    assert "firstName" not in searchable


def test_associate_cookie_makes_cookie_filter_find_the_lead(api: Api, fake: FakeMarketo) -> None:
    first = fake.add_lead(email="a@example.com")
    second = fake.add_lead(email="b@example.com")
    path = f"/rest/v1/leads/{first}/associate.json"
    body = api.post(path, params={"cookie": COOKIE})
    assert body["success"] is True and "result" not in body
    assert error_code(api.post(path, params={"cookie": "garbage"})) == "1012"
    api.post(f"/rest/v1/leads/{second}/associate.json", params={"cookie": COOKIE})
    found = api.get("/rest/v1/leads.json", params={"filterType": "cookies", "filterValues": COOKIE})
    assert [row["id"] for row in found["result"]] == [second]
    assert error_code(api.post("/rest/v1/leads/999/associate.json", params={"cookie": COOKIE}))


def test_merge_moves_cookies_memberships_activities_and_deletes_losers(
    api: Api, fake: FakeMarketo
) -> None:
    winner = fake.add_lead(email="w@example.com", firstName="")
    loser = fake.add_lead(email="l@example.com", firstName="Lou", cookies=[COOKIE])
    list_id = fake.add_list("Trial users")
    fake.lists[list_id]["members"].add(loser)
    api.post("/rest/v1/activities/external.json", json={"input": [activity(loser)]})
    body = api.post(f"/rest/v1/leads/{winner}/merge.json", params={"leadId": loser})
    assert body["success"] is True and "result" not in body
    assert loser not in fake.leads
    assert fake.leads[winner]["email"] == "w@example.com"
    assert fake.leads[winner]["firstName"] == "Lou" and fake.leads[winner]["cookies"] == [COOKIE]
    assert fake.lists[list_id]["members"] == {winner}
    assert fake.activities[0]["leadId"] == winner
    too_many = ",".join(str(fake.add_lead()) for _ in range(26))
    merged = api.post(f"/rest/v1/leads/{winner}/merge.json", params={"leadIds": too_many})
    assert error_code(merged) == "1080"


def test_push_and_submit_form_upsert_by_email(api: Api, fake: FakeMarketo) -> None:
    pushed = api.post(
        "/rest/v1/leads/push.json",
        json={"programName": "P", "lookupField": "email", "input": [{"email": "p@x.io"}]},
    )
    assert pushed["result"][0]["status"] == "created"
    form = {
        "formId": 1068,
        "input": [{"leadFormFields": {"email": "p@x.io", "firstName": "Pat"}, "cookie": COOKIE}],
    }
    submitted = api.post("/rest/v1/leads/submitForm.json", json=form)
    lead_id = pushed["result"][0]["id"]
    assert submitted["result"] == [{"id": lead_id, "status": "updated"}]
    assert fake.leads[lead_id]["firstName"] == "Pat" and fake.leads[lead_id]["cookies"] == [COOKIE]
    assert fake.form_submissions[0]["formId"] == 1068


# ---------------------------------------------------------------- lists and assets


def test_list_membership_statuses(api: Api, fake: FakeMarketo) -> None:
    list_id = fake.add_list("Trial users")
    a, b = fake.add_lead(email="a@x.io"), fake.add_lead(email="b@x.io")
    path = f"/rest/v1/lists/{list_id}/leads.json"
    added = api.post(path, json={"input": [{"id": a}, {"id": 999}]})["result"]
    assert [r["status"] for r in added] == ["added", "skipped"]
    assert added[1]["reasons"][0]["code"] == "1004"
    assert api.post(path, params=[("id", b)])["result"][0]["status"] == "added"
    member = api.get(f"/rest/v1/lists/{list_id}/leads/ismember.json", params=[("id", a), ("id", 7)])
    assert [r["status"] for r in member["result"]] == ["memberof", "skipped"]
    removed = api.call("DELETE", path, params=[("id", a), ("id", a)]).json()["result"]
    assert [r.get("status") for r in removed] == ["removed", "skipped"]
    assert removed[1]["reasons"][0]["code"] == "1015"
    listed = api.get(path, params={"fields": "email"})["result"]
    assert listed == [{"id": b, "email": "b@x.io"}]
    member = api.get(f"/rest/v1/lists/{list_id}/leads/ismember.json", params={"id": a})
    assert member["result"][0]["status"] == "notmemberof"
    assert error_code(api.post("/rest/v1/lists/4242/leads.json", params={"id": a})) == "1013"


def test_asset_folders_and_static_lists_by_name(api: Api, fake: FakeMarketo) -> None:
    found = api.get("/rest/asset/v1/folder/byName.json", params={"name": "Gateway"})
    assert found["result"][0]["id"] == 31
    empty = api.get("/rest/asset/v1/staticList/byName.json", params={"name": "Trial users"})
    assert empty["success"] is True and "result" not in empty
    assert empty["warnings"] == ["No assets found for the given search criteria."]
    form = {"folder": '{"id": 31, "type": "Folder"}', "name": "Trial users"}
    created = api.post("/rest/asset/v1/staticLists.json", data=form)["result"][0]
    assert created["folder"] == {"id": 31, "type": "Folder"}
    assert created["createdAt"].endswith("Z+0000")
    assert error_code(api.post("/rest/asset/v1/staticLists.json", data=form)) == "709"
    as_json = api.post("/rest/asset/v1/staticLists.json", json=form)
    assert error_code(as_json) == "612"
    again = api.get("/rest/asset/v1/staticList/byName.json", params={"name": "Trial users"})
    assert again["result"][0]["id"] == created["id"] and created["id"] in fake.lists
    sub = api.post(
        "/rest/asset/v1/folders.json", data={"parent": '{"id":31,"type":"Folder"}', "name": "Sub"}
    )
    assert sub["result"][0]["parent"] == {"id": 31, "type": "Folder"}


# ---------------------------------------------------------------- campaigns, bulk, usage


def test_campaign_trigger_records_leads_and_tokens(api: Api, fake: FakeMarketo) -> None:
    lead = fake.add_lead(email="a@x.io")
    tokens = [{"name": "{{my.plan}}", "value": "Pro"}]
    payload = {"input": {"leads": [{"id": lead}], "tokens": tokens}}
    body = api.post("/rest/v1/campaigns/2001/trigger.json", json=payload)
    assert body["result"] == [{"id": 2001}]
    assert fake.campaign_triggers == [{"campaign_id": 2001, "leads": [lead], "tokens": tokens}]
    assert error_code(api.post("/rest/v1/campaigns/2002/trigger.json", json=payload)) == "1003"
    assert error_code(api.post("/rest/v1/campaigns/9/trigger.json", json=payload)) == "1013"
    many = {"input": {"leads": [{"id": lead}] * 101}}
    assert error_code(api.post("/rest/v1/campaigns/2001/trigger.json", json=many)) == "1003"
    assert len(fake.campaign_triggers) == 1


def submit_csv(api: Api, text: str, **params: Any) -> dict[str, Any]:
    """Post a CSV file to the bulk import endpoint."""
    params = {"format": "csv", "lookupField": "email", **params}
    files = {"file": ("leads.csv", text.encode(), "text/csv")}
    return api.post("/bulk/v1/leads.json", params=params, files=files)


def test_bulk_import_walks_states_by_clock_and_reports_failures(
    api: Api, fake: FakeMarketo, clock: FakeClock
) -> None:
    list_id = fake.add_list("Imported")
    existing = fake.add_lead(email="old@x.io")
    text = "email,firstName\nnew@x.io,Nia\nold@x.io,Otto\nbroken-email,Bad\n"
    batch = submit_csv(api, text, listId=list_id)["result"][0]
    assert batch["status"] == "Queued"
    path = f"/bulk/v1/leads/batch/{batch['batchId']}.json"
    states = [api.get(path)["result"][0]["status"]]
    for _ in range(2):
        clock.advance(5)
        states.append(api.get(path)["result"][0]["status"])
    assert states == ["Queued", "Importing", "Complete"]
    final = api.get(path)["result"][0]
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (2, 1)
    assert fake.leads[existing]["firstName"] == "Otto" and len(fake.leads) == 2
    assert len(fake.lists[list_id]["members"]) == 2
    failures = api.call("GET", f"/bulk/v1/leads/batch/{batch['batchId']}/failures.json").text
    lines = failures.strip().splitlines()
    assert lines[0] == "email,firstName,Import Failure Reason"
    assert lines[1].startswith("broken-email,Bad,")


def test_bulk_runs_two_at_a_time_and_refuses_beyond_ten_queued(
    api: Api, fake: FakeMarketo, clock: FakeClock
) -> None:
    ids = [submit_csv(api, f"email\nu{i}@x.io\n")["result"][0]["batchId"] for i in range(10)]
    assert error_code(submit_csv(api, "email\nlate@x.io\n")) == "1016"
    clock.advance(5)
    statuses = [api.get(f"/bulk/v1/leads/batch/{i}.json")["result"][0]["status"] for i in ids]
    assert statuses == ["Importing"] * 2 + ["Queued"] * 8
    clock.advance(5 * 5)
    statuses = [api.get(f"/bulk/v1/leads/batch/{i}.json")["result"][0]["status"] for i in ids]
    assert statuses == ["Complete"] * 10 and len(fake.leads) == 10


def test_usage_reports_counted_calls(api: Api, fake: FakeMarketo) -> None:
    api.get("/rest/v1/leads/describe.json")
    fake.script("describe.json", {"code": "611"})
    api.get("/rest/v1/leads/describe.json")
    usage = api.get("/rest/v1/stats/usage.json")["result"][0]
    assert usage["date"] == "2024-03-02"
    assert usage["total"] == 2 == fake.counted_calls_today()


# ---------------------------------------------------------------- standalone


def test_identity_path_takes_scripts_too(api: Api, fake: FakeMarketo) -> None:
    fake.script("oauth/token", {"http_status": 503})
    assert api.fetch_token().status_code == 503
    assert api.fetch_token().status_code == 200


def test_standalone_module_prints_url_and_serves_until_interrupted() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "app.devtools.fake_marketo", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints this once it is listening
        details = json.loads(line.split(" ", 3)[3])
        token = requests.post(
            details["url"] + "/identity/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": details["client_id"],
                "client_secret": details["client_secret"],
            },
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
        summary = requests.get(details["url"] + "/_fake/calls", timeout=TIMEOUT).json()
        assert summary["by_path"] == {"/identity/oauth/token": 1}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()
