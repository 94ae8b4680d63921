"""The HTTP server: a quart-trio app served by hypercorn's trio worker, with connection limits.

Three changes to hypercorn's trio `TCPServer` (patched once, on import), all for a bounded socket table:

* `protocol_send` runs shielded: quart-trio runs hypercorn's connection bookkeeping from an already-cancelled
  task, and without the shield keep-alive timeouts, `Connection: close` and graceful shutdown misbehave. (Its
  keep-alive updates never wait, see `_wire._IdleTask`, so only its writes and closes open the shielded scope.)
* `_read_data` closes the connection as soon as the peer has closed its end (EOF) and no response is left to
  send, instead of parking it for `keep_alive_timeout` in CLOSE-WAIT; it also answers 408 and closes when a
  client takes longer than `header_timeout` to send a request's headers, counted from its first byte, or from
  the connection's opening for its first request (slowloris, idle connections that never send anything).
* `run` refuses connections beyond `max_connections` with a 503 and closes them at once, so a flood of idle
  connections cannot use up the process's file descriptors.

`_wire` patches two more places for speed (same behaviour); `LeanFront` (`_lean`) sits in front of Quart.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from contextlib import suppress
from math import inf
from typing import Any

import attrs
import hypercorn.trio.tcp_server as _tcp_server
import orjson
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio import serve
from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from afactors.channel import Route
from afactors.host import _wire  # noqa: F401  (patches hypercorn's per-request work on import)
from afactors.host._lean import ASGIApp, LeanFront, Message, Receive, Send

_FD_RESERVE = 256
"""File descriptors kept free of connections by the default `max_connections` (store, logs, outbound calls)."""


def default_max_connections() -> int:
    """The soft `RLIMIT_NOFILE` minus a reserve, at least 64 (768 under the common 1,024 limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(64, soft - _FD_RESERVE)


@attrs.frozen
class ServerLimits:
    """Connection and request limits of the HTTP server (`open_host(limits=...)`, CLI flags).

    `keep_alive_timeout`: an idle keep-alive connection is closed after this many seconds (longer than common
    load balancers' 60 s so they close first). `header_timeout`: a request's headers must arrive within this
    many seconds of its first byte (else 408 and close). `body_timeout`: the whole body must arrive within this
    many seconds (else the channel answers 408). `max_connections`: open connections at most (None: the fd limit
    minus a reserve); more are answered 503 and closed. `backlog`: the listen queue. `max_body_bytes`: the
    largest request body (413 above it). `lean`: serve routes' `lean` views in front of Quart (False: every
    request through Quart, to compare the two).
    """

    keep_alive_timeout: float = 75.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int | None = None
    backlog: int = 1024
    max_body_bytes: int = 16 << 20
    lean: bool = True


class ServerConfig(Config):
    """hypercorn's `Config` plus what the patched `TCPServer` reads."""

    header_timeout: float = 10.0
    max_connections: int = 1024
    open_connections: int = 0
    refused_connections: int = 0


_JSON_CLOSE = b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n"
_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n" + _JSON_CLOSE + b"\r\n%s"
_HEADER_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\n" + _JSON_CLOSE + b"\r\n%s"


def _raw_error(template: bytes, message: str, code: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "server_error", "code": code}})
    return template % (len(body), body)


_original_protocol_send = _tcp_server.TCPServer.protocol_send
_original_run = _tcp_server.TCPServer.run


async def _protocol_send(self: Any, event: Event) -> None:
    if isinstance(event, Updated):
        self.afactors_busy = not event.idle
        self.afactors_headers_since = None
        if not (event.idle and getattr(self, "afactors_eof", False)):
            await _original_protocol_send(self, event)  # `_IdleTask.restart`/`stop`: they never await
            return
    with trio.CancelScope(shield=True):
        if isinstance(event, RawData):  # the original's write, without its own second shielded scope
            lock = self.send_lock
            try:
                lock.acquire_nowait()  # (free but for concurrent HTTP/2 streams: no scheduling round for it)
            except trio.WouldBlock:
                await lock.acquire()
            try:
                await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
            finally:
                lock.release()
        elif isinstance(event, Updated):
            # The peer closed its end and the last response is out: close now, not after the keep-alive.
            await self.idle_task.stop()
            await self._initiate_server_close()
        else:
            await _original_protocol_send(self, event)


async def _receive_by(stream: Any, deadline: float) -> bytes | bytearray | None:
    """The next bytes from `stream`; None if `deadline` passed first (no cancel scope when there is none)."""
    if deadline == inf:
        return await stream.receive_some(_tcp_server.MAX_RECV)  # type: ignore[no-any-return]
    with trio.move_on_at(deadline):
        return await stream.receive_some(_tcp_server.MAX_RECV)  # type: ignore[no-any-return]
    return None


async def _read_data(self: Any) -> None:
    header_timeout = getattr(self.config, "header_timeout", inf)
    self.afactors_headers_since = trio.current_time()  # a new connection owes its first request's headers
    while True:
        since = getattr(self, "afactors_headers_since", None)
        deadline = inf if since is None else since + header_timeout
        try:
            data = await _receive_by(self.stream, deadline)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            break
        if data is None:
            await _send_and_forget(
                self.stream, _raw_error(_HEADER_TIMEOUT, "request headers took too long", "request_timeout")
            )
            break
        if data and since is None and not getattr(self, "afactors_busy", False):
            self.afactors_headers_since = trio.current_time()
        await self.protocol.handle(RawData(bytes(data)))
        if data == b"":
            break
    self.afactors_eof = True
    with trio.CancelScope(shield=True):
        await self.protocol.handle(Closed())
        if not getattr(self, "afactors_busy", False):
            await self.idle_task.stop()
    self.idle_task.close()  # nothing more is read: the keep-alive watcher ends (`_wire._IdleTask`)


async def _send_and_forget(stream: Any, data: bytes) -> None:
    with trio.move_on_after(1.0), suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)


async def _run(self: Any) -> None:
    config = self.config
    if not isinstance(config, ServerConfig):
        await _original_run(self)
        return
    if config.open_connections >= config.max_connections:
        config.refused_connections += 1
        try:
            await _send_and_forget(
                self.stream, _raw_error(_REFUSED, "too many open connections", "too_many_connections")
            )
        finally:
            await self.stream.aclose()
        return
    config.open_connections += 1
    try:
        await _original_run(self)
    finally:
        config.open_connections -= 1


_tcp_server.TCPServer.protocol_send = _protocol_send  # type: ignore[method-assign]
_tcp_server.TCPServer._read_data = _read_data  # type: ignore[method-assign]
_tcp_server.TCPServer.run = _run  # type: ignore[method-assign]


def _http_error(error: HTTPException) -> Response:
    """Any request the routes do not take (unknown path, wrong method): a JSON error, not Quart's HTML."""
    code = error.code or 500
    name = (error.name or "error").lower().replace(" ", "_")
    kind = "invalid_request_error" if code < 500 else "server_error"
    body = {"error": {"message": error.description or error.name, "type": kind, "code": name}}
    headers = {"content-type": "application/json"}
    if code == 405 and getattr(error, "valid_methods", None):
        headers["allow"] = ", ".join(error.valid_methods or ())  # type: ignore[attr-defined]
    return Response(orjson.dumps(body), code, headers)


NODE_HEADER = b"x-afactors-node"
"""The response header naming the cluster node that answered (a host with a `node_id`)."""


def _naming_node(app: ASGIApp, node_id: str) -> ASGIApp:
    """`app` with `X-Afactors-Node: <node_id>` on every HTTP response it starts (lean or Quart, errors included)."""
    header = (NODE_HEADER, node_id.encode())

    async def named(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await app(scope, receive, send_named)

    return named


def build_app(routes: Sequence[Route], limits: ServerLimits | None = None, node_id: str | None = None) -> ASGIApp:
    """A Quart app with every channel route registered, behind the routes' lean views (unless `limits.lean`);
    with a `node_id`, every HTTP response names it in `X-Afactors-Node`."""
    limits = limits or ServerLimits()
    app = QuartTrio("afactors")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.config["BODY_TIMEOUT"] = limits.body_timeout
    app.config["RESPONSE_TIMEOUT"] = None
    app.register_error_handler(HTTPException, _http_error)
    for i, route in enumerate(routes):
        endpoint = f"r{i}_{getattr(route.view, '__name__', 'view')}"
        if route.websocket:
            app.add_websocket(route.rule, endpoint, route.view)
        else:
            app.add_url_rule(route.rule, endpoint, route.view, methods=list(route.methods))
    front: ASGIApp = LeanFront(app, routes, limits.max_body_bytes) if limits.lean else app
    return front if node_id is None else _naming_node(front, node_id)


def server_config(host: str, port: int, graceful_timeout: float, limits: ServerLimits | None = None) -> ServerConfig:
    limits = limits or ServerLimits()
    config = ServerConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = limits.keep_alive_timeout
    config.header_timeout = limits.header_timeout
    config.max_connections = limits.max_connections or default_max_connections()
    config.backlog = limits.backlog
    return config


async def serve_app(
    app: ASGIApp,
    config: Config,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set, then close gracefully; reports the bound URLs when listening."""
    await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
