"""A fake Marketo REST API on a loopback port, for local development, the demo, CI and benchmarks.

It speaks the subset of Marketo's REST API the gateway uses (identity, leads, activities, lists,
campaigns, bulk import, usage stats) with Marketo's limits and error codes, over real HTTP, and
keeps everything in memory. Run it alone with `flask fake-marketo` (or
`python -m app.devtools.fake_marketo`); `GET /` lists what it holds and the calls it received, and
the `/_fake/*` endpoints let another process read or steer it. Tests use the same module through
`FakeMarketo`. Never point it at anything but 127.0.0.1: it checks no real credentials.
"""

from app.devtools.fake_marketo.core import FakeMarketo
from app.devtools.fake_marketo.state import Call
from app.devtools.fake_marketo.state import FakeClock

__all__ = ["Call", "FakeClock", "FakeMarketo"]
