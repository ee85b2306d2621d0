"""Settings: typed model, validation, and the file they live in (stdlib only)."""

from __future__ import annotations

from typing import Any

from app.settings.model import FIELD_TYPES
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
from app.settings.model import hash_secret
from app.settings.parse import parse
from app.settings.schema import validate
from app.settings.store import SettingsFileError
from app.settings.store import SettingsHolder
from app.settings.store import load
from app.settings.store import masked
from app.settings.store import read_raw
from app.settings.store import update_raw
from app.settings.store import write_raw

#: Where `create_app` keeps the SettingsHolder; read it through `settings_holder`.
EXTENSION = "settings"


def settings_holder(app: Any) -> SettingsHolder:
    """Return the app's settings holder (any object with Flask's `extensions` mapping)."""
    return app.extensions[EXTENSION]


__all__ = [
    "FIELD_TYPES",
    "AttributeMapping",
    "CampaignMapping",
    "EventMapping",
    "FieldMapping",
    "IntakeLimits",
    "LeadFields",
    "Limits",
    "ListsSettings",
    "Settings",
    "SettingsFileError",
    "SettingsHolder",
    "SourceKey",
    "hash_secret",
    "load",
    "settings_holder",
    "masked",
    "parse",
    "read_raw",
    "update_raw",
    "validate",
    "write_raw",
]
