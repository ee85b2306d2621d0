"""Lead resolution follows `lead_lookup`, and the integrations filter means what Segment means.

The fake holds lead A, whose Munchkin cookie a form fill tied, and lead B with another email. A
server track carrying A's cookie and B's email lands where the configured order says, and no
associate call ever moves the cookie (SPEC §6.3, README "Lead resolution").
"""

from __future__ import annotations

import pytest

from app.delivery.status import marketo_status
from app.outbox import get_store
from tests.integration.test_lists_audiences import Gateway

EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}
COOKIE_A = "id:123-ABC-456&token:_mch-example.com-1700000000000-11111"

ORDERS = {
    "cookie first": (["marketo_cookie", "email", "userId", "anonymousId"], "A"),
    "email first": (["email", "marketo_cookie", "userId", "anonymousId"], "B"),
}


@pytest.mark.parametrize("order,winner", ORDERS.values(), ids=ORDERS.keys())
def test_the_first_identity_in_the_order_decides_and_the_cookie_stays(delivery, order, winner):
    leads = {
        "A": delivery.fake.add_lead(email="a@example.com", cookies=[COOKIE_A]),
        "B": delivery.fake.add_lead(email="b@example.com"),
    }
    delivery.configure(lead_lookup=order)
    sent = delivery.add(
        "track",
        userId="u-1",
        event="Signed Up",
        properties={"plan": "Pro"},
        context={"traits": {"email": "b@example.com"}, "Marketo": {"marketoCookie": COOKIE_A}},
    )
    delivery.drain()
    assert delivery.state_of(sent) == ("delivered", None)
    assert [a["leadId"] for a in delivery.fake.activities] == [leads[winner]]
    assert delivery.fake.calls_to("associate.json") == []
    assert delivery.fake.leads[leads["A"]]["cookies"] == [COOKIE_A]
    assert delivery.fake.leads[leads["B"]]["cookies"] == []
    status = marketo_status(delivery.settings, delivery.shared, None, delivery.clock.now())
    conflicts = status["marketo"]["identity_conflicts"]
    assert conflicts == (1 if winner == "B" else 0)  # B won over a cookie A owns


def test_a_cookie_nobody_owns_joins_the_lead_once(delivery):
    """A new browser's cookie is associated with the lead its email found, once."""
    cookie = "id:123-ABC-456&token:_mch-example.com-1700000000000-22222"
    lead = delivery.fake.add_lead(email="c@example.com")
    for _ in range(2):
        delivery.add(
            "track",
            userId="u-2",
            event="Signed Up",
            properties={"plan": "Pro"},
            context={"traits": {"email": "c@example.com"}, "Marketo": {"marketoCookie": cookie}},
        )
    delivery.drain()
    assert [c.path for c in delivery.fake.calls_to("associate.json")] == [
        f"/rest/v1/leads/{lead}/associate.json"
    ]
    assert delivery.fake.leads[lead]["cookies"] == [cookie]


# Segment's meaning: false disables, true or an object (options) enables, All is the default.
INTEGRATIONS = [
    ({}, "delivered"),
    ({"Marketo": False}, "dropped"),
    ({"Marketo V2": False}, "dropped"),
    ({"Marketo Gateway": False}, "dropped"),
    ({"Marketo": True}, "delivered"),
    ({"Marketo": {}}, "delivered"),
    ({"Marketo": {"someOption": 1}}, "delivered"),
    ({"All": False}, "dropped"),
    ({"All": False, "Marketo": True}, "delivered"),
    ({"All": False, "Marketo V2": {}}, "delivered"),
    ({"All": True, "Marketo": False}, "dropped"),
    ({"Salesforce": False}, "delivered"),
]


def test_the_integrations_table_through_the_batch_api(bo_app_factory, fake_marketo):
    """Each row through /v1/batch ends delivered or dropped(disabled_by_integrations)."""
    gateway = Gateway(bo_app_factory(events=EVENTS))
    batch = [
        {
            "type": "track",
            "messageId": f"int-{i}",
            "userId": f"int-user-{i}",
            "event": "Signed Up",
            "properties": {"plan": "Pro"},
            "context": {"traits": {"email": f"int-{i}@example.com"}},
            "integrations": integrations,
        }
        for i, (integrations, _) in enumerate(INTEGRATIONS)
    ]
    gateway.send("batch", batch=batch)
    gateway.deliver()
    store = get_store(gateway.app)
    for i, (integrations, expected) in enumerate(INTEGRATIONS):
        [stored] = store.find(f"int-{i}")
        state, reason = stored.state.value, stored.reason
        wanted = (expected, "disabled_by_integrations" if expected == "dropped" else None)
        assert (state, reason) == wanted, integrations
    assert len(fake_marketo.activities) == sum(e == "delivered" for _, e in INTEGRATIONS)
