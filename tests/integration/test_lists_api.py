"""POST /v1/lists/{name}/members and `flask lists …` against the fake Marketo over real HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import SERVER_KEY


def auth(key: str = SERVER_KEY) -> dict[str, str]:
    """HTTP Basic with the server key as user name, as Segment's libraries send it."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


class Lists:
    """Small helpers for the lists API."""

    def __init__(self, client):
        self.client = client

    def members(self, name: str, body, key: str = SERVER_KEY):
        return self.client.post(f"/v1/lists/{name}/members", json=body, headers=auth(key))


@pytest.fixture
def lists(bo_app):
    """Lists API helper on an app aimed at the fake."""
    return Lists(bo_app.test_client())


def members_of(fake, name: str) -> set[str]:
    """Return the emails of a fake list's members."""
    static = next(s for s in fake.lists.values() if s["name"] == name)
    return {fake.leads[i]["email"] for i in static["members"]}


def test_add_creates_the_list_once_and_adds_known_leads(fake_marketo, lists):
    """The list is created in the folder on first use and found in the cache afterwards."""
    fake_marketo.add_lead(email="ann@example.com")
    fake_marketo.add_lead(email="bob@example.com")
    first = lists.members("Trial users", {"add": ["ann@example.com"]})
    assert first.status_code == 200, first.json
    second = lists.members("Trial users", {"add": ["BOB@example.com"]})
    assert second.json["added"] == ["bob@example.com"]
    assert members_of(fake_marketo, "Trial users") == {"ann@example.com", "bob@example.com"}
    assert len(fake_marketo.calls_to("/staticLists.json")) == 1
    assert len(fake_marketo.calls_to("/staticList/byName.json")) == 1
    created = next(s for s in fake_marketo.lists.values() if s["name"] == "Trial users")
    assert created["folder"]["id"] == 31


def test_missing_leads_fail_unless_creation_is_asked(fake_marketo, lists):
    """An unknown email is reported (1004); with createMissing the lead is created and added."""
    refused = lists.members("VIP", {"add": ["new@example.com"]})
    assert refused.json["added"] == []
    assert refused.json["failed"] == [
        {
            "value": "new@example.com",
            "action": "add",
            "code": "1004",
            "message": refused.json["failed"][0]["message"],
        }
    ]
    created = lists.members("VIP", {"add": ["new@example.com"], "createMissing": True})
    assert created.json["added"] == ["new@example.com"]
    assert members_of(fake_marketo, "VIP") == {"new@example.com"}


def test_remove_and_other_lookup_fields(fake_marketo, lists):
    """Leads may be named by id or any field; removing a non-member counts as done (1015)."""
    ann = fake_marketo.add_lead(email="ann@example.com", userId="u_1")
    fake_marketo.add_lead(email="bob@example.com")
    list_id = fake_marketo.add_list("Customers")
    fake_marketo.lists[list_id]["members"].add(ann)
    response = lists.members(
        "Customers", {"remove": [{"id": ann}, "bob@example.com", "nobody@example.com"]}
    )
    assert response.status_code == 200
    assert sorted(response.json["removed"]) == sorted(
        [str(ann), "bob@example.com", "nobody@example.com"]
    )
    assert fake_marketo.lists[list_id]["members"] == set()
    again = lists.members("Customers", {"add": ["u_1"], "lookupField": "userId"})
    assert again.json["added"] == ["u_1"]
    assert fake_marketo.lists[list_id]["members"] == {ann}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"add": "ann@example.com"}, 400, "invalid_leads"),
        ({"add": []}, 400, "invalid_leads"),
        ({"add": [{"email": "a@x.io", "id": 1}]}, 400, "invalid_leads"),
        ({"add": ["a@x.io"], "lookupField": "no such"}, 400, "invalid_lookup_field"),
        ({"add": ["a@x.io"], "createMissing": "yes"}, 400, "invalid_body"),
        (["a@x.io"], 400, "invalid_body"),
    ],
)
def test_bad_bodies_get_a_clear_400(lists, fake_marketo, body, status, code):
    """Validation happens before any Marketo call."""
    response = lists.members("VIP", body)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert fake_marketo.calls == []


def test_a_server_key_is_required(lists, fake_marketo):
    """No key or a wrong key is 401 and nothing is called."""
    response = lists.members("VIP", {"add": ["a@x.io"]}, key="wrong")
    assert response.status_code == 401
    assert fake_marketo.calls == []


def test_without_credentials_the_api_says_marketo_is_not_configured(fake_marketo, bo_app_factory):
    """No client id/secret: a 503 naming the missing settings, and no call to Marketo."""
    app = bo_app_factory(client_id=None, client_secret=None)
    response = Lists(app.test_client()).members("VIP", {"add": ["a@x.io"]})
    assert response.status_code == 503
    assert response.json["error"]["code"] == "marketo_not_configured"
    assert fake_marketo.calls == []


def test_unknown_list_without_creation_is_404(fake_marketo, bo_app_factory):
    """With create_missing off, naming a list that does not exist is a 404."""
    app = bo_app_factory(lists={"folder": {"type": "Folder", "id": 31}, "create_missing": False})
    response = Lists(app.test_client()).members("Nope", {"add": ["a@x.io"]})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "list_not_found"
    assert fake_marketo.calls_to("/staticLists.json") == []


def test_marketo_rate_limit_is_503_with_retry_after(fake_marketo, lists):
    """A 606 from Marketo is not the caller's fault: 503 with Retry-After, not a 5xx crash."""
    fake_marketo.script("/staticList/byName.json", {"code": "606"})
    response = lists.members("VIP", {"add": ["a@x.io"]})
    assert response.status_code == 503
    assert response.json["error"]["code"] == "marketo_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_cli_add_show_remove_and_sync(fake_marketo, bo_app_factory):
    """`flask lists` adds, shows, removes and makes configured lists exist."""
    app = bo_app_factory(
        lists={"folder": {"type": "Folder", "id": 31}, "names": {"trial": "Trial users"}}
    )
    runner = app.test_cli_runner()
    fake_marketo.add_lead(email="ann@example.com")
    synced = runner.invoke(args=["lists", "sync", "Extra", "--json"])
    assert synced.exit_code == 0, synced.output
    ids = json.loads(synced.output)
    assert set(ids) == {"Trial users", "Extra"}
    assert {s["name"] for s in fake_marketo.lists.values()} >= {"Trial users", "Extra"}
    added = runner.invoke(args=["lists", "add", "Trial users", "ann@example.com"])
    assert added.exit_code == 0, added.output
    assert "1 added" in added.output
    shown = runner.invoke(args=["lists", "show", "Trial users", "--members", "--json"])
    info = json.loads(shown.output)
    assert info["count"] == 1 and info["members"][0]["email"] == "ann@example.com"
    missing = runner.invoke(args=["lists", "add", "Trial users", "zed@example.com"])
    assert missing.exit_code == 1
    assert "zed@example.com" in missing.output
    removed = runner.invoke(args=["lists", "remove", "Trial users", "ann@example.com"])
    assert removed.exit_code == 0, removed.output
    assert members_of(fake_marketo, "Trial users") == set()
    unknown = runner.invoke(args=["lists", "show", "Nope"])
    assert unknown.exit_code == 1
    assert "no static list named 'Nope'" in unknown.output
