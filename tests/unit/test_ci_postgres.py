"""With CI=true an unreachable PostgreSQL fails the postgres tests instead of skipping them."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port


def _run_postgres_tests(ci: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CI": ci,
        "GATEWAY_TEST_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "-m", "postgres", "tests/integration/test_postgres_store.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_unreachable_postgres_fails_under_ci():
    result = _run_postgres_tests("true")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "CI=true requires it" in result.stdout


def test_unreachable_postgres_skips_outside_ci():
    result = _run_postgres_tests("")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "skipped" in result.stdout
