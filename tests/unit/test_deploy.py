"""deploy/: the systemd unit and the Dockerfile run the README's production command."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_intake import REPO

UNIT = REPO / "deploy" / "systemd" / "gateway.service"
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def readme_production_command() -> list[str]:
    """The gunicorn command of the README's production block (comment stripped)."""
    readme = (REPO / "README.md").read_text()
    [line] = [
        line for line in readme.splitlines() if line.startswith("gunicorn -c python:app.gunicorn")
    ]
    return shlex.split(line, comments=True)


def unit_settings() -> dict[str, list[str]]:
    """Each `Key=value` of the unit, in order (systemd allows repeated keys)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_readme_command_on_loopback_with_a_fresh_metrics_folder() -> None:
    """ExecStart is the README's gunicorn command; bind stays loopback; multiproc dir per start."""
    unit = unit_settings()
    [start] = unit["ExecStart"]
    argv = shlex.split(start)
    assert Path(argv[0]).name == "gunicorn" and argv[1:] == readme_production_command()[1:]
    env = dict(e.split("=", 1) for e in unit["Environment"])
    assert env["GATEWAY_BIND"].startswith("127.0.0.1:")
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/run/" + unit["RuntimeDirectory"][0]
    assert unit["User"] == ["gateway"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["Restart"] == ["on-failure"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd itself parses the unit (its gunicorn path replaced by one that exists here)."""
    text = UNIT.read_text().replace("/opt/gateway/.venv/bin/gunicorn", sys.executable)
    unit = tmp_path / "gateway.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "gateway.service" not in done.stderr, done.stderr  # no warning about our unit


def test_the_dockerfile_runs_the_readme_command_and_checks_health() -> None:
    """CMD is the README's command; it installs with pip; the health check reads /healthz."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    [cmd] = [line for line in instructions if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == readme_production_command()
    assert any(i.startswith("RUN python3 -m pip install") for i in instructions)
    [health] = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in health
    assert "USER gateway" in instructions  # not root
    assert any(i.startswith("FROM python:3.11") for i in instructions)
