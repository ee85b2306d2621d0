"""A loopback HTTP proxy in front of the gateway that injects the faults real networks have.

The first event POSTs it sees are answered, in order: 503 (never forwarded), 429 with
Retry-After (never forwarded), and a lost reply (forwarded, the gateway stores it, then the
connection is closed before any answer). Everything else passes through unchanged. It records
each POST body (decompressed) so a test can list every messageId a client ever sent.
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# The faults, in the order the first POSTs get them.
FAULTS = ("503", "429", "lost")

# Seconds the injected 429 asks the client to wait.
RETRY_AFTER_S = 1

# Bound on one forwarded request, so a wedged gateway fails the test instead of hanging it.
UPSTREAM_TIMEOUT_S = 30


class _Handler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib name
        """Pass preflights through: the gateway answers CORS itself."""
        self._forward(b"")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        """Inject the next fault, or forward."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(self.path, self.headers, body)
        fault = self.server.next_fault()
        if fault == "503":
            self._answer(503, {"Content-Type": "text/plain"}, b"upstream unavailable")
        elif fault == "429":
            headers = {"Content-Type": "text/plain", "Retry-After": str(RETRY_AFTER_S)}
            self._answer(429, headers, b"slow down")
        elif fault == "lost":
            self._forward(body, reply=False)
        else:
            self._forward(body)

    def _cors(self) -> dict[str, str]:
        """Let a page read an injected answer, as a real edge proxy in front of it would."""
        origin = self.headers.get("Origin")
        if origin is None:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": "Retry-After",
        }

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in {**headers, **self._cors()}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body: bytes, reply: bool = True) -> None:
        upstream = http.client.HTTPConnection(
            self.server.upstream_host, self.server.upstream_port, timeout=UPSTREAM_TIMEOUT_S
        )
        skip = {"host", "content-length", "connection", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if not reply:
            self.close_connection = True
            self.connection.shutdown(2)  # SHUT_RDWR: the client sees the reply lost
            return
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in skip:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FaultyProxy(ThreadingHTTPServer):
    """The proxy on 127.0.0.1, forwarding to `upstream` (a base URL)."""

    daemon_threads = True

    def __init__(self, upstream: str, faults: tuple[str, ...] = FAULTS) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._faults = list(faults)
        self._lock = threading.Lock()
        self.injected: list[str] = []
        self.bodies: list[tuple[str, Any]] = []
        self.labels: set[tuple[str, str]] = set()
        self._thread = threading.Thread(target=self.serve_forever, name="faulty-proxy", daemon=True)

    @property
    def url(self) -> str:
        """Return the proxy's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_fault(self) -> str | None:
        """Return the fault for this POST, or None once all were injected."""
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults.pop(0)
            self.injected.append(fault)
            return fault

    def record(self, path: str, headers: Any, body: bytes) -> None:
        """Keep a POST's path, JSON body (gunzipped) and its (Content-Type, Content-Encoding)."""
        encoding = (headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        with self._lock:
            self.labels.add((headers.get("Content-Type") or "", encoding))
            self.bodies.append((path, json.loads(body)))

    def message_ids(self) -> set[str]:
        """Return every messageId any request carried, retries included."""
        with self._lock:
            bodies = [b for _, b in self.bodies]
        return {m["messageId"] for m in _messages(bodies)}

    def paths(self) -> set[str]:
        """Return the paths clients posted to."""
        with self._lock:
            return {p for p, _ in self.bodies}

    def start(self) -> FaultyProxy:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()


def _messages(bodies: list[Any]) -> Iterator[dict[str, Any]]:
    for body in bodies:
        if isinstance(body, dict) and isinstance(body.get("batch"), list):
            yield from body["batch"]
        elif isinstance(body, dict):
            yield body
