"""One bad event never charges its batch-mates: an unexpected exception splits the batch until
the event raising it is alone; that one is dead-lettered `internal_error`, the others go on.

The poison is written straight into the outbox (intake refuses it), as an older gateway or a
hand edit could have stored it.
"""

from __future__ import annotations

from collections import Counter

import pytest

ACTIVITIES = "/activities/external.json"


def poison_cookie(delivery, user: str) -> str:
    """A track whose Munchkin cookie holds a lone surrogate: the lead cache cannot encode it."""
    return delivery.add(
        "track",
        userId=user,
        event="Signed Up",
        properties={"plan": "Pro"},
        context={"traits": {"email": f"{user}@example.com"}, "marketoCookie": "id:\ud800"},
    )


def goods(delivery, n: int, offset: int = 0) -> list[str]:
    return [delivery.track(f"user{(offset + i) % 5}") for i in range(n)]


def attempts(delivery, ids) -> list[int]:
    return [s.attempts for m in ids for s in delivery.store.find(m)]


@pytest.mark.parametrize("position", [0, 7, 19])
def test_a_poison_event_is_dead_lettered_alone_and_its_batch_mates_go_on(delivery, position):
    delivery.warm()
    ids = goods(delivery, 19)
    bad = poison_cookie(delivery, "user9")
    ordered = ids[:position] + [bad] + ids[position:]
    assert len(ordered) == 20
    delivery.drain()
    assert delivery.open_events() == 0
    assert Counter(delivery.state_of(m) for m in ids) == Counter({("delivered", None): 19})
    assert delivery.state_of(bad) == ("dead", "internal_error")
    (stored,) = delivery.store.find(bad)
    assert stored.detail.startswith("UnicodeEncodeError: ")
    assert attempts(delivery, ids) == [0] * 19
    assert len(delivery.fake.activities) == 19  # each good event once, the poison never


def test_several_poisons_among_many_good_events_each_end_alone(delivery):
    delivery.warm()
    ids, bad = [], []
    for round_ in range(5):
        ids += goods(delivery, 60, round_)
        bad.append(poison_cookie(delivery, f"bad{round_}"))
    delivery.drain()
    assert delivery.open_events() == 0
    assert Counter(delivery.state_of(m) for m in ids) == Counter({("delivered", None): 300})
    assert {delivery.state_of(m) for m in bad} == {("dead", "internal_error")}
    assert set(attempts(delivery, ids)) == {0}
    sent = Counter(a["primaryAttributeValue"] for a in delivery.fake.activities)
    assert sent == Counter({"Pro": 300})
    # Bisecting is cheap: the leads are cached, so a resent half costs its activities call.
    assert len(delivery.fake.calls_to(ACTIVITIES)) <= 5 * 8


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("identify", {"userId": "user8", "traits": {"email": "x\ud800@example.com"}}),
        ("alias", {"userId": "user1", "previousId": "anon-\udfff"}),
    ],
    ids=["identify-email", "alias-previousId"],
)
def test_a_payload_that_makes_a_handler_raise_is_isolated(delivery, kind, message):
    """The identify and alias handlers raise on a lone surrogate: only that event dies."""
    delivery.warm()
    ids = goods(delivery, 9)
    bad = delivery.add(kind, **message)
    delivery.drain()
    assert delivery.open_events() == 0
    assert Counter(delivery.state_of(m) for m in ids) == Counter({("delivered", None): 9})
    assert delivery.state_of(bad) == ("dead", "internal_error")
    (stored,) = delivery.store.find(bad)
    assert stored.detail.startswith("UnicodeEncodeError: ")
    assert attempts(delivery, ids) == [0] * 9
    assert len(delivery.fake.activities) == 9


def test_an_identify_settled_before_a_track_raised_is_not_sent_again(delivery):
    delivery.warm()
    who = delivery.add(
        "identify", userId="user1", traits={"email": "user1@example.com", "firstName": "A"}
    )
    ids = goods(delivery, 4)
    bad = poison_cookie(delivery, "user7")
    delivery.drain()
    assert delivery.state_of(who) == ("delivered", None)
    assert delivery.state_of(bad) == ("dead", "internal_error")
    assert Counter(delivery.state_of(m) for m in ids) == Counter({("delivered", None): 4})
    pushes = [c for c in delivery.fake.calls_to("/leads.json") if c.method == "POST"]
    assert len(pushes) == 1
