"""Print the gzipped size of the browser library and of a rendered loader against the budget.

Run: `python bench/loader_size.py`. The ratio compares what browsers download (the minified
build, gzipped) with the readable source gzipped, measured in the same run.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app  # noqa: E402
from app.browser.loader import compact  # noqa: E402
from app.browser.loader import identify_module  # noqa: E402
from app.browser.loader import library_source  # noqa: E402
from app.browser.loader import render_loader  # noqa: E402
from app.browser.loader import served_library  # noqa: E402
from app.browser.loader import tcf_module  # noqa: E402
from app.settings import parse  # noqa: E402

# Tracked budgets, gzip -9 bytes, just above today's sizes; raising one is a deliberate change
# whose commit says why. The goal is 2 KB for what every page view downloads: the loader. The
# hidden-form and associateLead code and the standard REST -> SOAP field table are in the
# identify module, which only an identify that needs Marketo fetches (once, then cached); the
# IAB TCF reader is in the TCF module, which only pages with a TCF consent manager fetch.
LIBRARY_GZIP_BUDGET = 1832  # static/gateway.min.js as served (.ci/build-js); +TCF hook
LOADER_GZIP_BUDGET = 2048  # the whole loader.js: library + one key's config; at the goal now
IDENTIFY_GZIP_BUDGET = 1392  # /v1/identify.js: identify module + field table + dropCookies
TCF_GZIP_BUDGET = 416  # /v1/tcf.js: TCF module + the default purpose map
GOAL_GZIP = 2048

# A representative site: form identify, one custom trait, the default Munchkin settings.
SAMPLE_SETTINGS = {
    "munchkin_id": "123-ABC-456",
    "public_url": "https://track.example.com",
    "form_id": 1003,
    "form_base_url": "//app-ab12.marketo.com",
    "traits": {"plan.tier": {"field": "planTier", "type": "string"}},
    "keys": [{"id": "key_site", "kind": "browser", "key": "bk_0123456789abcdef"}],
}


def gz(text: str) -> int:
    """Return the gzip -9 size of text in bytes."""
    return len(gzip.compress(text.encode("utf-8"), 9))


def measure() -> dict[str, int]:
    """Return raw and gzipped sizes of the readable library, the served library and the loader."""
    source = library_source()
    settings = parse(SAMPLE_SETTINGS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.json"
        path.write_text(json.dumps(SAMPLE_SETTINGS))
        app = create_app(
            {"SETTINGS_PATH": str(path), "GATEWAY_EMBEDDED_WORKER": False, "ENVIRON": {}}
        )
        with app.app_context():
            loader = render_loader(settings, settings.keys[0], "https://track.example.com")
        for closer in app.extensions.get("closers", []):
            closer()
    return {
        "source_bytes": len(source.encode()),
        "source_gzip": gz(source),
        "compacted_gzip": gz(compact(source)),
        "library_gzip": gz(served_library()),
        "loader_bytes": len(loader.encode()),
        "loader_gzip": gz(loader),
        "identify_gzip": gz(identify_module().body),
        "tcf_gzip": gz(tcf_module(settings).body),
    }


def main() -> None:
    """Print the sizes, the ratio to the readable source, and the budget verdicts."""
    sizes = measure()
    ratio = sizes["source_gzip"] / sizes["library_gzip"]
    lines = [
        f"static/gateway.js readable: {sizes['source_bytes']} B, {sizes['source_gzip']} B gzip",
        f"library as served:          {sizes['library_gzip']} B gzip "
        f"(budget {LIBRARY_GZIP_BUDGET}); {ratio:.2f}x smaller than readable",
        f"compacted source (fallback): {sizes['compacted_gzip']} B gzip",
        f"rendered loader.js:         {sizes['loader_bytes']} B, {sizes['loader_gzip']} B gzip "
        f"(budget {LOADER_GZIP_BUDGET}, goal {GOAL_GZIP})",
        f"identify module (on demand): {sizes['identify_gzip']} B gzip "
        f"(budget {IDENTIFY_GZIP_BUDGET})",
        f"TCF module (on demand):      {sizes['tcf_gzip']} B gzip (budget {TCF_GZIP_BUDGET})",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    over = (
        sizes["library_gzip"] > LIBRARY_GZIP_BUDGET
        or sizes["loader_gzip"] > LOADER_GZIP_BUDGET
        or sizes["identify_gzip"] > IDENTIFY_GZIP_BUDGET
        or sizes["tcf_gzip"] > TCF_GZIP_BUDGET
    )
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
