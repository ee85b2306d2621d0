"""Passwords inside database URLs: masked for output and logs, found for scrubbing text."""

from __future__ import annotations

import re
from urllib.parse import unquote

# user:PASSWORD@ (up to the last @, so a password holding / or ? is still covered) and
# password=VALUE or sslpassword=VALUE (the client key's passphrase) in the query string.
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^:@/]*:)(.*)@")
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&]*", re.IGNORECASE)


def redact(url: str, mask: str = "***") -> str:
    """Return the URL with any password replaced, for logs, output and error messages."""
    url = _USERINFO_PASSWORD.sub(lambda m: m.group(1) + mask + "@", url, count=1)
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + mask, url)


def passwords_in(url: str) -> list[str]:
    """Return the password a URL carries, as written and percent-decoded (for scrubbing)."""
    found = [m.group(2) for m in [_USERINFO_PASSWORD.match(url)] if m and m.group(2)]
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(url)]
    return sorted({v for p in found if p for v in (p, unquote(p))}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """Return text with the URL's password removed (driver errors quote the conninfo)."""
    for secret in passwords_in(url):
        text = text.replace(secret, "***")
    return text
