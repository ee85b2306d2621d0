"""The loader's pure parts: compaction, the REST → SOAP field map, and the size budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from app.browser.fields import REST_TO_SOAP
from app.browser.fields import field_map
from app.browser.loader import compact
from app.browser.loader import library_source
from app.settings import parse

BENCH = Path(__file__).resolve().parents[2] / "bench" / "loader_size.py"


def settings_with(**raw):
    """Return parsed settings with the given extra keys."""
    return parse({"munchkin_id": "123-ABC-456", **raw})


def test_compact_drops_comments_and_indentation_only():
    """Full-line comments and indentation go; code, strings and line breaks stay."""
    source = (
        "/* head */\n(function () {\n  // why\n  var a = '//x'; // tail\n\n  return a;\n})();\n"
    )
    assert compact(source) == "(function () {\nvar a = '//x'; // tail\nreturn a;\n})();"


def test_served_library_keeps_every_statement():
    """Compaction removes no code line from static/gateway.js (it is not a minifier)."""
    source = library_source()
    code = [
        line.strip()
        for line in source.splitlines()
        if line.strip() and not line.strip().startswith(("//", "/*"))
    ]
    assert compact(source).splitlines() == code
    assert "var VERSION = '" in compact(source)


@pytest.mark.parametrize(
    ("rest", "soap"),
    [
        ("email", "Email"),
        ("firstName", "FirstName"),
        ("postalCode", "PostalCode"),
        ("dateOfBirth", "DateofBirth"),
        ("gender", "MarketoSocialGender"),
        ("sicCode", "SICCode"),
        ("linkedInId", "MarketoSocialLinkedInId"),
        ("billingCity", "BillingCity"),
    ],
)
def test_standard_fields_use_soap_names(rest, soap):
    """The §7.5 table, including its irregular names."""
    assert REST_TO_SOAP[rest] == soap
    assert field_map(settings_with())[rest] == soap


def test_field_map_adds_segment_aliases_and_custom_traits():
    """Nested Segment traits and mapped custom traits reach their SOAP (or API) names."""
    mapping = field_map(
        settings_with(traits={"plan.tier": {"field": "planTier"}, "jobTitle": {"field": "title"}})
    )
    assert mapping["address.city"] == "City" and mapping["company.name"] == "Company"
    assert mapping["birthday"] == "DateofBirth"
    assert mapping["plan.tier"] == "planTier"
    assert mapping["jobTitle"] == "Title"


def test_loader_size_is_within_budget():
    """Print the gzipped sizes (goal 2 KB) and hold them to the tracked budget."""
    spec = importlib.util.spec_from_file_location("loader_size", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    sizes = bench.measure()
    print(
        f"gateway.js served: {sizes['library_gzip']} B gzip (budget {bench.LIBRARY_GZIP_BUDGET}),"
        f" loader: {sizes['loader_gzip']} B gzip (budget {bench.LOADER_GZIP_BUDGET}),"
        f" goal {bench.GOAL_GZIP}"
    )
    assert sizes["library_gzip"] <= bench.LIBRARY_GZIP_BUDGET
    assert sizes["loader_gzip"] <= bench.LOADER_GZIP_BUDGET
    assert sizes["library_gzip"] < sizes["source_gzip"]
