"""Identity tokens and the associateLead hash: signing, expiry with a fake clock, foreign tokens."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from app.browser import tokens
from app.errors import BadRequest
from app.errors import BadToken
from app.errors import Conflict
from app.errors import TokenExpired

SECRET = "test-secret-key"
T0 = 1_800_000_000.0


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_hash_matches_the_reference_vector():
    """SHA-1 of private key + email, lowercase hex (marketo-reference §6.4)."""
    digest = tokens.munchkin_hash("munchkin-private-key", "ann.lee@example.com")
    assert digest == "e03db9f30828af5891b4931e1f83fcfd981de629"


def test_token_round_trips_to_its_email():
    """A fresh token verifies to the (stripped) email it was minted for."""
    clock = FakeClock()
    minted = tokens.mint(SECRET, "  ann.lee@example.com ", 600, clock=clock)
    assert tokens.verify(SECRET, minted.token, clock=clock) == "ann.lee@example.com"
    assert minted.as_json()["expiresAt"] == "2027-01-15T08:10:00Z"


@pytest.mark.parametrize(
    ("ttl", "age", "expired"),
    [(600, 600, False), (600, 601, True), (60, 61, True), (3600, 3599, False), (3600, 4000, True)],
)
def test_token_expires_after_its_own_ttl(ttl, age, expired):
    """Each token carries its lifetime; the clock decides, nothing sleeps."""
    clock = FakeClock()
    token = tokens.mint(SECRET, "a@example.com", ttl, clock=clock).token
    clock.now += age
    if expired:
        with pytest.raises(TokenExpired) as info:
            tokens.verify(SECRET, token, clock=clock)
        assert info.value.status == 410
    else:
        assert tokens.verify(SECRET, token, clock=clock) == "a@example.com"


@pytest.mark.parametrize(
    "token",
    [
        "",
        None,
        42,
        "not-a-token",
        URLSafeTimedSerializer(SECRET, salt="another-purpose").dumps({"email": "a@b.c", "ttl": 9}),
        URLSafeTimedSerializer("other-gateway", salt=tokens.SALT).dumps(
            {"email": "a@b.c", "ttl": 9}
        ),
        URLSafeTimedSerializer(SECRET, salt=tokens.SALT).dumps(["a@b.c"]),
    ],
    ids=["empty", "none", "int", "garbage", "other-salt", "other-secret", "bad-payload"],
)
def test_bad_or_foreign_tokens_are_400(token):
    """Malformed, forged, other-purpose and other-gateway tokens are all BadToken (400)."""
    with pytest.raises(BadToken) as info:
        tokens.verify(SECRET, token)
    assert info.value.status == 400


def test_tampered_token_is_rejected():
    """Changing one character of the payload breaks the signature."""
    token = tokens.mint(SECRET, "a@example.com").token
    forged = ("b" if token[0] != "b" else "c") + token[1:]
    with pytest.raises(BadToken):
        tokens.verify(SECRET, forged)


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "@example.com", "a@", "a b@c.d", None, "x" * 250 + "@e.fr"]
)
def test_mint_refuses_what_is_not_an_email(email):
    """Only something shaped like an address can get a token."""
    with pytest.raises(BadRequest) as info:
        tokens.mint(SECRET, email)
    assert info.value.code == "invalid_email"


@pytest.mark.parametrize("ttl", [0, -1, tokens.MAX_TTL_S + 1, True, 1.5])
def test_mint_refuses_a_bad_ttl(ttl):
    """Lifetimes are whole seconds between 1 and the cap."""
    with pytest.raises(BadRequest) as info:
        tokens.mint(SECRET, "a@example.com", ttl)
    assert info.value.code == "invalid_ttl"


def test_tokens_need_a_secret_key():
    """Without secret_key nothing can be signed or checked: a 409 that says what to set."""
    with pytest.raises(Conflict, match="secret_key"):
        tokens.mint(None, "a@example.com")
    with pytest.raises(Conflict):
        tokens.verify("", "whatever")
