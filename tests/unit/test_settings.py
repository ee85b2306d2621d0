"""Settings validation, parsing and the file store, driven through their public functions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.errors import SettingsInvalid
from app.settings import SettingsHolder
from app.settings import load
from app.settings import masked
from app.settings import parse
from app.settings import update_raw
from app.settings import validate
from app.settings import write_raw
from tests.conftest import SERVER_KEY
from tests.conftest import base_document


def doc(**overrides):
    document = base_document()
    document.update(overrides)
    return document


BAD_SETTINGS = [
    ({"munchkin_id": "123-abc-456"}, "munchkin_id: '123-abc-456' is not a Munchkin id"),
    ({"munchkin_id": None}, "munchkin_id: is required"),
    ({"identify_mode": "form"}, "identify_mode: 'form' needs form_id"),
    ({"identify_mode": "form", "form_id": 1003}, "'form' needs form_base_url"),
    ({"identify_mode": "associate_lead"}, "'associate_lead' needs api_private_key"),
    ({"identify_mode": "magic"}, "identify_mode: must be one of form, associate_lead, off"),
    ({"form_id": -4, "form_base_url": "//app-ab12.marketo.com"}, "form_id: must be a positive"),
    ({"form_id": 7}, "form_base_url: form_id is set"),
    ({"events": {"Signed Up": {"activity_type_id": 0}}}, "events.Signed Up.activity_type_id"),
    ({"events": {"Signed Up": {"activity_type_id": "100001"}}}, "must be a positive integer"),
    (
        {
            "events": {
                "X": {
                    "activity_type_id": 1,
                    "properties": {"p": {"attribute": "a", "type": "money"}},
                }
            }
        },
        "events.X.properties.p.type: unknown type 'money'",
    ),
    ({"traits": {"plan.tier": {"field": "planTier", "type": "blob"}}}, "traits.plan.tier.type"),
    ({"traits": {"plan": "planTier"}}, "traits.plan: must be an object with a 'field'"),
    ({"limits": {"calls_per_20s": 150}}, "limits.calls_per_20s: must be an integer from 1 to 100"),
    ({"limits": {"concurrency": 11}}, "limits.concurrency: must be an integer from 1 to 10"),
    ({"limits": {"batch_size": 301}}, "limits.batch_size: must be an integer from 1 to 300"),
    ({"limits": {"quota_reset_tz": "Mars/Olympus"}}, "limits.quota_reset_tz: 'Mars/Olympus'"),
    ({"limits": {"burst": 3}}, "limits.burst: is not a known setting"),
    ({"intake": {"browser_rate_per_ip": "lots"}}, "intake.browser_rate_per_ip: must look like"),
    ({"intake": {"proxy_hops": -1}}, "intake.proxy_hops: must be an integer from 0 to 10"),
    ({"lead_lookup": ["email", "phone"]}, "lead_lookup: unknown lookup 'phone'"),
    ({"lead_lookup": ["email", "email"]}, "lead_lookup: lists a lookup twice"),
    ({"lead_fields": {"user_id": "user id"}}, "lead_fields.user_id: must be a Marketo field"),
    ({"client_secret": ""}, "client_secret: must be a non-empty string"),
    ({"rest_base_url": "ftp://x"}, "rest_base_url: must be an http(s):// URL"),
    (
        {"munchkin_options": {"asyncOnly": "yes"}},
        "munchkin_options.asyncOnly: must be of type bool",
    ),
    (
        {"munchkin_options": {"turbo": True}},
        "munchkin_options.turbo: is not a Munchkin.init option",
    ),
    ({"store_url": "mysql://x"}, "store_url: must start with sqlite:/// or postgresql://"),
    ({"campaigns": {"Buy": {"campaign_id": 5, "tokens": {"plan": "p"}}}}, "is not a token name"),
    ({"lists": {"folder": {"id": "x"}}}, "lists.folder: must be"),
    (
        {"keys": [{"id": "a", "kind": "browser", "key": "bk", "allowed_origins": ["example.com"]}]},
        "is not an origin like https://www.example.com",
    ),
    (
        {"keys": [{"id": "a", "kind": "robot"}]},
        "keys[0].kind: must be 'browser', 'server' or 'admin'",
    ),
    ({"track_anonymous": "no"}, "track_anonymous: must be true or false"),
    ({"colour": "blue"}, "colour: is not a known setting"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_SETTINGS)
def test_bad_setting_is_reported_with_path_and_sentence(overrides, message):
    problems = validate(doc(**overrides))
    assert any(message in problem for problem in problems), problems


def test_every_problem_is_reported_not_only_the_first():
    problems = validate(doc(munchkin_id="bad", limits={"concurrency": 99}, identify_mode="form"))
    assert len(problems) >= 3


def test_valid_document_has_no_problems_and_defaults_apply():
    assert validate(doc()) == []
    settings = parse(doc())
    assert settings.rest_base_url == "https://123-ABC-456.mktorest.com"
    assert settings.identity_url == "https://123-ABC-456.mktorest.com/identity"
    assert settings.identify_mode == "off"
    assert settings.limits.calls_per_20s == 90
    assert settings.intake.browser_rate == (60, 60.0)
    assert settings.lead_lookup == ("marketo_cookie", "email", "userId", "anonymousId")


def test_identify_mode_defaults_to_form_when_a_form_is_set():
    settings = parse(doc(form_id=1003, form_base_url="//app-ab12.marketo.com/"))
    assert settings.identify_mode == "form"
    assert settings.form_base_url == "//app-ab12.marketo.com"


def test_pasted_rest_suffix_is_stripped():
    settings = parse(doc(rest_base_url="https://123-ABC-456.mktorest.com/rest/"))
    assert settings.rest_base_url == "https://123-ABC-456.mktorest.com"


def test_server_key_is_found_by_secret_and_browser_key_by_value():
    settings = parse(doc())
    assert settings.server_key(SERVER_KEY).id == "key_server"
    assert settings.server_key("sk_wrong") is None
    assert settings.browser_key("bk_test_browser_key").id == "key_browser"
    assert settings.browser_key(SERVER_KEY) is None


def test_environment_wins_over_file(tmp_path: Path):
    path = tmp_path / "s.json"
    write_raw(path, doc(client_id="file-id", client_secret="file-secret"))
    settings = load(path, {"MARKETO_CLIENT_SECRET": "env-secret", "MARKETO_PRIVATE_KEY": "pk"})
    assert settings.client_secret == "env-secret"
    assert settings.client_id == "file-id"
    assert settings.api_private_key == "pk"


def test_masking_hides_every_secret():
    shown = json.dumps(
        masked(doc(client_id="abcdef123", client_secret="s3cr3t", api_private_key="pk-123"))
    )
    for secret in (
        "s3cr3t",
        "pk-123",
        "test-secret-key-not-for-production",
        "sha256:",
        "abcdef123",
    ):
        assert secret not in shown


def test_write_is_atomic_and_private(tmp_path: Path, monkeypatch):
    path = tmp_path / "s.json"
    write_raw(path, doc())
    assert os.stat(path).st_mode & 0o777 == 0o600
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_raw(path, doc(munchkin_id="999-ZZZ-999"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_update_refuses_a_change_that_adds_a_problem(tmp_path: Path):
    path = tmp_path / "s.json"
    write_raw(path, doc())
    with pytest.raises(SettingsInvalid) as info:
        update_raw(path, lambda raw: raw.update(munchkin_id="nope"))
    assert "munchkin_id" in info.value.problems[0]
    assert json.loads(path.read_text())["munchkin_id"] == "123-ABC-456"


def test_update_may_fix_one_of_several_existing_problems(tmp_path: Path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc(munchkin_id="bad", limits={"concurrency": 50})))
    update_raw(path, lambda raw: raw.update(munchkin_id="111-AAA-222"))
    assert json.loads(path.read_text())["munchkin_id"] == "111-AAA-222"


def test_holder_picks_up_a_changed_file_and_reports_a_broken_one(tmp_path: Path):
    path = tmp_path / "s.json"
    write_raw(path, doc())
    holder = SettingsHolder(path, {})
    assert holder.get().munchkin_id == "123-ABC-456"
    write_raw(path, doc(munchkin_id="222-BBB-333"))
    assert holder.get().munchkin_id == "222-BBB-333"
    path.write_text("{not json")
    assert holder.get().munchkin_id == "222-BBB-333"  # the last good settings stay in force
    assert "is not valid JSON (line 1" in (holder.problem(public=False) or "")
    fresh = SettingsHolder(path, {})  # no good settings yet: refused
    with pytest.raises(SettingsInvalid) as info:
        fresh.get()
    assert "is not valid JSON (line 1" in info.value.problems[0]


def test_holder_does_not_reparse_an_unchanged_file(tmp_path: Path):
    path = tmp_path / "s.json"
    write_raw(path, doc())
    holder = SettingsHolder(path, {})
    assert holder.get() is holder.get()
