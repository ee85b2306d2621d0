"""WSGI front of the fake Marketo: recording, scripts, token checks, limits and routing."""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from app.devtools.fake_marketo import web
from app.devtools.fake_marketo.browse import browse
from app.devtools.fake_marketo.state import MESSAGES
from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import Call
from app.devtools.fake_marketo.state import error_envelope

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo

logger = logging.getLogger(__name__)

# Marketo answers 413 above 1 MB of body (10 MB for bulk files) and 414 above 8 KB of URI.
MAX_BODY_BYTES = 1024 * 1024
MAX_BULK_BODY_BYTES = 10 * 1024 * 1024
MAX_URI_BYTES = 8 * 1024
IDENTITY_PATH = "/identity/oauth/token"
JSON_TYPE = "application/json;charset=UTF-8"

Handler = Callable[..., Any]
Routes = list[tuple[str, dict[str, Handler]]]


class Req:
    """What a route handler sees: effective method, merged parameters and body helpers."""

    def __init__(self, request: Request, method: str, args: MultiDict, forced: dict[int, str]):
        self.request = request
        self.method = method
        self.args = args
        self.forced = forced

    def json_body(self) -> Any:
        """Return the JSON body, raising 612 for a wrong content type and 609 for bad JSON."""
        if self.request.mimetype != "application/json":
            raise ApiError("612", f"Content type '{self.request.mimetype}' not supported")
        try:
            return json.loads(self.request.get_data(as_text=True) or "null")
        except ValueError as exc:
            raise ApiError("609") from exc

    def json_object(self) -> dict[str, Any]:
        """Return the JSON body, which must be an object (609 otherwise)."""
        body = self.json_body()
        if not isinstance(body, dict):
            raise ApiError("609", "JSON body must be an object")
        return body

    def form(self) -> MultiDict:
        """Return form parameters of an Asset-API style call (612 when JSON was sent)."""
        if self.request.mimetype == "application/json":
            raise ApiError("612", "Asset API expects application/x-www-form-urlencoded")
        merged = MultiDict(self.args)
        merged.update(self.request.form)
        return merged


class Dropped(ConnectionResetError):
    """Raised to make werkzeug end a connection without writing a response."""


class FakeApp:
    """The WSGI callable; all state lives on the owning FakeMarketo."""

    def __init__(self, fake: FakeMarketo, routes: Routes) -> None:
        self.fake = fake
        self.routes = [(re.compile(pattern + r"\Z"), methods) for pattern, methods in routes]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Serve one request."""
        request = Request(environ)
        if request.path.startswith("/_fake/"):
            return control(self.fake, request)(environ, start_response)
        if request.path == "/" and request.method in ("GET", "HEAD"):
            return json_response(browse(self.fake), indent=2)(environ, start_response)
        page = web.respond(self.fake, request)
        if page is not None:  # scripts, form posts, Munchkin calls, the demo page: not REST
            return page(environ, start_response)
        call = self._record(request)
        try:
            response = self._handle(request, call)
        except Dropped:
            call.code = "dropped"
            raise
        finally:
            request.close()  # closes spooled multipart uploads
        self._finish(call, response)
        return response(environ, start_response)

    def _record(self, request: Request) -> Call:
        raw = request.get_data(cache=True)
        parsed: Any = None
        if request.mimetype == "application/json":
            try:
                parsed = json.loads(raw or b"null")
            except ValueError:
                parsed = None
        form = request.form.to_dict() if request.mimetype.startswith("application/x-www") else {}
        call = Call(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(),
            query_lists=request.args.to_dict(flat=False),
            headers=dict(request.headers),
            json=parsed,
            form=form,
            body=raw if self.fake.keep_bodies else b"",
            time=self.fake.clock.now(),
        )
        self.fake._append_call(call)
        return call

    def _finish(self, call: Call, response: Response) -> None:
        call.ended = self.fake.clock.now()
        call.status = response.status_code
        if response.mimetype != "application/json":
            return
        body = json.loads(response.get_data())
        call.response = body
        if isinstance(body, dict) and body.get("success") is False and body.get("errors"):
            call.code = str(body["errors"][0].get("code"))
        rows = body.get("result") if isinstance(body, dict) else None
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("status") == "skipped":
                for reason in row.get("reasons") or row.get("errors") or []:
                    call.record_codes.append(str(reason.get("code")))
        self.fake._count_outcome(call)

    def _handle(self, request: Request, call: Call) -> Response:
        bulk = request.path.startswith("/bulk/")
        limit = MAX_BULK_BODY_BYTES if bulk else self.fake.max_body_bytes
        if len(call.body) > limit:
            return Response("Request Entity Too Large", status=413, mimetype="text/plain")
        raw_uri = request.environ.get("RAW_URI") or request.full_path
        if len(raw_uri.encode()) > MAX_URI_BYTES:
            return Response("Request-URI Too Long", status=414, mimetype="text/plain")
        method, args = request.method, request.args
        if method == "POST" and args.get("_method"):
            method = args["_method"].upper()
            args = MultiDict([(k, v) for k, v in args.items(multi=True) if k != "_method"])
            args.update(request.form)
        if request.path == IDENTITY_PATH:
            self._wait_latency()
            scripted = self._scripted(request, self.fake._pop_script(request.path, request.method))
            return scripted or self._token(request, method, args)
        level = self.fake._enter()
        try:
            self._wait_latency()  # in flight meanwhile, as a slow real call would be
            return self._api(request, method, args, level)
        finally:
            self.fake._leave()

    def _wait_latency(self) -> None:
        if self.fake.latency_s > 0:
            self.fake._stopping.wait(self.fake.latency_s)

    def _scripted(self, request: Request, outcome: dict[str, Any] | None) -> Response | None:
        if not outcome:
            return None
        if outcome.get("delay"):
            self.fake._stopping.wait(float(outcome["delay"]))
        gate = outcome.get("wait_for")  # a threading.Event (in-process tests only)
        while gate is not None and not gate.wait(0.02) and not self.fake._stopping.is_set():
            pass
        if outcome.get("drop"):
            self._drop(request)
        if outcome.get("cut"):
            self._cut(request)
        if outcome.get("hang"):
            self._hang(request)
        if outcome.get("http_status"):
            status = int(outcome["http_status"])
            response = Response(outcome.get("body", f"HTTP {status}"), status=status)
            for name, value in (outcome.get("headers") or {}).items():
                response.headers[name] = str(value)
            return response
        if outcome.get("code"):
            code = str(outcome["code"])
            message = outcome.get("message") or MESSAGES.get(code, "Scripted error")
            return json_response(error_envelope(code, message))
        return None

    def _drop(self, request: Request) -> None:
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise Dropped("scripted drop")

    def _cut(self, request: Request) -> None:
        """Start a 200 answer, then drop the connection halfway through its body."""
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            )
            try:
                sock.sendall(head + b'{"requestId":"cut#1","success":true,"result":[{"id"')
            except OSError:
                pass
        self._drop(request)

    def _hang(self, request: Request) -> None:
        sock = request.environ.get("werkzeug.socket")
        while not self.fake._stopping.wait(0.02):
            if sock is None:
                continue
            try:
                if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    break  # the client gave up (timeout) and closed the connection
            except BlockingIOError:
                continue
            except OSError:
                break
        self._drop(request)

    def _token(self, request: Request, method: str, args: MultiDict) -> Response:
        params = MultiDict(args)
        if method == "POST":
            params.update(request.form)
        elif method != "GET":
            return json_response({"error": "invalid_request"}, status=405)
        if params.get("grant_type") != "client_credentials":
            body = {"error": "unsupported_grant_type", "error_description": "Unsupported grant"}
            return json_response(body, status=400)
        if (params.get("client_id"), params.get("client_secret")) != (
            self.fake.client_id,
            self.fake.client_secret,
        ):
            body = {"error": "invalid_client", "error_description": "Bad client credentials"}
            return json_response(body, status=401)
        token, expires_in = self.fake._issue_token()
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": "api-gateway@example.com",
        }
        return json_response(body)

    def _api(self, request: Request, method: str, args: MultiDict, level: int) -> Response:
        outcome = self.fake._pop_script(request.path, request.method)
        scripted = self._scripted(request, outcome)
        if scripted is not None:
            return scripted
        forced = {int(k): str(v) for k, v in ((outcome or {}).get("record_errors") or {}).items()}
        reservation = None
        try:
            handler, params = self._route(request.path, method)
            self.fake._check_concurrency(level)
            self._authenticate(request, args)
            reservation = self.fake._reserve()
            self._time_out_big_calls(request)
            with self.fake.lock:
                result = handler(self.fake, Req(request, method, args, forced), **params)
        except ApiError as exc:
            if reservation is not None:
                self.fake._release(reservation)
            return json_response(error_envelope(exc.code, exc.message))
        if isinstance(result, Response):
            return result
        return json_response(result)

    def _time_out_big_calls(self, request: Request) -> None:
        """Answer 604 when the fake is told big calls time out and this one carries too many."""
        limit = self.fake.timeout_above_records
        if limit is None or request.mimetype != "application/json":
            return
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            return
        records = body.get("input") if isinstance(body, dict) else None
        if isinstance(records, list) and len(records) > limit:
            raise ApiError("604")

    def _route(self, path: str, method: str) -> tuple[Handler, dict[str, str]]:
        for pattern, methods in self.routes:
            match = pattern.match(path)
            if match:
                if method not in methods:
                    raise ApiError("605", f"Method '{method}' not supported for {path}")
                return methods[method], match.groupdict()
        raise ApiError("610")

    def _authenticate(self, request: Request, args: MultiDict) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None and "access_token" in args:
            if not self.fake.allow_query_token:
                raise ApiError("601", "Access token in query parameter not accepted")
            token = args["access_token"]
        if not token:
            raise ApiError("601", "Access token not specified")
        self.fake._check_token(token)


def control(fake: FakeMarketo, request: Request) -> Response:
    """Serve the ``/_fake/*`` endpoints other processes use to read and steer the fake."""
    body = request.get_json(silent=True) or {}
    path, method = request.path, request.method
    if path == "/_fake/calls" and method == "GET":
        summary = fake.summary()
        if request.args.get("detail"):
            summary["calls"] = [
                {
                    "method": c.method,
                    "path": c.path,
                    "status": c.status,
                    "code": c.code,
                    "time": c.time,
                    "record_codes": c.record_codes,
                }
                for c in list(fake.calls)
            ]
        return json_response(summary)
    if path == "/_fake/reset" and method == "POST":
        fake.reset(reset_data=bool(body.get("reset_data")))
        return json_response({"ok": True})
    if path == "/_fake/script" and method == "POST":
        fake.script(str(body["path"]), *body.get("outcomes", []))
        return json_response({"ok": True})
    if path == "/_fake/expire_token" and method == "POST":
        fake.expire_token()
        return json_response({"ok": True})
    if path == "/_fake/advance" and method == "POST":
        fake.clock.advance(float(body.get("seconds", 0)))
        return json_response({"ok": True, "now": fake.clock.now()})
    return json_response({"error": "unknown control endpoint"}, status=404)


def json_response(body: Any, status: int = 200, indent: int | None = None) -> Response:
    """Serialise ``body`` the way Marketo does (JSON, UTF-8)."""
    return Response(json.dumps(body, indent=indent), status=status, content_type=JSON_TYPE)


def new_token() -> str:
    """Return an opaque ``{uuid}:{pod}`` access token."""
    return f"{uuid.uuid4()}:ab"
