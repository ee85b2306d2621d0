"""One visitor's events in order: beacons sent before the identify that names them still land.

50 visitors each send page and track beacons a moment before the site's back end identifies
them; two dispatchers (two gateway processes on one outbox) step in between the arrivals. Not
one track may be dead-lettered `lead_not_found`: each waits for its identify, then lands on its
visitor's lead (SPEC §6.8).
"""

from __future__ import annotations

import json
import random

from app.delivery import get_engine
from app.outbox import get_store
from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.integration.test_lists_audiences import Gateway

EVENTS = {"Signed Up": {"activity_type_id": 100001, "primary": "plan"}}
LEAD_FIELDS = {"user_id": "userId", "anonymous_id": None}
VISITORS = 50


def test_beacons_before_their_identify_wait_and_land_on_the_visitors_lead(
    bo_app_factory, fake_marketo
):
    settings = {
        "events": EVENTS,
        "lead_fields": LEAD_FIELDS,
        "intake": {"browser_rate_per_ip": "10000/minute"},
    }
    first = Gateway(bo_app_factory(**settings))
    second = Gateway(bo_app_factory(**settings))
    dispatchers = [get_engine(g.app).dispatcher for g in (first, second)]
    rng = random.Random(17)
    arrivals = []
    for i in range(VISITORS):
        anonymous = f"visitor-{i}"
        arrivals.append(("beacon", "p", {"anonymousId": anonymous, "name": "Pricing"}))
        arrivals.append(
            ("beacon", "t", {"anonymousId": anonymous, "event": "Signed Up", "messageId": f"t-{i}",
                             "properties": {"plan": f"plan-{i}"}})
        )  # fmt: skip
        identify = {"userId": f"u-{i}", "anonymousId": anonymous,
                    "traits": {"email": f"visitor-{i}@example.com"}}  # fmt: skip
        # The identify follows its beacons after 0-4 other arrivals (0-200 ms at a busy site).
        arrivals.insert(len(arrivals) + rng.randint(0, 4), ("server", "identify", identify))
    for n, (kind, path, message) in enumerate(arrivals):
        if kind == "beacon":
            body = json.dumps({"writeKey": BROWSER_KEY, **message})
            answer = first.client.post(
                f"/v1/{path}", data=body, content_type="text/plain",
                headers={"Origin": BROWSER_ORIGIN},
            )  # fmt: skip
            assert answer.status_code == 200, answer.json
        else:
            second.send(path, **message)
        if rng.random() < 0.3:
            dispatchers[n % 2].run_once(flush=True)
    first.deliver()
    second.deliver()
    store = get_store(first.app)
    counts = store.counts(0)
    assert counts["dead"] == {}
    assert counts["held"] == 0
    lead_of = {lead["email"]: lead_id for lead_id, lead in fake_marketo.leads.items()}
    landed = {a["primaryAttributeValue"]: a["leadId"] for a in fake_marketo.activities}
    assert landed == {f"plan-{i}": lead_of[f"visitor-{i}@example.com"] for i in range(VISITORS)}
    assert all(store.find(f"t-{i}")[0].state.value == "delivered" for i in range(VISITORS))
