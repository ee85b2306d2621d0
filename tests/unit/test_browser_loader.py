"""The loader's pure parts: compaction, the REST → SOAP field map, and the size budget."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

from app.browser.fields import REST_TO_SOAP
from app.browser.fields import field_map
from app.browser.loader import BUILD_PATH
from app.browser.loader import IDENTIFY_BUILD_PATH
from app.browser.loader import IDENTIFY_PATH
from app.browser.loader import LIBRARY_PATH
from app.browser.loader import build_source_sha
from app.browser.loader import compact
from app.browser.loader import library_source
from app.browser.loader import served_library
from app.settings import parse

VERSION = re.compile(r"var VERSION = '([^']+)'")
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


@pytest.mark.parametrize(
    ("source_path", "build_path"),
    [(LIBRARY_PATH, BUILD_PATH), (IDENTIFY_PATH, IDENTIFY_BUILD_PATH)],
)
def test_committed_build_is_made_from_the_current_source(source_path, build_path):
    """Each static/*.min.js names the SHA-256 of its source; edit a source, run .ci/build-js."""
    source = library_source(source_path)
    build = build_path.read_text(encoding="utf-8")
    assert build_source_sha(build) == hashlib.sha256(source.encode()).hexdigest(), (
        f"static/{build_path.name} is stale: run `bash .ci/build-js`"
    )
    served = served_library(source_path, build_path)
    assert served == build.split("\n", 1)[1].strip()
    assert len(served) < len(compact(source))
    if source_path == LIBRARY_PATH:
        assert VERSION.search(source).group(1) in served


def test_a_stale_or_missing_build_falls_back_to_the_compacted_source(tmp_path):
    """Browsers never get a build of some other source: the compacted source serves instead."""
    source = tmp_path / "gateway.js"
    source.write_text("/* lib */\n(function () {\n  var VERSION = '9.9.9';\n})();\n")
    build = tmp_path / "gateway.min.js"
    assert served_library(source, build) == "(function () {\nvar VERSION = '9.9.9';\n})();"
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    header = f"// gateway.min.js: built by .ci/build-js from gateway.js sha256={sha}; do not edit"
    build.write_text(header + "\n!function(){}();\n")
    assert served_library(source, build) == "!function(){}();"
    source.write_text("/* lib */\n(function () {\n  var VERSION = '9.9.10';\n})();\n")
    assert served_library(source, build) == "(function () {\nvar VERSION = '9.9.10';\n})();"


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
    assert sizes["loader_gzip"] <= bench.LOADER_GZIP_BUDGET <= bench.GOAL_GZIP
    assert sizes["identify_gzip"] <= bench.IDENTIFY_GZIP_BUDGET
    assert sizes["tcf_gzip"] <= bench.TCF_GZIP_BUDGET
    assert sizes["library_gzip"] < sizes["source_gzip"]
