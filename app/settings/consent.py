"""The `consent` settings section: browser consent mode, category names and server-side checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

CONSENT_MODES = ("none", "opt_in", "opt_out")

# The gateway's own categories: what the loader asks `gateway.consent({...})` about.
GATEWAY_CATEGORIES = ("analytics", "marketing")

CATEGORY_NAME_RE = re.compile(r"^[A-Za-z0-9_.:\- ]{1,64}$")

CONSENT_KEYS = frozenset({"mode", "categories", "required", "honor_gpc", "tcf_purposes"})

# IAB TCF v2.2 defines purposes 1 to 11; a consent manager reports consent per purpose.
TCF_PURPOSES = range(1, 12)
# What each gateway category needs from a TCF consent manager, every purpose consented. Both
# store a cookie on the device (1). Analytics measures content (8) and counts audiences (9);
# marketing builds a profile of the visitor (3, the Marketo lead's activity history) and uses it
# to choose what to show or send them (4). A site whose legal basis differs says so.
DEFAULT_TCF_PURPOSES: Mapping[str, tuple[int, ...]] = {
    "analytics": (1, 8, 9),
    "marketing": (1, 3, 4),
}


@dataclass(frozen=True)
class ConsentSettings:
    """How the site asks for consent and which categories Marketo needs.

    `categories` maps each gateway category to the names a consent manager or Segment uses
    for it (OneTrust's `C0004`, Cookiebot's `marketing`...); the gateway's own name always
    counts too. `required` lists the gateway categories that must be granted for Marketo.
    """

    mode: str = "none"
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    required: tuple[str, ...] = ("marketing",)
    honor_gpc: bool = True
    tcf_purposes: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: dict(DEFAULT_TCF_PURPOSES)
    )

    def names_for(self, category: str) -> tuple[str, ...]:
        """Return every name that stands for a gateway category, its own first."""
        return (category, *(n for n in self.categories.get(category, ()) if n != category))

    def granted(self, preferences: Mapping[str, Any]) -> bool:
        """Tell whether a `categoryPreferences` object grants every required category.

        A required category is granted when one of its names is `true`; a name absent or any
        other value is no consent (Segment's rule: only what the visitor accepted counts).
        """
        return all(
            any(preferences.get(name) is True for name in self.names_for(category))
            for category in self.required
        )


def check_consent(raw: Any, add: Any) -> None:
    """Report the problems of a raw `consent` section through `add(path, sentence)`."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        add("consent", 'must be an object such as {"mode": "opt_in"}')
        return
    for key in sorted(set(raw) - CONSENT_KEYS):
        add(f"consent.{key}", "is not a known setting")
    if raw.get("mode", "none") not in CONSENT_MODES:
        add("consent.mode", f"must be one of {', '.join(CONSENT_MODES)}")
    categories = raw.get("categories", {})
    if not isinstance(categories, dict):
        add("consent.categories", "must be an object of category -> list of names")
    else:
        for name, names in categories.items():
            path = f"consent.categories.{name}"
            if name not in GATEWAY_CATEGORIES:
                add(path, f"unknown category; use {' or '.join(GATEWAY_CATEGORIES)}")
            elif not isinstance(names, list) or not all(
                isinstance(n, str) and CATEGORY_NAME_RE.match(n) for n in names
            ):
                add(path, "must be a list of category names (letters, digits, _ . : -)")
    required = raw.get("required", ["marketing"])
    if not isinstance(required, list) or not required:
        add("consent.required", f"must be a non-empty list drawn from {list(GATEWAY_CATEGORIES)}")
    else:
        for name in required:
            if name not in GATEWAY_CATEGORIES:
                add("consent.required", f"unknown category {name!r}")
    if "honor_gpc" in raw and not isinstance(raw["honor_gpc"], bool):
        add("consent.honor_gpc", "must be true or false")
    _check_tcf_purposes(raw, required if isinstance(required, list) else [], add)


def _check_tcf_purposes(raw: Mapping[str, Any], required: list[Any], add: Any) -> None:
    """Report problems of `consent.tcf_purposes`, including a required category it leaves out."""
    if "tcf_purposes" not in raw:
        return
    purposes = raw["tcf_purposes"]
    if not isinstance(purposes, dict):
        add(
            "consent.tcf_purposes",
            'must be an object of category -> TCF purpose ids, e.g. {"marketing": [1, 3, 4]},'
            " or {} to not read TCF",
        )
        return
    for name, ids in purposes.items():
        path = f"consent.tcf_purposes.{name}"
        if name not in GATEWAY_CATEGORIES:
            add(path, f"unknown category; use {' or '.join(GATEWAY_CATEGORIES)}")
        elif (
            not isinstance(ids, list)
            or not ids
            or not all(_is_int(i) and i in TCF_PURPOSES for i in ids)
            or len(set(ids)) != len(ids)
        ):
            add(
                path,
                f"must be a non-empty list of distinct TCF purpose ids"
                f" {TCF_PURPOSES.start} to {TCF_PURPOSES.stop - 1}",
            )
    if purposes:
        for name in required:
            if name in GATEWAY_CATEGORIES and name not in purposes:
                add(
                    "consent.tcf_purposes",
                    f"names no purposes for the required category {name!r}, so a TCF consent"
                    " manager could never allow tracking; add them, or set tcf_purposes to {}"
                    " to not read TCF",
                )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_consent(raw: Mapping[str, Any] | None) -> ConsentSettings:
    """Build `ConsentSettings` from a section `check_consent` accepted."""
    raw = raw or {}
    return ConsentSettings(
        mode=raw.get("mode", "none"),
        categories={k: tuple(v) for k, v in (raw.get("categories") or {}).items()},
        required=tuple(raw.get("required") or ("marketing",)),
        honor_gpc=raw.get("honor_gpc", True),
        tcf_purposes={
            k: tuple(v) for k, v in raw.get("tcf_purposes", DEFAULT_TCF_PURPOSES).items()
        },
    )
