"""Validate a raw settings document, reporting every problem, and turn it into `Settings`."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from app.settings.consent import check_consent
from app.settings.drivers import POSTGRES_EXTRA_MISSING
from app.settings.drivers import postgres_installed
from app.settings.model import FIELD_TYPES
from app.settings.model import IDENTIFY_MODES
from app.settings.model import LOOKUP_ORDER_NAMES

MUNCHKIN_ID_RE = re.compile(r"^\d{3}-[A-Z]{3}-\d{3}$")
HTTP_URL_RE = re.compile(r"^https?://[^\s/]+(/[^\s]*)?$")
FORM_BASE_RE = re.compile(r"^(https?:)?//[^\s/]+(/[^\s]*)?$")
ORIGIN_RE = re.compile(r"^https?://[^\s/]+$")
API_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH_RE = re.compile(r"^[^\s.][^\s]*$")
TOKEN_NAME_RE = re.compile(r"^\{\{my\.[^{}]+\}\}$")
RATE_RE = re.compile(r"^[1-9]\d*/(second|minute|hour)$")

MUNCHKIN_OPTIONS = {
    "asyncOnly": bool,
    "cookieAnon": bool,
    "apiOnly": bool,
    "domainLevel": int,
    "anonymizeIP": bool,
    "httpsOnly": bool,
    "cookieLifeDays": int,
    "useBeaconAPI": bool,
    "customName": str,
    "wsInfo": str,
    "notifyPrefix": str,
}

LEAD_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")

# Each limit: (minimum, maximum, reason for the bound).
LIMIT_BOUNDS: dict[str, tuple[float, float, type]] = {
    "calls_per_20s": (1, 100, int),  # Marketo answers 606 above 100 calls per 20 s
    "concurrency": (1, 10, int),  # Marketo answers 615 above 10 calls in flight
    "daily_quota": (1, 10_000_000, int),
    "batch_size": (1, 300, int),  # Marketo takes at most 300 records per call
    "batch_wait_s": (0, 3600, float),
    "linger_ms": (0, 60_000, int),
    "timeout_s": (1, 600, float),
    "max_attempts": (1, 1000, int),
    "browser_lookups_per_hour": (0, 1_000_000, int),  # 0: browser events follow cached bindings
}
INTAKE_BOUNDS: dict[str, tuple[float, float, type]] = {
    "max_event_bytes": (256, 1_048_576, int),
    "max_batch_bytes": (1024, 16_777_216, int),
    "dedupe_window_h": (0, 24 * 30, float),
    "proxy_hops": (0, 10, int),
}

# A bearer token short enough to guess is no guard for /metrics.
MIN_METRICS_TOKEN = 16

TOP_LEVEL_KEYS = frozenset(
    {
        "public_url",
        "munchkin_id",
        "client_id",
        "client_secret",
        "rest_base_url",
        "identity_url",
        "api_private_key",
        "secret_key",
        "identify_mode",
        "form_id",
        "form_base_url",
        "munchkin_script_url",
        "munchkin_options",
        "send_track_server_side",
        "track_anonymous",
        "anonymous_hold_days",
        "lead_lookup",
        "lead_fields",
        "create_leads",
        "lead_partition",
        "lead_action",
        "lead_lookup_field",
        "traits",
        "events",
        "page_activity",
        "lists",
        "campaigns",
        "merge_on_alias",
        "merge_in_crm",
        "keys",
        "limits",
        "intake",
        "store_url",
        "metrics_token",
        "consent",
    }
)


class _Problems(list):
    """A list of "key.path: sentence" strings with a shorthand to add one."""

    def add(self, path: str, message: str) -> None:
        """Record one problem at a dotted key path."""
        self.append(f"{path}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_str(p: _Problems, raw: dict, key: str, pattern: re.Pattern | None, hint: str) -> None:
    value = raw.get(key)
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        p.add(key, "must be a non-empty string")
    elif pattern is not None and not pattern.match(value):
        p.add(key, hint)


def _check_bool(p: _Problems, raw: dict, key: str) -> None:
    if key in raw and not isinstance(raw[key], bool):
        p.add(key, "must be true or false")


def _check_type(p: _Problems, path: str, value: Any) -> None:
    if value not in FIELD_TYPES:
        p.add(path, f"unknown type {value!r}; use one of {', '.join(sorted(FIELD_TYPES))}")


def _check_event_mapping(p: _Problems, path: str, value: Any) -> None:
    if not isinstance(value, dict):
        p.add(path, "must be an object with activity_type_id, primary and properties")
        return
    type_id = value.get("activity_type_id")
    if not _is_int(type_id) or type_id <= 0:
        p.add(f"{path}.activity_type_id", "must be a positive integer (custom activity type id)")
    primary = value.get("primary")
    if primary is not None and (not isinstance(primary, str) or not PATH_RE.match(primary)):
        p.add(f"{path}.primary", "must be a property path such as 'plan' or 'order.id'")
    props = value.get("properties", {})
    if not isinstance(props, dict):
        p.add(f"{path}.properties", "must be an object of property path -> {attribute, type}")
        return
    for prop, spec in props.items():
        ppath = f"{path}.properties.{prop}"
        if not isinstance(spec, dict) or not isinstance(spec.get("attribute"), str):
            p.add(ppath, "must be an object with an 'attribute' API name")
            continue
        if not API_NAME_RE.match(spec["attribute"]):
            p.add(f"{ppath}.attribute", "must be a Marketo attribute API name")
        _check_type(p, f"{ppath}.type", spec.get("type", "string"))
    unknown = set(value) - {"activity_type_id", "primary", "properties"}
    if unknown:
        p.add(path, f"unknown keys {sorted(unknown)}")


def _check_numbers(
    p: _Problems, section: str, raw: Any, bounds: dict, others: tuple[str, ...]
) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        p.add(section, "must be an object")
        return
    for key, value in raw.items():
        if key not in bounds:
            if key not in others:
                p.add(f"{section}.{key}", "is not a known setting")
            continue
        low, high, kind = bounds[key]
        ok = _is_int(value) if kind is int else _is_number(value)
        if not ok or not low <= value <= high:
            noun = "an integer" if kind is int else "a number"
            p.add(f"{section}.{key}", f"must be {noun} from {low} to {high}")


def _check_keys(p: _Problems, keys: Any) -> None:
    if keys is None:
        return
    if not isinstance(keys, list):
        p.add("keys", "must be a list of source keys")
        return
    seen: set[str] = set()
    for i, key in enumerate(keys):
        path = f"keys[{i}]"
        if not isinstance(key, dict):
            p.add(path, "must be an object")
            continue
        kid = key.get("id")
        if not isinstance(kid, str) or not kid:
            p.add(f"{path}.id", "must be a non-empty string")
        elif kid in seen:
            p.add(f"{path}.id", f"duplicate key id {kid!r}")
        else:
            seen.add(kid)
        kind = key.get("kind")
        if kind == "browser":
            if not isinstance(key.get("key"), str) or not key["key"]:
                p.add(f"{path}.key", "a browser key needs its public 'key' value")
            origins = key.get("allowed_origins", [])
            if not isinstance(origins, list):
                p.add(f"{path}.allowed_origins", "must be a list of origins")
            else:
                for origin in origins:
                    if origin != "*" and (
                        not isinstance(origin, str) or not ORIGIN_RE.match(origin.rstrip("/"))
                    ):
                        p.add(
                            f"{path}.allowed_origins",
                            f"{origin!r} is not an origin like https://www.example.com",
                        )
        elif kind in ("server", "admin"):
            if not isinstance(key.get("secret_hash"), str) or ":" not in key["secret_hash"]:
                p.add(
                    f"{path}.secret_hash",
                    f"a{'n' if kind == 'admin' else ''} {kind} key is stored as 'sha256:<hex>'",
                )
        else:
            p.add(f"{path}.kind", "must be 'browser', 'server' or 'admin'")


def _check_identity(p: _Problems, raw: dict) -> None:
    mode = raw.get("identify_mode")
    if mode is not None and mode not in IDENTIFY_MODES:
        p.add("identify_mode", f"must be one of {', '.join(IDENTIFY_MODES)}")
    form_id = raw.get("form_id")
    if form_id is not None and (not _is_int(form_id) or form_id <= 0):
        p.add("form_id", "must be a positive integer (the Forms 2.0 form id)")
    _check_str(p, raw, "form_base_url", FORM_BASE_RE, "must look like //app-ab12.marketo.com")
    if mode == "form":
        if form_id is None:
            p.add("identify_mode", "'form' needs form_id: set it, or use 'associate_lead' or 'off'")
        if not raw.get("form_base_url"):
            p.add("identify_mode", "'form' needs form_base_url, e.g. //app-ab12.marketo.com")
    if form_id is not None and not raw.get("form_base_url"):
        p.add("form_base_url", "form_id is set, so form_base_url is needed to load Forms 2.0")
    if mode == "associate_lead":
        if not raw.get("api_private_key"):
            p.add("identify_mode", "'associate_lead' needs api_private_key (Munchkin API key)")
        if not raw.get("secret_key"):
            p.add("identify_mode", "'associate_lead' needs secret_key to sign identity tokens")


def _check_marketo(p: _Problems, raw: dict) -> None:
    munchkin_id = raw.get("munchkin_id")
    if munchkin_id is None:
        p.add("munchkin_id", "is required (the Marketo instance id, like 123-ABC-456)")
    elif not isinstance(munchkin_id, str) or not MUNCHKIN_ID_RE.match(munchkin_id):
        p.add("munchkin_id", f"{munchkin_id!r} is not a Munchkin id like 123-ABC-456")
    for key in ("public_url", "rest_base_url", "identity_url", "munchkin_script_url"):
        _check_str(p, raw, key, HTTP_URL_RE, "must be an http(s):// URL")
    for key in ("client_id", "client_secret", "api_private_key", "secret_key", "lead_partition"):
        _check_str(p, raw, key, None, "")
    token = raw.get("metrics_token")
    if token is not None and (not isinstance(token, str) or len(token) < MIN_METRICS_TOKEN):
        p.add("metrics_token", f"must be a string of at least {MIN_METRICS_TOKEN} characters")
    options = raw.get("munchkin_options", {})
    if not isinstance(options, dict):
        p.add("munchkin_options", "must be an object")
    else:
        for name, value in options.items():
            kind = MUNCHKIN_OPTIONS.get(name)
            if kind is None:
                p.add(f"munchkin_options.{name}", "is not a Munchkin.init option")
            elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                p.add(f"munchkin_options.{name}", f"must be of type {kind.__name__}")


def _check_leads(p: _Problems, raw: dict) -> None:
    lookup = raw.get("lead_lookup")
    if lookup is not None:
        if not isinstance(lookup, list) or not lookup:
            p.add("lead_lookup", f"must be a non-empty list drawn from {list(LOOKUP_ORDER_NAMES)}")
        else:
            for name in lookup:
                if name not in LOOKUP_ORDER_NAMES:
                    p.add("lead_lookup", f"unknown lookup {name!r}")
            if len(set(map(str, lookup))) != len(lookup):
                p.add("lead_lookup", "lists a lookup twice")
    fields = raw.get("lead_fields")
    if fields is not None:
        if not isinstance(fields, dict):
            p.add("lead_fields", "must be an object with user_id and anonymous_id")
        else:
            for name, value in fields.items():
                if name not in ("user_id", "anonymous_id"):
                    p.add(f"lead_fields.{name}", "unknown id field; use user_id or anonymous_id")
                elif value is not None and (
                    not isinstance(value, str) or not API_NAME_RE.match(value)
                ):
                    p.add(f"lead_fields.{name}", "must be a Marketo field API name or null")
    if raw.get("lead_action", "createOrUpdate") not in LEAD_ACTIONS:
        p.add("lead_action", f"must be one of {', '.join(LEAD_ACTIONS)}")
    _check_str(p, raw, "lead_lookup_field", API_NAME_RE, "must be a Marketo field API name")
    traits = raw.get("traits", {})
    if not isinstance(traits, dict):
        p.add("traits", "must be an object of trait -> {field, type}")
    else:
        for trait, spec in traits.items():
            path = f"traits.{trait}"
            if not PATH_RE.match(trait):
                p.add(path, "trait must be a name or dotted path")
            if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
                p.add(path, "must be an object with a 'field' API name")
                continue
            if not API_NAME_RE.match(spec["field"]):
                p.add(f"{path}.field", "must be a Marketo field API name")
            _check_type(p, f"{path}.type", spec.get("type", "string"))


def _check_mappings(p: _Problems, raw: dict) -> None:
    events = raw.get("events", {})
    if not isinstance(events, dict):
        p.add("events", "must be an object of event name -> mapping")
    else:
        for name, spec in events.items():
            _check_event_mapping(p, f"events.{name}", spec)
    if raw.get("page_activity") is not None:
        _check_event_mapping(p, "page_activity", raw["page_activity"])
    lists = raw.get("lists")
    if lists is not None:
        folder = lists.get("folder") if isinstance(lists, dict) else None
        if not isinstance(folder, dict) or not _is_int(folder.get("id")) or folder["id"] <= 0:
            p.add("lists.folder", 'must be {"type": "Folder", "id": <positive integer>}')
        elif folder.get("type", "Folder") not in ("Folder", "Program"):
            p.add("lists.folder.type", "must be 'Folder' or 'Program'")
        if isinstance(lists, dict) and "create_missing" in lists:
            _check_bool(p, lists, "create_missing")
    campaigns = raw.get("campaigns", {})
    if not isinstance(campaigns, dict):
        p.add("campaigns", "must be an object of event -> {campaign_id, tokens}")
        return
    for name, spec in campaigns.items():
        path = f"campaigns.{name}"
        if not isinstance(spec, dict):
            p.add(path, "must be an object with campaign_id and tokens")
            continue
        if not _is_int(spec.get("campaign_id")) or spec["campaign_id"] <= 0:
            p.add(f"{path}.campaign_id", "must be a positive integer")
        tokens = spec.get("tokens", {})
        if not isinstance(tokens, dict):
            p.add(f"{path}.tokens", "must be an object of {{my.token}} -> property path")
            continue
        for token in tokens:
            if not TOKEN_NAME_RE.match(token):
                p.add(f"{path}.tokens", f"{token!r} is not a token name like {{{{my.plan}}}}")


def _check_operations(p: _Problems, raw: dict) -> None:
    _check_numbers(p, "limits", raw.get("limits"), LIMIT_BOUNDS, ("quota_reset_tz",))
    limits = raw.get("limits") or {}
    if isinstance(limits, dict) and "quota_reset_tz" in limits:
        try:
            ZoneInfo(str(limits["quota_reset_tz"]))
        except (ZoneInfoNotFoundError, ValueError):
            p.add("limits.quota_reset_tz", f"{limits['quota_reset_tz']!r} is not a time zone")
    _check_numbers(p, "intake", raw.get("intake"), INTAKE_BOUNDS, ("browser_rate_per_ip",))
    intake = raw.get("intake") or {}
    rate = intake.get("browser_rate_per_ip") if isinstance(intake, dict) else None
    if rate is not None and (not isinstance(rate, str) or not RATE_RE.match(rate)):
        p.add("intake.browser_rate_per_ip", "must look like '60/minute' (second, minute or hour)")
    store = raw.get("store_url")
    if store is not None and (
        not isinstance(store, str) or not store.startswith(("sqlite:///", "postgresql://"))
    ):
        p.add("store_url", "must start with sqlite:/// or postgresql://")
    elif isinstance(store, str) and store.startswith("postgresql://") and not postgres_installed():
        p.add("store_url", POSTGRES_EXTRA_MISSING)
    hold = raw.get("anonymous_hold_days")
    if hold is not None and (not _is_number(hold) or hold <= 0):
        p.add("anonymous_hold_days", "must be a positive number of days")
    for key in (
        "send_track_server_side",
        "track_anonymous",
        "create_leads",
        "merge_on_alias",
        "merge_in_crm",
    ):
        _check_bool(p, raw, key)


def validate(raw: Any) -> list[str]:
    """Return every problem with a raw settings document, as "path: sentence"; [] means valid."""
    p = _Problems()
    if not isinstance(raw, dict):
        return ["(root): the settings file must hold a JSON object"]
    for key in sorted(set(raw) - TOP_LEVEL_KEYS):
        p.add(key, "is not a known setting")
    _check_marketo(p, raw)
    _check_identity(p, raw)
    _check_leads(p, raw)
    _check_mappings(p, raw)
    _check_keys(p, raw.get("keys"))
    _check_operations(p, raw)
    check_consent(raw.get("consent"), p.add)
    return list(p)
