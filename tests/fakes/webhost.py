"""A loopback web server for browser tests: serves test pages and the Munchkin/forms2 stubs (the
fake Marketo's, from app/devtools/fake_marketo/assets), and records what the stubs send; plus a
WSGI wrapper that records what reaches the gateway."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from io import BytesIO
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from app.devtools.fake_marketo.web import ASSETS
from app.devtools.fake_marketo.web import FORM_POST_PATH
from app.devtools.fake_marketo.web import FORMS2_PATH
from app.devtools.fake_marketo.web import MUNCHKIN_PATH
from app.devtools.fake_marketo.web import MUNCHKIN_POST_PATH
from app.devtools.fake_marketo.web import SCRIPTS

# The stubs by URL path, as the gateway's settings point at them (one copy: the fake's).
STUBS = {path: ASSETS / name for path, name in SCRIPTS.items()}


@dataclass
class Hit:
    """One request a recorder saw."""

    kind: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    query: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """Return the body parsed as a urlencoded form."""
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


class Recorder:
    """Thread-safe list of hits that tests wait on with a deadline, never a fixed sleep."""

    def __init__(self) -> None:
        self._hits: list[Hit] = []
        self._cond = threading.Condition()

    def add(self, hit: Hit) -> None:
        """Record a hit and wake waiters."""
        with self._cond:
            self._hits.append(hit)
            self._cond.notify_all()

    def hits(self, kind: str | None = None) -> list[Hit]:
        """Return the hits so far, optionally of one kind."""
        with self._cond:
            return [h for h in self._hits if kind is None or h.kind == kind]

    def clear(self) -> None:
        """Forget every hit (between tests)."""
        with self._cond:
            self._hits.clear()

    def wait_for(
        self, predicate: Callable[[list[Hit]], bool], timeout: float = 10.0, what: str = ""
    ) -> list[Hit]:
        """Block until predicate(hits) is true; raise AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._hits)):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(h.kind, h.method, h.path) for h in self._hits]
                    raise AssertionError(f"timed out waiting for {what or predicate}: saw {seen}")
                self._cond.wait(left)
            return list(self._hits)


class RecordingMiddleware:
    """WSGI wrapper that records each request to the gateway (path, headers, body, status)."""

    def __init__(self, app: Callable, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Record the request, pass it on, and record the status once known."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = BytesIO(body)
        headers = {
            k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        hit = Hit(
            "gateway",
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", ""),
            headers,
            body,
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""))),
        )

        def recording_start_response(status: str, response_headers: list, *args: Any):
            hit.status = int(status.split()[0])
            self.recorder.add(hit)
            return start_response(status, response_headers, *args)

        return self.app(environ, recording_start_response)


class _Handler(BaseHTTPRequestHandler):
    server: WebHost

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _record(self, kind: str, body: bytes = b"") -> None:
        url = urlsplit(self.path)
        self.server.recorder.add(
            Hit(
                kind,
                self.command,
                url.path,
                dict(self.headers),
                body,
                200,
                dict(parse_qsl(url.query)),
            )
        )

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        """Serve pages and stubs; record navigations to the form's follow-up page."""
        path = urlsplit(self.path).path
        if path in STUBS:
            self._send(200, STUBS[path].read_bytes(), "text/javascript; charset=utf-8")
        elif path in self.server.files:
            self._send(200, *self.server.files[path])
        elif path in self.server.pages:
            self._send(200, self.server.pages[path].encode(), "text/html; charset=utf-8")
        elif path == "/thanks":
            self._record("followup")
            self._send(200, b"<!doctype html><title>thanks</title>", "text/html")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        """Record what the stubs post: Munchkin calls and Forms 2.0 submissions."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == MUNCHKIN_POST_PATH:
            self._record("munchkin", body)
            self._send(204, b"", "text/plain")
        elif path == FORM_POST_PATH:
            fields = dict(parse_qsl(body.decode()))
            if self.server.marketo is not None:  # the form host is "Marketo": apply the fill
                self.server.marketo.fill_form(fields)
            self._record("form", body)
            answer = {"formId": fields.get("formid"), "followUpUrl": self.server.origin + "/thanks"}
            self._send(200, json.dumps(answer).encode(), "application/json")
        else:
            self._send(404, b"not found", "text/plain")


class WebHost(ThreadingHTTPServer):
    """The test website on 127.0.0.1: pages by path, the stubs, and a recorder."""

    daemon_threads = True

    def __init__(self, recorder: Recorder | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorder = recorder or Recorder()
        self.pages: dict[str, str] = {}
        # The fake Marketo a form post fills, when a test attaches one (else posts are recorded).
        self.marketo: Any = None
        self.files: dict[str, tuple[bytes, str]] = {}
        self._thread = threading.Thread(target=self.serve_forever, name="webhost", daemon=True)

    @property
    def origin(self) -> str:
        """Return the site's origin, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add_page(self, path: str, html: str) -> str:
        """Serve `html` at `path`; return its full URL."""
        self.pages[path] = html
        return self.origin + path

    def add_file(self, path: str, body: bytes, content_type: str) -> str:
        """Serve `body` at `path` with a content type (scripts, JSON); return its full URL."""
        self.files[path] = (body, content_type)
        return self.origin + path

    def start(self) -> WebHost:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()


__all__ = ["FORMS2_PATH", "MUNCHKIN_PATH", "Hit", "Recorder", "RecordingMiddleware", "WebHost"]
