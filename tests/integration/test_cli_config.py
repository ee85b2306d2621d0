"""`flask config` and `flask keys` through the CLI runner and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app import create_app
from tests.conftest import SERVER_KEY

ROOT = Path(__file__).resolve().parents[2]


def show(runner) -> dict:
    result = runner.invoke(args=["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def fresh(tmp_path: Path):
    """A CLI runner on an app whose settings file does not exist yet."""
    path = tmp_path / "instance" / "settings.json"
    app = create_app({"SETTINGS_PATH": str(path), "ENVIRON": {}, "GATEWAY_EMBEDDED_WORKER": False})
    return app.test_cli_runner(), path


def test_init_writes_a_valid_private_file_and_refuses_to_overwrite(fresh):
    runner, path = fresh
    result = runner.invoke(args=["config", "init", "--munchkin-id", "321-XYZ-654"])
    assert result.exit_code == 0, result.output
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert runner.invoke(args=["config", "validate"]).exit_code == 0
    written = json.loads(path.read_text())
    for placeholder in ("public_url", "client_id", "client_secret", "form_id", "form_base_url"):
        assert written[placeholder] is None
    again = runner.invoke(args=["config", "init"])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_commands_without_a_settings_file_say_what_to_do(fresh):
    runner, _ = fresh
    result = runner.invoke(args=["config", "show"])
    assert result.exit_code == 1
    assert "run `flask config init` first" in result.output
    assert "Traceback" not in result.output


ROUND_TRIP = [
    ("public_url", "https://track.example.com", "https://track.example.com"),
    ("munchkin_id", "111-AAA-222", "111-AAA-222"),
    ("client_id", "cid-1234567", None),
    ("client_secret", "very-secret", "********"),
    ("api_private_key", "munchkin-private", "********"),
    ("rest_base_url", "https://111-AAA-222.mktorest.com", "https://111-AAA-222.mktorest.com"),
    ("identity_url", "https://id.example.com/identity", "https://id.example.com/identity"),
    ("form_base_url", "//app-ab12.marketo.com", "//app-ab12.marketo.com"),
    ("form_id", "1003", 1003),
    ("identify_mode", "form", "form"),
    ("munchkin_script_url", "http://127.0.0.1:9/m.js", "http://127.0.0.1:9/m.js"),
    ("munchkin_options", '{"cookieAnon": false}', None),
    ("munchkin_options.apiOnly", "true", True),
    ("munchkin_options.cookieAnon", "false", False),
    ("send_track_server_side", "false", False),
    ("track_anonymous", "false", False),
    ("anonymous_hold_days", "3", 3.0),
    ("lead_lookup", '["email", "userId"]', ["email", "userId"]),
    ("lead_fields.user_id", "userId", "userId"),
    ("lead_fields.anonymous_id", "anonymousId", "anonymousId"),
    ("create_leads", "false", False),
    ("lead_partition", "Europe", "Europe"),
    ("lead_action", "createOnly", "createOnly"),
    ("lead_lookup_field", "userId", "userId"),
    ("page_activity", '{"activity_type_id": 100002, "primary": "url"}', None),
    ("lists", '{"folder": {"type": "Folder", "id": 31}, "create_missing": true}', None),
    ("campaigns.Buy", '{"campaign_id": 2001, "tokens": {"{{my.plan}}": "plan"}}', None),
    ("merge_on_alias", "true", True),
    ("merge_in_crm", "true", True),
    ("limits.calls_per_20s", "50", 50),
    ("limits.concurrency", "4", 4),
    ("limits.daily_quota", "10000", 10000),
    ("limits.quota_reset_tz", "Europe/Paris", "Europe/Paris"),
    ("limits.batch_size", "100", 100),
    ("limits.batch_wait_s", "0.5", 0.5),
    ("limits.timeout_s", "10", 10),
    ("limits.max_attempts", "5", 5),
    ("intake.max_event_bytes", "16384", 16384),
    ("intake.max_batch_bytes", "256000", 256000),
    ("intake.browser_rate_per_ip", "10/second", "10/second"),
    ("intake.dedupe_window_h", "12", 12),
    ("store_url", "sqlite:////tmp/elsewhere.db", "sqlite:////tmp/elsewhere.db"),
]


def test_text_keys_keep_values_that_look_like_numbers(runner, settings_path):
    """`config set client_id 12345` stores the text "12345"; numeric keys still get numbers."""
    assert runner.invoke(args=["config", "set", "client_id", "12345"]).exit_code == 0
    assert runner.invoke(args=["config", "set", "anonymous_hold_days", "3"]).exit_code == 0
    written = json.loads(settings_path.read_text())
    assert written["client_id"] == "12345" and written["anonymous_hold_days"] == 3


def test_every_key_round_trips_through_set_and_show(runner):
    for key, value, _ in ROUND_TRIP:
        result = runner.invoke(args=["config", "set", key, value])
        assert result.exit_code == 0, (key, result.output)
    shown = show(runner)
    for key, _, expected in ROUND_TRIP:
        if expected is None:
            continue
        node = shown
        for part in key.split("."):
            node = node[part]
        assert node == expected, key
    assert shown["client_id"] == "cid-…"
    assert shown["page_activity"]["activity_type_id"] == 100002
    assert shown["lists"]["folder_id"] == 31
    assert shown["campaigns"]["Buy"]["tokens"] == {"{{my.plan}}": "plan"}


def test_set_rejects_an_invalid_value_and_leaves_the_file_alone(runner, settings_path):
    before = settings_path.read_bytes()
    result = runner.invoke(args=["config", "set", "limits.concurrency", "64"])
    assert result.exit_code == 1
    assert "limits.concurrency: must be an integer from 1 to 10" in result.output
    assert settings_path.read_bytes() == before


def test_unset_restores_the_default(runner):
    runner.invoke(args=["config", "set", "limits.batch_size", "10"])
    assert runner.invoke(args=["config", "unset", "limits.batch_size"]).exit_code == 0
    assert show(runner)["limits"]["batch_size"] == 300
    missing = runner.invoke(args=["config", "unset", "limits.batch_size"])
    assert missing.exit_code == 1
    assert "is not set" in missing.output


def test_map_and_unmap_event(runner):
    result = runner.invoke(
        args=[
            "config", "map-event", "Signed Up", "--activity-id", "100001", "--primary", "plan",
            "--property", "price=amount:float", "--property", "order.id=orderId",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    mapping = show(runner)["events"]["Signed Up"]
    assert mapping["activity_type_id"] == 100001
    assert mapping["primary"] == "plan"
    assert mapping["properties"]["price"] == {"attribute": "amount", "type": "float"}
    assert mapping["properties"]["order.id"] == {"attribute": "orderId", "type": "string"}
    assert runner.invoke(args=["config", "unmap-event", "Signed Up"]).exit_code == 0
    assert show(runner)["events"] == {}
    assert runner.invoke(args=["config", "unmap-event", "Signed Up"]).exit_code == 1


def test_map_event_rejects_a_bad_property_spec(runner):
    result = runner.invoke(
        args=["config", "map-event", "X", "--activity-id", "1", "--property", "nope"]
    )
    assert result.exit_code == 1
    assert "PROP=ATTRIBUTE[:TYPE]" in result.output


def test_map_and_unmap_field(runner):
    ok = runner.invoke(args=["config", "map-field", "plan.tier", "planTier", "--type", "string"])
    assert ok.exit_code == 0, ok.output
    assert show(runner)["traits"]["plan.tier"] == {"field": "planTier", "type": "string"}
    bad = runner.invoke(args=["config", "map-field", "plan", "planTier", "--type", "blob"])
    assert bad.exit_code == 2
    assert runner.invoke(args=["config", "unmap-field", "plan.tier"]).exit_code == 0
    assert show(runner)["traits"] == {}


def test_show_masks_secrets_including_environment_ones(tmp_path, write_settings, settings_path):
    write_settings(client_id="cid-9876543", client_secret="file-secret", api_private_key="pk-file")
    app = create_app(
        {
            "SETTINGS_PATH": str(settings_path),
            "GATEWAY_EMBEDDED_WORKER": False,
            "ENVIRON": {"MARKETO_CLIENT_SECRET": "env-secret-value"},
        }
    )
    result = app.test_cli_runner().invoke(args=["config", "show"])
    assert result.exit_code == 0
    for secret in ("file-secret", "env-secret-value", "pk-file", "cid-9876543", "test-secret-key"):
        assert secret not in result.output
    assert "********" in result.output


def test_corrupt_json_gives_one_clear_line(runner, settings_path):
    settings_path.write_text('{"munchkin_id": ')
    result = runner.invoke(args=["config", "validate"])
    assert result.exit_code == 1
    assert "is not valid JSON (line 1, column 17" in result.output
    assert "Traceback" not in result.output


def test_validate_prints_every_problem(runner, settings_path):
    settings_path.write_text(json.dumps({"munchkin_id": "x", "limits": {"concurrency": 0}}))
    result = runner.invoke(args=["config", "validate"])
    assert result.exit_code == 1
    assert "munchkin_id:" in result.output
    assert "limits.concurrency:" in result.output
    assert "2 problem(s)" in result.output
    online = runner.invoke(args=["config", "validate", "--online"])
    assert online.exit_code == 1
    assert "the checks against Marketo run once these are fixed" in online.output


def test_show_explains_each_key_and_prints_json_values(runner, write_settings):
    """Text output: a comment line per key, then `key = value` as JSON (what `set` accepts)."""
    write_settings(merge_on_alias=True, intake={"proxy_hops": 1})
    lines = runner.invoke(args=["config", "show"]).output.splitlines()
    at = lines.index("merge_on_alias = true")
    assert lines[at - 1] == "# alias merges the previousId lead into the userId lead"
    assert "intake.proxy_hops = 1" in lines  # one key a line: `config set intake.proxy_hops 1`
    assert "lead_partition = null" in lines
    assert max(len(line) for line in lines) < 200  # no whole section on one line


def test_validate_says_when_nothing_can_be_delivered(runner, write_settings):
    """Valid settings without Marketo credentials are accepted, with a note on what it means."""
    write_settings()
    bare = runner.invoke(args=["config", "validate"])
    assert bare.exit_code == 0
    assert "note: no Marketo credentials" in bare.output
    write_settings(client_id="cid-1", client_secret="sec-1")
    ready = runner.invoke(args=["config", "validate"])
    assert ready.exit_code == 0 and "note:" not in ready.output


def test_keys_create_list_revoke(runner, settings_path):
    made = runner.invoke(args=["keys", "create", "--kind", "server", "--label", "crm", "--json"])
    assert made.exit_code == 0, made.output
    secret = json.loads(made.stdout)["key"]
    assert secret.startswith("sk_")
    assert secret not in settings_path.read_text()
    browser = runner.invoke(
        args=["keys", "create", "--kind", "browser", "--origin", "https://www.example.com/"]
    )
    assert browser.exit_code == 0
    listed = json.loads(runner.invoke(args=["keys", "list", "--json"]).stdout)
    by_label = {row["label"]: row for row in listed}
    assert by_label["crm"]["key"] is None
    assert any(row["allowed_origins"] == ["https://www.example.com"] for row in listed)
    plain = runner.invoke(args=["keys", "list"]).output
    assert secret not in plain and SERVER_KEY not in plain
    key_id = by_label["crm"]["id"]
    assert runner.invoke(args=["keys", "revoke", key_id]).exit_code == 0
    assert key_id not in runner.invoke(args=["keys", "list"]).output
    assert runner.invoke(args=["keys", "revoke", key_id]).exit_code == 1


def test_browser_key_needs_an_origin(runner):
    result = runner.invoke(args=["keys", "create", "--kind", "browser"])
    assert result.exit_code == 1
    assert "--origin" in result.output


def test_concurrent_sets_from_two_processes_lose_no_write(settings_path, write_settings):
    write_settings()
    env = dict(os.environ, GATEWAY_SETTINGS=str(settings_path), GATEWAY_EMBEDDED_WORKER="0")

    def run(key: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "config", "map-field", key, key],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
        ).returncode

    names = [f"trait{i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(run, names))
    assert codes == [0] * len(names)
    traits = json.loads(settings_path.read_text())["traits"]
    assert sorted(traits) == sorted(names)
