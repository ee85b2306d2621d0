"""Every fault on every Marketo endpoint delivery uses, against the fake over real HTTP.

{HTTP 500/502/503, timeout, connection dropped mid-answer, 601, 602, 604, 606, 611, 615, a
record-level 1xxx} × {token, lead lookup, createOrUpdate, associate, activities, list membership,
campaign trigger, merge}: the fault hits the endpoint once; each case ends with every event
delivered (or, for a record refused, that one event dead with Marketo's code and the others
delivered), no 606/615 beyond the injected one, and no attempt charged for an uncharged fault
(token, rate limits) or more than one for a charged one. The clock is the rig's, so back-offs
and the 20 s window cost no real time; only the timeouts wait (1 s each).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

LIST_NAME = "Trial users"
CAMPAIGN_ID = 2001

FAULTS: dict[str, dict] = {
    "http500": {"http_status": 500},
    "http502": {"http_status": 502},
    "http503": {"http_status": 503},
    "timeout": {"hang": True},
    "cut": {"cut": True},
    "601": {"code": "601"},
    "602": {"code": "602"},
    "604": {"code": "604"},
    "606": {"code": "606"},
    "611": {"code": "611"},
    "615": {"code": "615"},
    "record1xxx": {"record_errors": {0: "1003"}},
}
#: Endpoints whose answer says, record by record, which was refused.
PER_RECORD = {"createOrUpdate", "activities"}
#: Faults whose retry is never charged: token refresh, Marketo's rate and concurrency limits.
UNCHARGED = {"601", "602", "606", "615"}


@dataclass
class Case:
    """Events set up for one endpoint, and where its fault goes."""

    ids: list[str]
    path: str
    method: str | None = None


def configure(rig, **overrides) -> None:
    """Set the scenario's settings, keeping the test's limits."""
    rig.configure(**{**rig.overrides, **overrides})
    rig.overrides = {**rig.overrides, **overrides}


def tracks(rig, users: int = 3, per_user: int = 2, **context) -> list[str]:
    return [
        rig.add(
            "track",
            userId=f"user{u}",
            event="Signed Up",
            properties={"plan": f"p{u}-{n}"},
            context={"traits": {"email": f"user{u}@example.com"}, **context},
        )
        for u in range(users)
        for n in range(per_user)
    ]


def token(rig) -> Case:
    return Case(tracks(rig), "/identity/oauth/token")


def lead_lookup(rig) -> Case:
    return Case(tracks(rig), "/leads.json", "GET")


def create_or_update(rig) -> Case:
    return Case(tracks(rig, per_user=1), "/leads.json", "POST")  # one record per event


def associate(rig) -> Case:
    rig.warm(3)
    ids = [
        rig.add(
            "track",
            userId=f"user{u}",
            event="Signed Up",
            properties={"plan": f"p{u}"},
            context={"traits": {"email": f"user{u}@example.com"}, "marketoCookie": f"id:{u}&tok"},
        )
        for u in range(3)
    ]
    return Case(ids, "/associate.json")


def activities(rig) -> Case:
    rig.warm(3)
    return Case(tracks(rig), "/activities/external.json")


def list_membership(rig) -> Case:
    rig.warm(3)
    list_id = rig.fake.add_list(LIST_NAME)
    configure(
        rig,
        lists={
            "folder": {"type": "Folder", "id": 31},
            "create_missing": False,
            "names": {"trial_users": LIST_NAME},
        },
    )
    ids = [
        rig.add(
            "identify",
            userId=f"user{u}",
            traits={"trial_users": True, "email": f"user{u}@example.com"},
            context={
                "personas": {"computation_class": "audience", "computation_key": "trial_users"}
            },
        )
        for u in range(3)
    ]
    return Case(ids, f"/lists/{list_id}/leads.json")


def campaign_trigger(rig) -> Case:
    rig.warm(3)
    rig.fake.add_campaign(CAMPAIGN_ID, "Password reset")
    configure(rig, campaigns={"Signed Up": {"campaign_id": CAMPAIGN_ID, "tokens": {}}})
    return Case(tracks(rig, per_user=1), f"/campaigns/{CAMPAIGN_ID}/trigger.json")


def merge(rig) -> Case:
    configure(rig, merge_on_alias=True)
    for u in range(2):
        rig.fake.add_lead(email=f"user{u}@example.com", userId=f"user{u}")
        rig.fake.add_lead(anonymousId=f"anon-{u}")
    ids = [rig.add("alias", userId=f"user{u}", previousId=f"anon-{u}") for u in range(2)]
    return Case(ids, "/merge.json")


ENDPOINTS: dict[str, Callable] = {
    "token": token,
    "lead_lookup": lead_lookup,
    "createOrUpdate": create_or_update,
    "associate": associate,
    "activities": activities,
    "list_membership": list_membership,
    "campaign_trigger": campaign_trigger,
    "merge": merge,
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_fault_on_an_endpoint_ends_with_every_event_settled_correctly(
    delivery, endpoint, fault, monkeypatch
):
    delivery.overrides = {}
    if fault == "timeout":  # the shortest read timeouts, so the matrix stays fast
        configure(delivery, limits={"timeout_s": 1, "batch_wait_s": 0})
        monkeypatch.setattr("app.marketo.merge.MERGE_TIMEOUT_S", 1.0)  # 190 s in production
    case = ENDPOINTS[endpoint](delivery)
    injected = {**FAULTS[fault], **({"method": case.method} if case.method else {})}
    delivery.fake.script(case.path, injected)
    before = {code: delivery.fake.errors_returned[code] for code in ("606", "615")}

    delivery.drain(max_steps=400, advance=5.0)

    assert delivery.open_events() == 0
    assert delivery.fake.calls_to(case.path), "the faulted endpoint was never called"
    states = Counter(delivery.state_of(m) for m in case.ids)
    if fault == "record1xxx":
        dead = {k: n for k, n in states.items() if k[0] == "dead"}
        assert sum(dead.values()) <= 1, states  # only the refused record, never its batch-mates
        for _state, reason in dead:
            assert reason not in ("internal_error", "retries_exhausted", "no_outcome"), states
        assert states[("delivered", None)] >= len(case.ids) - 1, states
        if endpoint in PER_RECORD:  # the refused record's event dies with Marketo's code
            assert states[("dead", "marketo_1003")] == 1, states
    else:
        assert states == Counter({("delivered", None): len(case.ids)}), states
    # Nothing self-caused after the fault: no 606/615 but the one injected.
    for code in ("606", "615"):
        extra = delivery.fake.errors_returned[code] - before[code] - (1 if fault == code else 0)
        assert extra <= 0, f"the gateway caused a {code} after the fault"
    charged = [s.attempts for m in case.ids for s in delivery.store.find(m)]
    # The identity endpoint answers OAuth, not REST envelopes: any fault there is an outage.
    uncharged = fault in UNCHARGED and endpoint != "token"
    assert max(charged) <= (0 if uncharged else 1), charged
