"""The process's copy of the suppression list: how often it reads the database, and when."""

from __future__ import annotations

from app.privacy.suppression import SuppressionList


class FakeShared:
    """The suppression list and its counter as the shared state keeps them, with read counts."""

    def __init__(self) -> None:
        self.hashes: set[str] = set()
        self.version = 0
        self.reads = {"version": 0, "list": 0, "lookup": 0}

    def change(self, add: set[str] = frozenset(), remove: set[str] = frozenset()) -> None:
        self.hashes = (self.hashes | add) - remove
        self.version += 1

    def suppression_version(self) -> int:
        self.reads["version"] += 1
        return self.version

    def suppression_list(self, limit: int) -> set[str] | None:
        self.reads["list"] += 1
        return None if len(self.hashes) > limit else set(self.hashes)

    def suppressed(self, hashes: set[str]) -> set[str]:
        self.reads["lookup"] += 1
        return hashes & self.hashes


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _made(**options):
    shared, clock = FakeShared(), Clock()
    return shared, clock, SuppressionList(lambda: shared, clock=clock, interval_s=1.0, **options)


def test_requests_within_the_interval_read_nothing():
    """A thousand questions inside one second cost one counter read and one list load."""
    shared, clock, cache = _made()
    shared.change(add={"a"})
    for i in range(1000):
        clock.now = 100.0 + i / 1000
        assert cache.listed({"a", f"x{i}"}) == {"a"}
    assert shared.reads == {"version": 1, "list": 1, "lookup": 0}


def test_a_change_elsewhere_applies_within_the_interval():
    """Another node's forget shows once the interval has passed, and not a read earlier."""
    shared, clock, cache = _made()
    assert cache.listed({"ann"}) == set()
    shared.change(add={"ann"})
    clock.now += 0.999
    assert cache.listed({"ann"}) == set()  # stale, within the bound
    clock.now += 0.001
    assert cache.listed({"ann"}) == {"ann"}
    shared.change(remove={"ann"})
    clock.now += 1.0
    assert cache.listed({"ann"}) == set()


def test_an_unchanged_counter_keeps_the_copy():
    """Each interval reads the counter only; the list is loaded again only when it moved."""
    shared, clock, cache = _made()
    shared.change(add={"a"})
    for _ in range(5):
        cache.listed({"a"})
        clock.now += 1.0
    assert shared.reads["version"] == 5 and shared.reads["list"] == 1


def test_fresh_and_invalidate_read_the_counter_at_once():
    """Delivery asks fresh; a forget in this process invalidates: neither waits the interval."""
    shared, clock, cache = _made()
    cache.listed({"a"})
    shared.change(add={"a"})
    assert cache.listed({"a"}, fresh=True) == {"a"}
    shared.change(remove={"a"})
    cache.invalidate()
    assert cache.listed({"a"}) == set()


def test_a_list_too_long_to_copy_is_asked_per_request():
    """Over max_cached the copy is not kept: every question goes to the database, correctly."""
    shared, clock, cache = _made(max_cached=2)
    shared.change(add={"a", "b", "c"})
    assert cache.listed({"c", "z"}) == {"c"}
    assert cache.listed({"a"}) == {"a"}
    assert shared.reads["lookup"] == 2 and shared.reads["list"] == 1
    assert cache.listed(set()) == set() and shared.reads["lookup"] == 2
