"""Marketo's "halve the batch" policy against the fake over real HTTP (marketo-reference §3).

413 (body too large): the refused events go again at once, uncharged, in calls of at most half
the refused call, down to a lone record, which is dead-lettered while its batch-mates go on.
604 (request timed out): the events back off, charged, and the dispatcher sends at most half the
refused call per batch until the limit recovers. Nothing is lost, no 606/615 is caused.
"""

from __future__ import annotations

from collections import Counter

from app.delivery.reshape import RECOVERY_S

ACTIVITIES = "/activities/external.json"
LEADS = "/rest/v1/leads.json"


def viewed(delivery, i: int, name: str = "widget") -> str:
    """Store a `Product Viewed` track whose primary attribute (`p<i>`) names it in the fake."""
    return delivery.track(f"user{i % 5}", "Product Viewed", productId=f"p{i}", name=name)


def records(call) -> int:
    """Return how many records a recorded batch call carried."""
    return len(call.json["input"])


def settled(delivery, ids) -> Counter:
    """Return final (state, reason) counts, asserting nothing is left open."""
    assert delivery.open_events() == 0
    return Counter(delivery.state_of(m) for m in ids)


def attempts(delivery, ids) -> list[int]:
    """Return the charged attempts of each event, in order."""
    return [s.attempts for m in ids for s in delivery.store.find(m)]


def delivered_products(delivery) -> list[str]:
    """Return the primary attribute of every activity the fake holds, sorted."""
    return sorted(a["primaryAttributeValue"] for a in delivery.fake.activities)


def no_limits_hit(delivery) -> None:
    """The gateway itself never caused a 606 or 615."""
    assert delivery.fake.errors_returned["606"] == 0
    assert delivery.fake.errors_returned["615"] == 0


def test_413_splits_the_batch_in_halves_until_every_record_is_delivered(delivery) -> None:
    """40 activities over the body limit: 40 → 20 → 10 a call, all delivered once, uncharged."""
    delivery.warm()
    delivery.fake.max_body_bytes = 20_000  # each activity takes ~1.6 KB: 10 fit, 20 do not
    ids = [viewed(delivery, i, name="x" * 1500) for i in range(40)]
    assert delivery.drain() == 40
    assert settled(delivery, ids) == Counter({("delivered", None): 40})
    assert attempts(delivery, ids) == [0] * 40  # a reshape is not a retry
    calls = delivery.fake.calls_to(ACTIVITIES)
    assert [(records(c), c.status) for c in calls] == [
        (40, 413),
        (20, 413),
        (10, 200),
        (10, 200),
        (20, 413),
        (10, 200),
        (10, 200),
    ]
    assert all(len(c.body) <= 20_000 for c in calls if c.status == 200)
    assert delivered_products(delivery) == sorted(f"p{i}" for i in range(40))
    assert delivery.engine.dispatcher.batch_limit() is None  # 413 leaves no lasting limit
    no_limits_hit(delivery)


def test_one_oversized_record_is_dead_lettered_and_its_batch_mates_delivered(delivery) -> None:
    """A record over the limit on its own dies `marketo_413`; the other nine arrive, uncharged."""
    delivery.warm()
    delivery.fake.max_body_bytes = 20_000
    ids = [viewed(delivery, i) for i in range(9)]
    big = delivery.track("user3", "Product Viewed", productId="big", name="y" * 30_000)
    ids.insert(4, big)
    assert delivery.drain() == 10
    assert delivery.state_of(big) == ("dead", "marketo_413")
    (dead,) = delivery.store.find(big)
    assert "413" in (dead.detail or "") and "alone" in (dead.detail or "")
    assert settled(delivery, ids) == Counter({("delivered", None): 9, ("dead", "marketo_413"): 1})
    assert attempts(delivery, ids) == [0] * 10
    assert delivered_products(delivery) == sorted(f"p{i}" for i in range(9))
    calls = delivery.fake.calls_to(ACTIVITIES)
    assert records(calls[0]) == 10 and calls[0].status == 413
    refused_alone = [c for c in calls if c.status == 413 and records(c) == 1]
    assert len(refused_alone) == 1
    assert refused_alone[0].json["input"][0]["primaryAttributeValue"] == "big"
    no_limits_hit(delivery)


def test_scripted_604s_halve_the_batch_each_time_and_charge_attempts(delivery) -> None:
    """Three 604s: calls of 40, 20, 10 time out, then 5 a call go through; attempts are counted."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, *[{"code": "604"}] * 3)
    ids = [viewed(delivery, i) for i in range(40)]
    delivery.drain(advance=5.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 40})
    calls = delivery.fake.calls_to(ACTIVITIES)
    assert [(records(c), c.code) for c in calls[:4]] == [
        (40, "604"),
        (20, "604"),
        (10, "604"),
        (5, None),
    ]
    assert all(records(c) <= 5 and c.code is None for c in calls[3:])
    # Every event was in the first call (one charge); 20 and 10 of them were refused again.
    counts = attempts(delivery, ids)
    assert min(counts) >= 1 and sum(counts) == 40 + 20 + 10
    assert delivered_products(delivery) == sorted(f"p{i}" for i in range(40))
    assert delivery.engine.dispatcher.batch_limit() == 5
    no_limits_hit(delivery)


def test_batch_limit_recovers_after_a_quiet_spell(delivery) -> None:
    """Once RECOVERY_S passes without a 604, batches double again towards batch_size."""
    delivery.warm()
    delivery.fake.script(ACTIVITIES, {"code": "604"})
    first = [viewed(delivery, i) for i in range(8)]
    delivery.drain(advance=5.0)
    assert settled(delivery, first) == Counter({("delivered", None): 8})
    assert delivery.engine.dispatcher.batch_limit() == 4
    delivery.clock.advance(RECOVERY_S + 1)
    later = [viewed(delivery, 100 + i) for i in range(20)]
    delivery.drain()
    assert delivery.engine.dispatcher.batch_limit() == 8
    assert settled(delivery, later) == Counter({("delivered", None): 20})
    sizes = [records(c) for c in delivery.fake.calls_to(ACTIVITIES)]
    assert sizes[-3:] == [8, 8, 4]


def test_604_storm_on_big_calls_ends_with_everything_delivered(delivery) -> None:
    """Marketo times out every call of more than 8 records: the gateway shrinks until it fits."""
    delivery.warm()
    delivery.fake.timeout_above_records = 8
    ids = [viewed(delivery, i) for i in range(60)]
    delivery.drain(advance=5.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 60})
    calls = delivery.fake.calls_to(ACTIVITIES)
    assert all(c.code == "604" for c in calls if records(c) > 8)
    assert all(c.code is None for c in calls if records(c) <= 8)
    timed_out = [records(c) for c in calls if c.code == "604"]
    assert timed_out == [60, 30, 15]  # each refusal halves the next batch
    counts = attempts(delivery, ids)
    assert min(counts) >= 1 and sum(counts) == sum(timed_out)
    assert delivered_products(delivery) == sorted(f"p{i}" for i in range(60))
    no_limits_hit(delivery)


def test_604_on_lead_creation_halves_the_next_batch_too(delivery) -> None:
    """New users: the createOrUpdate call times out, and the smaller batches create them all."""
    delivery.fake.timeout_above_records = 6
    ids = [delivery.track(f"new{i}") for i in range(24)]
    delivery.drain(advance=5.0)
    assert settled(delivery, ids) == Counter({("delivered", None): 24})
    creates = [c for c in delivery.fake.calls_to(LEADS) if c.method == "POST" and c.json]
    assert [records(c) for c in creates if c.code == "604"] == [24, 12]
    assert all(records(c) <= 6 for c in creates if c.code is None)
    assert len(delivery.fake.activities) == 24
    no_limits_hit(delivery)


def test_identify_batches_are_sized_by_bytes_under_one_megabyte(delivery) -> None:
    """300 identifies with 5 KB of traits each (1.5 MB) go in calls under 1 MB: no 413."""
    delivery.configure(limits={"batch_size": 300, "batch_wait_s": 0, "timeout_s": 5})
    ids = [
        delivery.add(
            "identify",
            userId=f"big{i}",
            traits={"email": f"big{i}@example.com", "title": "t" * 5000},
        )
        for i in range(300)
    ]
    delivery.drain()
    assert settled(delivery, ids) == Counter({("delivered", None): 300})
    writes = [c for c in delivery.fake.calls_to(LEADS) if c.method == "POST" and c.json]
    assert len(writes) >= 2
    assert all(c.status == 200 and len(c.body) < 1024 * 1024 for c in writes)
    assert sum(records(c) for c in writes if c.json.get("lookupField") == "email") == 300
    no_limits_hit(delivery)
