"""Three changes to hypercorn's trio worker that cut its per-request work, same bytes on the wire (patched on import).

Profiled on the Responses hot path (docs/performance.md), hypercorn's own bookkeeping cost more CPU per request
than the turn's commit:

* The keep-alive timer. Each time a connection goes idle, `TrioSingleTask.restart` took a lock and started a
  fresh task with `nursery.start` (two context switches); each request stopped it again under the lock, a
  cancellation delivered to a task that then exits. `_IdleTask` is one task per connection that sleeps until a
  deadline: going idle sets the deadline, a request lifts it, and neither starts, cancels or wakes a task. It
  ends with the connection (`close`, called when the read loop ends: `afactors.host._server`).
* The response writes. h11 hands hypercorn the head, the body and an empty end-of-message separately, and each is
  one `send_all` under a lock in a shielded scope. A response of known length now leaves in one write: the head
  waits for the first body bytes (or the end of the message), and empty writes are skipped. A streamed response
  (no `content-length`, e.g. SSE) still sends its head at once.
* The app's messages. Each request's ASGI messages reach the app through an `AppQueue` (the same bounded memory
  channel, plus a hook): the lean front takes the body without a scheduling round per message, and the client's
  disconnect cancels a lean view directly instead of through a watcher task per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from math import inf
from typing import Any

import h11
import hypercorn.protocol.h11 as _h11_protocol
import hypercorn.trio.task_group as _task_group
import hypercorn.trio.tcp_server as _tcp_server
import trio
from hypercorn.events import RawData

from afactors.host._lean import AppQueue


class _IdleTask:
    """hypercorn's keep-alive timer (`TrioSingleTask` running `TCPServer._idle_timeout`): the idle connection is
    closed `keep_alive_timeout` seconds after it went idle, or at once when the server shuts down while it is idle.

    One task per connection waits on the server's `terminated` event in a cancel scope whose deadline is the
    keep-alive deadline while idle and infinite while a request runs; `restart`/`stop` only move that deadline.
    Their bodies never await, so they cannot interleave with each other or with the watcher's decisions.
    """

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None  # the watcher's current wait (None: no watcher running)
        self._deadline = inf  # when the idle connection is closed; inf while a request runs
        self._closed = False

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        """The connection went idle: close it after the keep-alive (`action` is the server's `_idle_timeout`)."""
        server = action.__self__  # type: ignore[attr-defined]
        if server.context.terminated.is_set():
            self._deadline = -inf  # shutting down: an idle connection closes now
        else:
            self._deadline = trio.current_time() + server.config.keep_alive_timeout
        if self._scope is not None:
            self._scope.deadline = self._deadline
        elif not self._closed:
            self._scope = trio.CancelScope(deadline=self._deadline)
            task_group._nursery.start_soon(self._watch, server)

    async def stop(self) -> None:
        """A request arrived: the connection is not idle (whatever happens meanwhile, it is not closed for it)."""
        self._deadline = inf
        if self._scope is not None:
            self._scope.deadline = inf

    def close(self) -> None:
        """The connection is done: end the watcher."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()

    async def _watch(self, server: Any) -> None:
        terminated = server.context.terminated
        try:
            while True:
                assert self._scope is not None
                with self._scope:
                    if terminated.is_set():
                        await trio.sleep_forever()  # shut down while busy: `restart` moves the deadline to now
                    else:
                        await terminated.wait()
                if self._closed:
                    return
                if self._deadline != inf and (terminated.is_set() or trio.current_time() >= self._deadline):
                    break  # idle past the keep-alive, or idle while the server shuts down
                self._scope = trio.CancelScope(deadline=self._deadline)  # busy again meanwhile: keep waiting
        finally:
            self._scope = None
        self._closed = True
        with trio.CancelScope(shield=True):
            await server._initiate_server_close()


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


async def _spawn_app(self: Any, app: Any, config: Any, scope: Any, send: Any) -> Callable[[Any], Awaitable[None]]:
    queue = AppQueue(config.max_app_queue_size)
    self._nursery.start_soon(
        _task_group._handle, app, config, scope, queue.receive, send, trio.to_thread.run_sync, trio.from_thread.run
    )
    return queue.put


_tcp_server.TrioSingleTask = _IdleTask  # type: ignore[misc,assignment]
_task_group.TaskGroup.spawn_app = _spawn_app  # type: ignore[method-assign]
_h11_protocol.H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
