"""README.md runs as written: every `sh` and `python` block, in order, against `flask demo`'s fake.

Each block runs in a fresh temporary folder (its own settings file and outbox, never the
checkout's `instance/`), as a user's terminal would: `export`s carry over to the next block.
An HTML comment on the line before a block tells this test how to run it:

- `<!-- readme-test: skip: REASON -->`: not run (it needs something this machine must not
  touch: the real Marketo, root, a PostgreSQL cluster, or the test suite itself);
- `<!-- readme-test: background until "TEXT" -->`: a server; started, then the next blocks run
  once its output shows TEXT, and it is stopped at the end.

A line ending in `# → TEXT` documents output: the block's output must contain TEXT. The
documented ports (the demo on 5000, the fake Marketo on 9100, gunicorn on 8000) are mapped to
free loopback ports, and `pip install` lines check the checkout is importable instead of
installing into the running Python.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.fixtures_intake import REPO
from tests.fixtures_intake import free_port

README = REPO / "README.md"
# A server block's start, and each foreground block, gets this long.
BLOCK_TIMEOUT_S = 60.0
# How long the delivery of the README's events may take once every block ran.
DELIVERY_DEADLINE_S = 30.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\w*)[ \t]*$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
_EXPECT = re.compile(r"#\s*→\s*(?P<text>.+?)\s*$")
_UNTIL = re.compile(r'^background until "(?P<text>[^"]+)"$')

# Bash run before each block: pip installs become a check that the checkout imports.
PRELUDE = """
python3() {
    if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "install" ]; then
        echo "(readme test: not installing; the checkout under test is on PYTHONPATH)" >&2
        "$README_PYTHON" -c "import app, flask, gunicorn, segment.analytics"
        return
    fi
    "$README_PYTHON" "$@"
}
"""


@dataclass
class Block:
    """One fenced block of the README."""

    line: int
    lang: str
    text: str
    marker: str | None

    @property
    def expected(self) -> list[str]:
        return [m.group("text") for m in map(_EXPECT.search, self.text.splitlines()) if m]


def readme_blocks(text: str) -> list[Block]:
    """Return the fenced blocks in order, with the marker on the line before each, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        indent, start = opened.group("indent"), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marked = _MARKER.match(previous)
        blocks.append(
            Block(start + 1, opened.group("lang"), "\n".join(body) + "\n",
                  marked.group("body") if marked else None)
        )  # fmt: skip
        i += 1
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.lang in ("sh", "bash", "python")]


class Session:
    """A user's terminal in a temporary folder: environment, ports and background servers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {5000: free_port(), 9100: free_port(), 8000: free_port()}
        self.demo_fake_port = free_port()
        self.env_file = root / ".readme-env"
        self.servers: list[tuple[subprocess.Popen, Path]] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETO_")}
        env = {k: v for k, v in env.items() if k not in ("GATEWAY_STORE_URL", "GATEWAY_SETTINGS")}
        env.update(
            README_PYTHON=sys.executable,
            PYTHONPATH=str(REPO),
            FLASK_APP="wsgi",
            GATEWAY_SETTINGS=str(root / "instance" / "settings.json"),
            GATEWAY_STORE_URL=f"sqlite:///{root / 'instance' / 'outbox.db'}",
            FLASK_DEMO_PORT=str(self.ports[5000]),
            FLASK_DEMO_MARKETO_PORT=str(self.demo_fake_port),
            FLASK_FAKE_MARKETO_PORT=str(self.ports[9100]),
            GATEWAY_BIND=f"127.0.0.1:{self.ports[8000]}",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        (root / "instance").mkdir()
        self.env = env
        (root / "prelude.sh").write_text(PRELUDE)

    def localise(self, text: str) -> str:
        """Map the documented loopback ports to this session's free ones."""
        for documented, port in self.ports.items():
            text = text.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{port}")
        return text

    def script(self, block: Block) -> str:
        body = self.localise(block.text)
        if block.lang == "python":
            body = f"\"$README_PYTHON\" - <<'README_PYTHON_BLOCK'\n{body}README_PYTHON_BLOCK\n"
        saved = self.env_file
        return (
            f"set -eo pipefail\nsource {self.root / 'prelude.sh'}\n"
            f"[ -f {saved} ] && source {saved}\n{body}\nexport -p > {saved}\n"
        )

    def run(self, block: Block) -> str:
        done = subprocess.run(
            ["bash", "-c", self.script(block)], cwd=self.root, env=self.env,
            capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"README.md:{block.line} failed:\n{block.text}\n{output}"
        return output

    def start(self, block: Block, until: str) -> str:
        log = self.root / f"server-{block.line}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", self.script(block)], cwd=self.root, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.servers.append((proc, log))
        deadline = time.monotonic() + BLOCK_TIMEOUT_S
        while until not in log.read_text():
            ended = proc.poll()
            assert ended is None, f"README.md:{block.line} ended ({ended}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"README.md:{block.line}:\n{log.read_text()}"
            time.sleep(0.05)  # poll interval while the server starts, not a wait for an outcome
        return log.read_text()

    def close(self) -> None:
        for proc, _ in reversed(self.servers):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the block's bash and the server it started
        for proc, _ in self.servers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_readme_blocks_are_all_run_or_skipped_with_a_reason() -> None:
    """Every runnable block either runs or carries a marker that says why it does not."""
    blocks = runnable(readme_blocks(README.read_text()))
    assert len(blocks) >= 10
    for block in blocks:
        if block.marker is None:
            continue
        kind = block.marker.split(":")[0].split(" ")[0]
        assert kind in ("skip", "background"), f"README.md:{block.line}: {block.marker}"
        if kind == "skip":
            assert len(block.marker.split(":", 1)[1].strip()) > 10, "a skip says why"
        else:
            assert _UNTIL.match(block.marker), f"README.md:{block.line}: {block.marker}"


@pytest.mark.slow
def test_readme_runs_as_written_against_the_demo(tmp_path: Path) -> None:
    """Run the README top to bottom; every command exits 0, documented output is there, and the
    events its examples send end delivered to the demo's fake Marketo, none dead."""
    session = Session(tmp_path)
    ran: list[int] = []
    try:
        for block in runnable(readme_blocks(README.read_text())):
            marker = block.marker or ""
            if marker.startswith("skip"):
                continue
            until = _UNTIL.match(marker)
            output = session.start(block, until.group("text")) if until else session.run(block)
            for text in block.expected:
                assert text in output, f"README.md:{block.line}: no {text!r} in:\n{output}"
            ran.append(block.line)
        status = _settled_status(session)
        held = requests.get(f"http://127.0.0.1:{session.demo_fake_port}/", timeout=5).json()
    finally:
        session.close()
    assert len(ran) >= 10, ran
    assert status["outbox"]["dead"] == {}, status
    assert status["outbox"]["delivered"] >= 4, status  # the SDK examples' identifies and tracks
    emails = {lead.get("email") for lead in held["leads"]["newest"]}
    assert "ann.lee@example.com" in emails, held["leads"]
    assert held["activities"]["total"] >= 2, held["activities"]  # both SDK examples' tracks
    assert held["campaign_triggers"] >= 1  # the README's `flask campaign trigger`


def _settled_status(session: Session) -> dict:
    """Poll `flask status --json` until nothing is pending or in flight."""
    deadline = time.monotonic() + DELIVERY_DEADLINE_S
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "status", "--json"], cwd=session.root,
            env=session.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        outbox = status["outbox"]
        if outbox["pending"] + outbox["in_flight"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)  # poll interval, not a wait for an outcome
