"""@segment/analytics-node and @rudderstack/rudder-sdk-node (default gzip), through faults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SERVER_KEY
from tests.fixtures_compat import NODE_MODULES
from tests.fixtures_compat import npm_package

SCRIPT = Path(__file__).with_name("node_clients.js")

PACKAGES = {"segment": "@segment/analytics-node", "rudder": "@rudderstack/rudder-sdk-node"}

# Bound on one SDK run (its retries back off for a few seconds).
RUN_TIMEOUT_S = 120

USERS = [f"node-{i}" for i in range(3)]


def node() -> str:
    """Return the node binary; under CI a missing one fails, else skips."""
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed (apt-get install nodejs)")
        pytest.skip("node is not installed")
    return found


@pytest.mark.parametrize("sdk", sorted(PACKAGES))
def test_node_sdk_lands_every_event_once_through_faults(compat, sdk):
    npm_package(PACKAGES[sdk])
    config = {"sdk": sdk, "host": compat.url, "writeKey": SERVER_KEY, "users": USERS}
    run = subprocess.run(
        [node(), str(SCRIPT), json.dumps(config)],
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    compat.check(USERS, paths={"/v1/batch"})
    if sdk == "rudder":  # its default: gzip JSON labelled as a form
        assert compat.proxy.labels == {("application/x-www-form-urlencoded", "gzip")}
