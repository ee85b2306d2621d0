"""`flask config map-event`, `map-field` and `set` check the names they write against Marketo."""

from __future__ import annotations

import json

import pytest

from app import create_app
from app.lifecycle import close as close_app
from tests.fixtures_intake import free_port


@pytest.fixture
def make_runner(write_marketo_settings, settings_path, environ):
    """Build CLI runners on settings pointing at the fake; close their apps at the end."""
    apps = []

    def make(**overrides):
        write_marketo_settings(**overrides)
        app = create_app(
            {
                "TESTING": True,
                "SETTINGS_PATH": str(settings_path),
                "GATEWAY_EMBEDDED_WORKER": False,
                "ENVIRON": environ,
            }
        )
        apps.append(app)
        return app.test_cli_runner()

    yield make
    for app in apps:
        close_app(app)


def saved(settings_path) -> dict:
    return json.loads(settings_path.read_text())


def test_wrong_attribute_in_map_event_is_refused_with_the_names_that_exist(
    make_runner, settings_path
) -> None:
    """The README's old example (amount) is refused, and the type's real attributes are listed."""
    runner = make_runner(events={})
    result = runner.invoke(
        args=["config", "map-event", "Signed Up", "--activity-id", "100001",
              "--primary", "plan", "--property", "price=amount:float"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "type signedUp has no attribute 'amount'" in result.output
    assert "its attributes: currency (string), price (currency), trialDays (integer)" in (
        result.output
    )
    assert "Marketo at http://127.0.0.1:" in result.output
    assert "--offline" in result.output
    assert saved(settings_path)["events"] == {}


def test_right_names_are_written_and_describe_answers_are_cached(
    make_runner, settings_path, fake_marketo
) -> None:
    """A correct mapping is written; a second command reads the cached describe answers."""
    runner = make_runner(events={})
    args = ["config", "map-event", "Signed Up", "--activity-id", "100001", "--primary", "plan",
            "--property", "price=price:float"]  # fmt: skip
    assert runner.invoke(args=args).exit_code == 0
    assert saved(settings_path)["events"]["Signed Up"]["properties"]["price"] == {
        "attribute": "price",
        "type": "float",
    }
    described = len(fake_marketo.calls_to("/signedUp/describe.json"))
    assert described == 1
    assert runner.invoke(args=[*args, "--property", "trialDays=trialDays:integer"]).exit_code == 0
    assert len(fake_marketo.calls_to("/signedUp/describe.json")) == described


def test_a_name_created_after_the_cached_answer_is_found_by_asking_again(
    make_runner, settings_path, fake_marketo
) -> None:
    """A miss in the cached describe answer is checked against a fresh one before refusing."""
    runner = make_runner(traits={})
    assert runner.invoke(args=["config", "map-field", "company.name", "company"]).exit_code == 0
    fake_marketo.add_field("planTier")
    result = runner.invoke(args=["config", "map-field", "plan.tier", "planTier"])
    assert result.exit_code == 0, result.output
    assert saved(settings_path)["traits"]["plan.tier"] == {"field": "planTier", "type": "string"}


def test_wrong_lead_field_is_refused_naming_a_close_match(make_runner, settings_path) -> None:
    """A typo in map-field is refused with 'did you mean' and the field list."""
    runner = make_runner(traits={})
    result = runner.invoke(args=["config", "map-field", "company.name", "compnay"])
    assert result.exit_code == 1
    assert "traits.company.name: Marketo has no lead field 'compnay'" in result.output
    assert "did you mean 'company'?" in result.output
    assert "firstName" in result.output  # the fields that exist are listed
    assert saved(settings_path)["traits"] == {}


def test_config_set_of_a_mapping_is_checked_and_offline_skips_the_check(
    make_runner, settings_path
) -> None:
    """`config set events...` is refused like map-event; `--offline` writes it unchecked."""
    runner = make_runner(events={})
    value = '{"activity_type_id": 100002, "properties": {"n": {"attribute": "nom"}}}'
    refused = runner.invoke(args=["config", "set", "events.Viewed", value])
    assert refused.exit_code == 1
    assert "events.Viewed.properties.n: type productViewed has no attribute 'nom'" in (
        refused.output
    )
    assert saved(settings_path)["events"] == {}
    written = runner.invoke(args=["config", "set", "events.Viewed", value, "--offline"])
    assert written.exit_code == 0, written.output
    assert saved(settings_path)["events"]["Viewed"]["activity_type_id"] == 100002


def test_unknown_activity_type_lists_the_types_that_exist(make_runner) -> None:
    """A wrong activity id names the instance's custom activity types."""
    runner = make_runner(events={})
    result = runner.invoke(args=["config", "map-event", "Ghost", "--activity-id", "999999"])
    assert result.exit_code == 1
    assert "no custom activity type 999999" in result.output
    assert "100001 signedUp" in result.output


def test_marketo_unreachable_writes_the_mapping_with_a_note(make_runner, settings_path) -> None:
    """No answer from Marketo is not a refusal: the mapping is written, and the note says so."""
    url = f"http://127.0.0.1:{free_port()}"
    runner = make_runner(events={}, rest_base_url=url, identity_url=f"{url}/identity")
    result = runner.invoke(args=["config", "map-event", "Signed Up", "--activity-id", "100001"])
    assert result.exit_code == 0, result.output
    assert "note: not checked against Marketo" in result.output
    assert "Signed Up" in saved(settings_path)["events"]


def test_online_validation_lists_valid_names_and_says_where_problems_come_from(
    make_runner,
) -> None:
    """`validate --online` names Marketo as the source and lists attributes beside a problem."""
    price = {"price": {"attribute": "amount", "type": "float"}}
    events = {"Signed Up": {"activity_type_id": 100001, "properties": price}}
    runner = make_runner(events=events)
    result = runner.invoke(args=["config", "validate", "--online"])
    assert result.exit_code == 1
    assert "checking the mappings against Marketo at http://127.0.0.1:" in result.output
    assert "its attributes: currency (string), price (currency)" in result.output
    assert "1 problem(s) found against Marketo at" in result.output
    assert "run once these are fixed" not in result.output


def test_offline_problems_still_say_the_marketo_checks_wait(make_runner) -> None:
    """With problems in the file, --online says the checks against Marketo did not run."""
    runner = make_runner(munchkin_id="bad")
    result = runner.invoke(args=["config", "validate", "--online"])
    assert result.exit_code == 1
    assert "found in the settings file (the checks against Marketo run once these are fixed)" in (
        result.output
    )
