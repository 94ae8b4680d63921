"""The HTTP server: a quart-trio app served by hypercorn's trio worker."""

from __future__ import annotations

from collections.abc import Sequence

import hypercorn.trio.tcp_server as _tcp_server
import trio
from hypercorn.config import Config
from hypercorn.events import Event
from hypercorn.trio import serve
from quart_trio import QuartTrio

from afactors.channel import Route

_original_protocol_send = _tcp_server.TCPServer.protocol_send


async def _shielded_protocol_send(self: _tcp_server.TCPServer, event: Event) -> None:
    # quart-trio runs hypercorn's connection bookkeeping from an already-cancelled task; without the shield
    # keep-alive timeouts, `Connection: close` and graceful shutdown all misbehave (see docs/architecture.md).
    with trio.CancelScope(shield=True):
        await _original_protocol_send(self, event)


_tcp_server.TCPServer.protocol_send = _shielded_protocol_send  # type: ignore[method-assign]


def build_app(routes: Sequence[Route]) -> QuartTrio:
    """A Quart app with every channel route registered."""
    app = QuartTrio("afactors")
    app.config["MAX_CONTENT_LENGTH"] = 16 << 20
    app.config["RESPONSE_TIMEOUT"] = None
    for i, route in enumerate(routes):
        endpoint = f"r{i}_{getattr(route.view, '__name__', 'view')}"
        if route.websocket:
            app.add_websocket(route.rule, endpoint, route.view)
        else:
            app.add_url_rule(route.rule, endpoint, route.view, methods=list(route.methods))
    return app


def server_config(host: str, port: int, graceful_timeout: float) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = 75.0
    return config


async def serve_app(
    app: QuartTrio,
    config: Config,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set, then close gracefully; reports the bound URLs when listening."""
    await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
