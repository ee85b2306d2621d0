"""WSGI entry for multi-node tests: the real gateway with the claim lease taken from the env.

Production keeps the dispatcher's long default lease; a test that kills a node wants its claims
to come back within seconds, so it sets GATEWAY_TEST_LEASE_S.
"""

from __future__ import annotations

import os

from app import create_app

app = create_app({"GATEWAY_LEASE_S": float(os.environ.get("GATEWAY_TEST_LEASE_S", "600"))})
