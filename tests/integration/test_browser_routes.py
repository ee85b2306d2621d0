"""Browser routes through the Flask test client: loader.js, form-config, /v1/hash, tokens."""

from __future__ import annotations

import base64
import json

import pytest

from app.browser import tokens
from app.browser.loader import IDENTIFY_BUILD_PATH
from app.browser.loader import IDENTIFY_PATH
from app.browser.loader import TCF_BUILD_PATH
from app.browser.loader import TCF_PATH
from app.browser.loader import served_library
from tests.conftest import BROWSER_KEY
from tests.conftest import BROWSER_ORIGIN
from tests.conftest import SERVER_KEY

PRIVATE_KEY = "munchkin-private-key"
EMAIL = "ann.lee@example.com"
EMAIL_HASH = "e03db9f30828af5891b4931e1f83fcfd981de629"
SECRET_KEY = "test-secret-key-not-for-production"

FORM = {"form_id": 1003, "form_base_url": "//app-ab12.marketo.com", "identify_mode": "form"}
ASSOCIATE = {"identify_mode": "associate_lead", "api_private_key": PRIVATE_KEY}


def loader_config(body: str) -> dict:
    """Return the config object the loader template baked in."""
    return json.loads(body.rsplit("})(", 1)[1].strip().removesuffix(");"))


def basic(secret: str) -> dict[str, str]:
    """Return Segment-style HTTP Basic auth: the key as user name, empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


class Clock:
    """A wall clock the test moves by hand."""

    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_loader_serves_the_library_with_the_keys_public_config(client, write_settings):
    """The loader is JS with ids, URLs, modes and the SOAP field map for this key."""
    write_settings(
        public_url="https://track.example.com/",
        traits={"plan.tier": {"field": "planTier"}, "job": {"field": "title"}},
        munchkin_options={"cookieAnon": False},
        **FORM,
    )
    response = client.get(f"/v1/loader.js?k={BROWSER_KEY}")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    body = response.get_data(as_text=True)
    assert served_library() in body and "GATEWAY_CONFIG" in body
    config = loader_config(body)
    assert config["writeKey"] == BROWSER_KEY
    assert config["url"] == "https://track.example.com"
    assert config["munchkinId"] == "123-ABC-456"
    assert config["munchkinScriptUrl"] == "https://munchkin.marketo.net/munchkin.js"
    assert config["munchkinOptions"] == {"cookieAnon": False}
    assert (config["identifyMode"], config["formId"]) == ("form", 1003)
    assert config["formBaseUrl"] == "//app-ab12.marketo.com"
    # Left out at the library's defaults: on (track goes server-side), no Munchkin options.
    assert "trackServerSide" not in config
    # The site's own traits only; the standard table comes with the identify module.
    assert config["fieldMap"] == {"plan.tier": "planTier", "job": "Title"}
    # The version names what /v1/identify.js serves: its ETag begins with it.
    served_etag = client.get("/v1/identify.js").headers["ETag"].strip('"')
    assert len(config["identifyVersion"]) == 12
    assert served_etag.startswith(config["identifyVersion"])


def identify_module_fields(body: str) -> dict:
    """Return the standard field table the identify module is wrapped with."""
    return json.loads(body.rsplit("})(", 1)[1].strip().removesuffix(");"))


def test_identify_module_carries_the_standard_field_table(client):
    """/v1/identify.js: the form/associateLead code with the REST -> SOAP table, in order."""
    response = client.get("/v1/identify.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    body = response.get_data(as_text=True)
    assert served_library(IDENTIFY_PATH, IDENTIFY_BUILD_PATH) in body
    fields = identify_module_fields(body)
    assert fields["email"] == "Email" and fields["dateOfBirth"] == "DateofBirth"
    assert fields["gender"] == "MarketoSocialGender" and fields["address.zip"] == "PostalCode"
    # The table's order is its precedence: standard names, then Segment aliases (the loader's
    # custom traits come after both in the browser, as in form-config's fieldMap).
    order = list(fields)
    assert order[0] == "email" and order.index("dateOfBirth") < order.index("birthday")
    assert order.index("postalCode") < order.index("address.zip")


def test_identify_module_is_cached_for_a_year_at_its_versioned_url(client, write_settings):
    """The loader's URL names the version: immutable there, 5 minutes elsewhere, 304 on ETag."""
    write_settings(public_url="https://track.example.com", **FORM)
    config = loader_config(client.get(f"/v1/loader.js?k={BROWSER_KEY}").get_data(as_text=True))
    versioned = client.get(f"/v1/identify.js?v={config['identifyVersion']}")
    assert versioned.cache_control.public and versioned.cache_control.immutable
    assert versioned.cache_control.max_age == 365 * 24 * 3600
    other = client.get("/v1/identify.js?v=0123456789ab")
    assert other.cache_control.max_age == 300 and not other.cache_control.immutable
    assert other.data == versioned.data
    again = client.get("/v1/identify.js", headers={"If-None-Match": versioned.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_tcf_module_carries_the_purpose_map_and_is_named_only_when_consent_is_asked(
    client, write_settings
):
    """/v1/tcf.js: the TCF reader with `consent.tcf_purposes`; the loader links to its version
    in opt_in and opt_out mode with a purpose map, never in `none` mode or with `{}`."""
    purposes = {"marketing": [1, 2, 3, 4, 7], "analytics": [1, 9]}
    write_settings(consent={"mode": "opt_in", "tcf_purposes": purposes})
    config = loader_config(client.get(f"/v1/loader.js?k={BROWSER_KEY}").get_data(as_text=True))
    version = config["consent"]["tcf"]
    response = client.get(f"/v1/tcf.js?v={version}")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    body = response.get_data(as_text=True)
    assert served_library(TCF_PATH, TCF_BUILD_PATH) in body
    assert identify_module_fields(body) == purposes
    assert response.headers["ETag"].strip('"').startswith(version)
    assert response.cache_control.immutable and response.cache_control.max_age == 365 * 86400
    # The default map, and a new version when the map changes.
    write_settings(consent={"mode": "opt_out"})
    config = loader_config(client.get(f"/v1/loader.js?k={BROWSER_KEY}").get_data(as_text=True))
    assert config["consent"]["tcf"] != version
    default = identify_module_fields(client.get("/v1/tcf.js").get_data(as_text=True))
    assert default == {"analytics": [1, 8, 9], "marketing": [1, 3, 4]}
    for consent in ({"mode": "none", "honor_gpc": False}, {"mode": "opt_in", "tcf_purposes": {}}):
        write_settings(consent=consent)
        body = client.get(f"/v1/loader.js?k={BROWSER_KEY}").get_data(as_text=True)
        assert "tcf" not in loader_config(body).get("consent", {}), consent


def test_loader_falls_back_to_the_requested_host_without_public_url(client):
    """Without public_url the beacons go back where the loader came from."""
    response = client.get(f"/v1/loader.js?k={BROWSER_KEY}", base_url="http://gw.test:8080")
    assert loader_config(response.get_data(as_text=True))["url"] == "http://gw.test:8080"
    # Built from the Host header, so no shared cache may serve it to others.
    assert "private" in response.headers["Cache-Control"]
    assert "public" not in response.headers["Cache-Control"]
    assert "Host" in response.headers["Vary"]


def test_loader_is_cacheable_and_answers_304(client, write_settings):
    """ETag + Cache-Control; the same ETag back gives 304; a settings change a new ETag."""
    write_settings(public_url="https://track.example.com")
    first = client.get(f"/v1/loader.js?k={BROWSER_KEY}")
    assert first.headers["Cache-Control"] in ("public, max-age=300", "max-age=300, public")
    etag = first.headers["ETag"]
    again = client.get(f"/v1/loader.js?k={BROWSER_KEY}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    write_settings(munchkin_options={"anonymizeIP": True})
    changed = client.get(f"/v1/loader.js?k={BROWSER_KEY}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


@pytest.mark.parametrize("query", ["", "?k=", "?k=nope", "?k=sk_test_server_key_0123456789"])
def test_loader_for_an_unknown_key_is_a_js_comment_404(client, query):
    """A wrong key never gets config, and a script tag gets valid (empty) JavaScript."""
    response = client.get(f"/v1/loader.js{query}")
    assert response.status_code == 404
    assert response.mimetype == "text/javascript"
    body = response.get_data(as_text=True)
    assert body.startswith("/*") and body.rstrip().endswith("*/")


@pytest.mark.parametrize("environ", [{}, {"MARKETO_CLIENT_SECRET": "env-client-secret-1"}])
def test_loader_contains_no_secret(client, write_settings, environ):
    """Rendered with every secret set (file and environment), the loader holds none of them."""
    secrets = {
        "client_id": "client-id-secret-7",
        "client_secret": "client-secret-value-8",
        "api_private_key": "api-private-key-value-9",
        "secret_key": "signing-secret-value-10",
    }
    write_settings(identify_mode="associate_lead", **secrets)
    environ.update({"GATEWAY_SECRET_KEY": "env-signing-secret-11"})
    body = client.get(f"/v1/loader.js?k={BROWSER_KEY}").get_data(as_text=True)
    config = client.get(f"/v1/form-config?k={BROWSER_KEY}").get_data(as_text=True)
    module = client.get("/v1/identify.js").get_data(as_text=True)
    for secret in [*secrets.values(), *environ.values(), SERVER_KEY, "sha256:"]:
        assert secret not in body
        assert secret not in config
        assert secret not in module
    assert loader_config(body)["identifyMode"] == "associate_lead"


def test_form_config_answers_allowed_origins_only(client, write_settings):
    """JSON for sites that submit forms themselves, with CORS for the key's origins."""
    write_settings(**FORM)
    ok = client.get(f"/v1/form-config?k={BROWSER_KEY}", headers={"Origin": BROWSER_ORIGIN})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    assert "Origin" in ok.headers["Vary"]
    assert ok.json["formId"] == 1003 and ok.json["fieldMap"]["firstName"] == "FirstName"
    assert ok.json["munchkinId"] == "123-ABC-456"
    order = list(ok.json["fieldMap"])
    assert order[0] == "email" and order.index("postalCode") < order.index("address.zip")
    foreign = client.get(
        f"/v1/form-config?k={BROWSER_KEY}", headers={"Origin": "https://evil.test"}
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert client.get("/v1/form-config?k=nope").status_code == 401


def post_hash(client, token, *, k=BROWSER_KEY, origin=BROWSER_ORIGIN, as_text=True):
    """POST /v1/hash the way the library does (text/plain JSON)."""
    body = json.dumps({"k": k, "token": token})
    kind = "text/plain" if as_text else "application/json"
    return client.post("/v1/hash", data=body, content_type=kind, headers={"Origin": origin})


def test_hash_for_a_valid_token(app, client, write_settings):
    """A genuine token buys {email, hash}, hash per the reference test vector."""
    write_settings(**ASSOCIATE)
    token = tokens.mint(SECRET_KEY, EMAIL).token
    response = post_hash(client, token)
    assert response.status_code == 200
    assert response.json == {"email": EMAIL, "hash": EMAIL_HASH}
    assert response.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    assert post_hash(client, token, as_text=False).status_code == 200


def test_hash_refuses_bad_expired_and_foreign_tokens(app, client, write_settings):
    """400 for forged or other-gateway tokens, 410 once the clock passes the ttl."""
    write_settings(**ASSOCIATE)
    clock = Clock()
    app.config["WALL_CLOCK"] = clock
    token = tokens.mint(SECRET_KEY, EMAIL, 60, clock=clock).token
    foreign = tokens.mint("another-gateway-secret", EMAIL, clock=clock).token
    bad = post_hash(client, "forged")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_token"
    assert bad.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    assert post_hash(client, foreign).status_code == 400
    clock.now += 61
    expired = post_hash(client, token)
    assert expired.status_code == 410 and expired.json["error"]["code"] == "token_expired"


@pytest.mark.parametrize("mode", [FORM, {"identify_mode": "off"}])
def test_hash_is_409_unless_identify_mode_is_associate_lead(client, write_settings, mode):
    """The hash is only handed out when the operator chose associateLead."""
    write_settings(api_private_key=PRIVATE_KEY, **mode)
    response = post_hash(client, tokens.mint(SECRET_KEY, EMAIL).token)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "wrong_identify_mode"


def test_hash_refuses_unknown_keys_and_foreign_origins(client, write_settings):
    """The browser key and its origin gate the hash like any beacon."""
    write_settings(**ASSOCIATE)
    token = tokens.mint(SECRET_KEY, EMAIL).token
    assert post_hash(client, token, k="nope").status_code == 401
    foreign = post_hash(client, token, origin="https://evil.test")
    assert foreign.status_code == 403
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert client.post("/v1/hash", data="[1]", content_type="text/plain").status_code == 400
    assert client.post("/v1/hash", data="{", content_type="text/plain").status_code == 400
    surrogate = '{"k": "' + BROWSER_KEY + '", "token": "\\ud800"}'
    odd = client.post(
        "/v1/hash", data=surrogate, content_type="text/plain", headers={"Origin": BROWSER_ORIGIN}
    )
    assert odd.status_code == 400 and odd.json["error"]["code"] == "bad_token"


def test_hash_is_rate_limited_per_address(client, write_settings):
    """Probing tokens is slowed: past the per-IP budget the answer is 429 with Retry-After."""
    write_settings(**ASSOCIATE)
    statuses = [post_hash(client, "forged").status_code for _ in range(12)]
    assert statuses[:10] == [400] * 10
    assert statuses[10:] == [429, 429]
    limited = post_hash(client, "forged")
    assert int(limited.headers["Retry-After"]) >= 1


def test_hash_rate_limit_behind_a_proxy_counts_each_visitor(client, write_settings):
    """With intake.proxy_hops the hash budget follows X-Forwarded-For, not the proxy."""
    write_settings(intake={"proxy_hops": 1}, **ASSOCIATE)
    body = json.dumps({"k": BROWSER_KEY, "token": "forged"})

    def probe(visitor: str) -> int:
        headers = {"Origin": BROWSER_ORIGIN, "X-Forwarded-For": visitor}
        response = client.post("/v1/hash", data=body, content_type="text/plain", headers=headers)
        return response.status_code

    assert [probe("198.51.100.1") for _ in range(11)][-1] == 429
    assert probe("198.51.100.2") == 400


def test_hash_preflight_allows_the_keys_origin(client):
    """A JSON POST from an allowed site passes its CORS preflight; a foreign one does not."""
    headers = {"Origin": BROWSER_ORIGIN, "Access-Control-Request-Method": "POST"}
    ok = client.options("/v1/hash", headers=headers)
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == BROWSER_ORIGIN
    headers["Origin"] = "https://evil.test"
    assert "Access-Control-Allow-Origin" not in client.options("/v1/hash", headers=headers).headers


def test_identity_tokens_need_a_server_key_and_work_in_hash(client, write_settings):
    """The site back end mints with its server key; the browser exchanges the token."""
    write_settings(**ASSOCIATE)
    body = {"email": EMAIL}
    assert client.post("/v1/identity-tokens", json=body).status_code == 401
    assert (
        client.post("/v1/identity-tokens", json=body, headers=basic(BROWSER_KEY)).status_code == 401
    )
    minted = client.post("/v1/identity-tokens", json=body, headers=basic(SERVER_KEY))
    assert minted.status_code == 200
    assert minted.json["expiresAt"].endswith("Z")
    assert post_hash(client, minted.json["token"]).json["hash"] == EMAIL_HASH


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_email"),
        ({"email": "nope"}, "invalid_email"),
        ({"email": EMAIL, "ttl": 0}, "invalid_ttl"),
        ('{"email": "\\ud800@example.com"}', "invalid_email"),
        ('{"email": "a\\u0000@example.com"}', "invalid_email"),
    ],
)
def test_identity_tokens_validate_their_input(client, body, code):
    """Bad input is a 400 with a code, never a 5xx (raw JSON text can spell lone surrogates)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = {**basic(SERVER_KEY), "Content-Type": "application/json"}
    response = client.post("/v1/identity-tokens", data=raw, headers=headers)
    assert response.status_code == 400 and response.json["error"]["code"] == code


def test_loader_bakes_in_the_consent_mode_only_when_it_is_not_the_default(client, write_settings):
    """Defaults (none, marketing required, GPC honoured) cost the loader nothing; others show."""
    write_settings()
    assert "consent" not in loader_config(client.get(f"/v1/loader.js?k={BROWSER_KEY}").text)
    write_settings(consent={"mode": "opt_in", "required": ["analytics", "marketing"]})
    config = loader_config(client.get(f"/v1/loader.js?k={BROWSER_KEY}").text)
    assert config["consent"] == {
        "mode": "opt_in",
        "required": ["analytics", "marketing"],
        "gpc": True,
        "tcf": client.get("/v1/tcf.js").headers["ETag"].strip('"')[:12],
    }
