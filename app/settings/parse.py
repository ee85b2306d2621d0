"""Turn a validated settings document into the frozen `Settings` object, filling defaults."""

from __future__ import annotations

from app.settings.consent import parse_consent
from app.settings.model import DEFAULT_MUNCHKIN_SCRIPT_URL
from app.settings.model import AttributeMapping
from app.settings.model import CampaignMapping
from app.settings.model import EventMapping
from app.settings.model import FieldMapping
from app.settings.model import IntakeLimits
from app.settings.model import LeadFields
from app.settings.model import Limits
from app.settings.model import ListsSettings
from app.settings.model import Settings
from app.settings.model import SourceKey


def _strip_suffix(url: str, *suffixes: str) -> str:
    url = url.rstrip("/")
    for suffix in suffixes:
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url.rstrip("/")


def _event_mapping(spec: dict) -> EventMapping:
    props = {
        path: AttributeMapping(attribute=v["attribute"], type=v.get("type", "string"))
        for path, v in spec.get("properties", {}).items()
    }
    return EventMapping(spec["activity_type_id"], spec.get("primary"), props)


def parse(raw: dict) -> Settings:
    """Build `Settings` from a document that `validate` accepted, filling the defaults."""
    munchkin_id = raw["munchkin_id"]
    rest = _strip_suffix(raw.get("rest_base_url") or f"https://{munchkin_id}.mktorest.com", "/rest")
    identity = _strip_suffix(raw.get("identity_url") or f"{rest}/identity", "/oauth/token")
    form_base = raw.get("form_base_url")
    mode = raw.get("identify_mode") or ("form" if raw.get("form_id") else "off")
    lists = raw.get("lists")
    return Settings(
        munchkin_id=munchkin_id,
        public_url=(raw.get("public_url") or "").rstrip("/") or None,
        client_id=raw.get("client_id"),
        client_secret=raw.get("client_secret"),
        rest_base_url=_strip_suffix(rest, "/identity"),
        identity_url=identity,
        api_private_key=raw.get("api_private_key"),
        secret_key=raw.get("secret_key"),
        metrics_token=raw.get("metrics_token") or None,
        identify_mode=mode,
        form_id=raw.get("form_id"),
        form_base_url=form_base.rstrip("/") if form_base else None,
        munchkin_script_url=raw.get("munchkin_script_url") or DEFAULT_MUNCHKIN_SCRIPT_URL,
        munchkin_options=dict(raw.get("munchkin_options") or {}),
        send_track_server_side=raw.get("send_track_server_side", True),
        track_anonymous=raw.get("track_anonymous", True),
        anonymous_hold_days=float(raw.get("anonymous_hold_days", 7)),
        lead_lookup=tuple(raw.get("lead_lookup") or ()) or Settings.lead_lookup,
        lead_fields=LeadFields(**(raw.get("lead_fields") or {})),
        create_leads=raw.get("create_leads", True),
        lead_partition=raw.get("lead_partition"),
        lead_action=raw.get("lead_action", "createOrUpdate"),
        lead_lookup_field=raw.get("lead_lookup_field", "email"),
        traits={
            t: FieldMapping(v["field"], v.get("type", "string"))
            for t, v in (raw.get("traits") or {}).items()
        },
        events={name: _event_mapping(spec) for name, spec in (raw.get("events") or {}).items()},
        page_activity=_event_mapping(raw["page_activity"]) if raw.get("page_activity") else None,
        lists=ListsSettings(
            folder_id=lists["folder"]["id"],
            folder_type=lists["folder"].get("type", "Folder"),
            create_missing=lists.get("create_missing", True),
            names=dict(lists.get("names") or {}),
        )
        if lists
        else None,
        campaigns={
            name: CampaignMapping(spec["campaign_id"], dict(spec.get("tokens") or {}))
            for name, spec in (raw.get("campaigns") or {}).items()
        },
        merge_on_alias=raw.get("merge_on_alias", False),
        merge_in_crm=raw.get("merge_in_crm", False),
        keys=tuple(
            SourceKey(
                id=k["id"],
                kind=k["kind"],
                key=k.get("key"),
                secret_hash=k.get("secret_hash"),
                allowed_origins=tuple(o.rstrip("/") for o in k.get("allowed_origins", [])),
                label=k.get("label", ""),
                created=k.get("created", ""),
            )
            for k in raw.get("keys") or []
        ),
        limits=Limits(**(raw.get("limits") or {})),
        intake=IntakeLimits(**(raw.get("intake") or {})),
        store_url=raw.get("store_url"),
        consent=parse_consent(raw.get("consent")),
    )
