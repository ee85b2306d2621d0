"""Behind the shipped nginx config, 50 slow clients do not stop the gateway answering."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import base_document
from tests.fixtures_intake import REPO
from tests.fixtures_intake import basic_auth
from tests.fixtures_intake import free_port
from tests.fixtures_intake import wait_until_up

SHIPPED = REPO / "deploy" / "nginx" / "gateway.conf"

# Slow sockets held open during the measurement, half dawdling in headers, half in a body.
SLOW_SOCKETS = 50

# Every probe must answer within this.
MAX_LATENCY_S = 1.0

# How long the probes run while the slow sockets trickle.
PROBE_WINDOW_S = 6.0


def _nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed; .ci/run installs it")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return path


@pytest.fixture
def behind_nginx(serve, tmp_path: Path) -> Iterator[str]:
    """The gateway (shipped gunicorn config) behind the shipped nginx site; yields nginx's URL."""
    nginx = _nginx()
    server = serve(base_document())
    port = free_port()
    site = SHIPPED.read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{server.port};")
    site = site.replace("/var/log/nginx/gateway.access.log", str(tmp_path / "access.log"))
    (tmp_path / "site.conf").write_text(site)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    temp.chmod(0o777)
    (tmp_path / "nginx.conf").write_text(
        f"""daemon off;
pid {tmp_path / "nginx.pid"};
error_log {tmp_path / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp_path / "site.conf"};
}}
"""
    )
    proc = subprocess.Popen(
        [nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _slow_sockets(port: int, stop: threading.Event) -> threading.Thread:
    """Open SLOW_SOCKETS connections and send one byte on each every 2 s until `stop`."""
    socks = []
    for i in range(SLOW_SOCKETS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:  # a body that never ends
            sock.sendall(
                b"POST /v1/track HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                b"Content-Length: 10000\r\n\r\n{"
            )
        else:  # headers that never end
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
        socks.append(sock)

    def trickle() -> None:
        while not stop.wait(2.0):
            for sock in socks:
                try:
                    sock.send(b"x")
                except OSError:
                    pass  # nginx timed it out: what it should do eventually
        for sock in socks:
            sock.close()

    thread = threading.Thread(target=trickle, name="slow-clients", daemon=True)
    thread.start()
    return thread


def test_fifty_slow_clients_do_not_stop_healthz_or_track(behind_nginx):
    port = int(behind_nginx.rsplit(":", 1)[1])
    stop = threading.Event()
    trickler = _slow_sockets(port, stop)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + PROBE_WINDOW_S
        with requests.Session() as session:
            while time.monotonic() < deadline:
                for method, path, kwargs in (
                    ("GET", "/healthz", {}),
                    ("POST", "/v1/track", {"json": {"userId": "u1", "event": "E"}}),
                ):
                    started = time.monotonic()
                    answer = session.request(
                        method, behind_nginx + path, headers=basic_auth(), timeout=5, **kwargs
                    )
                    latencies.append(time.monotonic() - started)
                    assert answer.status_code == 200, answer.text
    finally:
        stop.set()
        trickler.join(10)
    print(
        f"\n{len(latencies)} probes beside {SLOW_SOCKETS} slow sockets: max {max(latencies):.3f}s"
    )
    assert len(latencies) > 10
    assert max(latencies) < MAX_LATENCY_S
