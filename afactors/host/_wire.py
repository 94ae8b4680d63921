"""Two changes to hypercorn's trio worker that cut its per-request work, same bytes on the wire (patched on import).

Profiled on the Responses hot path (docs/performance.md), hypercorn's own bookkeeping cost more CPU per request
than the turn's commit:

* The keep-alive timer. Each time a connection goes idle, `TrioSingleTask.restart` takes a lock and starts a
  fresh task with `nursery.start` (two context switches); each request stops it again under the lock. `_IdleTask`
  does the same with a cancel scope and `start_soon`, no lock (its bodies never await, so they cannot interleave).
* The response writes. h11 hands hypercorn the head, the body and an empty end-of-message separately, and each is
  one `send_all` under a lock in a shielded scope. A response of known length now leaves in one write: the head
  waits for the first body bytes (or the end of the message), and empty writes are skipped. A streamed response
  (no `content-length`, e.g. SSE) still sends its head at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import h11
import hypercorn.protocol.h11 as _h11_protocol
import hypercorn.trio.tcp_server as _tcp_server
import trio
from hypercorn.events import RawData


async def _run_in(scope: trio.CancelScope, action: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await action()


class _IdleTask:
    """hypercorn's `TrioSingleTask` (one task at a time; `restart` replaces it, `stop` cancels it) without the
    lock and the `nursery.start` handshake."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        if self._scope is not None:
            self._scope.cancel()
        self._scope = trio.CancelScope()
        task_group._nursery.start_soon(_run_in, self._scope, action)

    async def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
        self._scope = None


async def _send_h11_event(self: Any, event: Any) -> None:
    try:
        data = self.connection.send(event)
    except h11.LocalProtocolError:
        if self.connection.their_state != h11.ERROR:
            raise
        return
    if isinstance(event, h11.Response) and any(name == b"content-length" for name, _ in event.headers):
        self.afactors_head = data  # sent with the body's first bytes
        return
    head = getattr(self, "afactors_head", None)
    if head is not None:
        self.afactors_head = None
        data = head + (data or b"")
    if data:
        await self.send(RawData(data=data))


_tcp_server.TrioSingleTask = _IdleTask  # type: ignore[misc,assignment]
_h11_protocol.H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
