"""MCP sessions in memory: who owns them, their resumable SSE streams and their running tool calls.

A session lives in this process only. After a restart its id answers 404 and the client initializes a new
one (M-05); what must outlive it, the conversation, lives in the host's store under the tool's
`session_id`, which every result hands back. Sessions idle past `idle_timeout` are dropped; at
`max_sessions` the least recently used idle one makes room.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import trio

from afactors.channel import TurnHandle
from afactors_mcp.headers import session_not_found
from afactors_mcp.jsonrpc import INTERNAL_ERROR, RequestId, RpcError
from afactors_mcp.sse import KEEPALIVE, event_id, frame


class EventLog:
    """The events of one SSE stream, numbered from 1, kept so a client that lost the stream can resume it."""

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.frames: list[bytes] = []
        self.done = False
        self._readers = trio.lowlevel.ParkingLot()

    def append(self, message: dict[str, Any]) -> None:
        self.frames.append(frame(orjson.dumps(message), event_id(self.stream, len(self.frames) + 1)))
        self._readers.unpark_all()

    def close(self) -> None:
        self.done = True
        self._readers.unpark_all()

    async def follow(self, after: int, keepalive: float) -> AsyncIterator[bytes]:
        """Every frame after number `after`, then live ones until the stream closes; a comment when idle."""
        sent = max(0, after)
        while True:
            while sent < len(self.frames):
                yield self.frames[sent]
                sent += 1
            if self.done:
                return
            # no checkpoint between the checks above and parking, so no append can slip in unseen
            with trio.move_on_after(keepalive) as idle:
                await self._readers.park()
            if idle.cancelled_caught:
                yield KEEPALIVE


class Call:
    """A running `tools/call`: its turn once submitted, and whether the client cancelled it."""

    def __init__(self) -> None:
        self.handle: TurnHandle | None = None
        self.cancelled = False


class Session:
    """One initialized client connection (`Mcp-Session-Id`)."""

    def __init__(self, id: str, tenant: str, version: str, keep_streams: int) -> None:
        self.id, self.tenant, self.version = id, tenant, version
        self.conversation = "c" + secrets.token_hex(12)
        """The tool's `session_id` when a call gives none: this connection's own conversation."""
        self.last_used = trio.current_time()
        self.logs: OrderedDict[int, EventLog] = OrderedDict()
        self.calls: dict[RequestId, Call] = {}
        self.listening = False
        """Whether a standalone GET stream is open (one at a time)."""
        self.ended = trio.Event()
        self._keep_streams = keep_streams
        self._next_stream = 1

    def new_log(self) -> EventLog:
        """A stream for a new response; the oldest finished streams beyond `keep_streams` are forgotten."""
        log = self.logs[self._next_stream] = EventLog(self._next_stream)
        self._next_stream += 1
        finished = [n for n, old in self.logs.items() if old.done]
        for n in finished[: max(0, len(self.logs) - self._keep_streams)]:
            del self.logs[n]
        return log

    @property
    def busy(self) -> bool:
        return bool(self.calls) or self.listening

    def end(self) -> list[Call]:
        """Mark the session over; its streams close and its running calls are returned to be cancelled."""
        self.ended.set()
        for log in self.logs.values():
            log.close()
        calls = list(self.calls.values())
        for call in calls:
            call.cancelled = True
        return calls


class SessionTable:
    """Every live session of one channel, by id."""

    def __init__(self, *, max_sessions: int, idle_timeout: float, keep_streams: int) -> None:
        self.max_sessions, self.idle_timeout, self.keep_streams = max_sessions, idle_timeout, keep_streams
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, tenant: str, version: str) -> tuple[Session, list[Session]]:
        """A new session, and the sessions evicted to make room; 503 when every session is busy."""
        evicted: list[Session] = []
        while len(self._sessions) >= self.max_sessions:
            idle = next((s for s in self._sessions.values() if not s.busy), None)
            if idle is None:
                raise RpcError(503, INTERNAL_ERROR, "Too many open sessions; retry later")
            evicted.append(self._sessions.pop(idle.id))
        session = Session(secrets.token_hex(16), tenant, version, self.keep_streams)
        self._sessions[session.id] = session
        return session, evicted

    def get(self, id: str, tenant: str) -> Session:
        """The live session `id` of `tenant` (another tenant's session does not exist for it): else 404."""
        session = self._sessions.get(id)
        if session is None or session.tenant != tenant:
            raise session_not_found()
        session.last_used = trio.current_time()
        self._sessions.move_to_end(id)
        return session

    def remove(self, id: str) -> Session | None:
        return self._sessions.pop(id, None)

    def expire(self, now: float) -> list[Session]:
        """Remove and return the sessions idle for longer than `idle_timeout` (never one that is busy)."""
        stale = [s for s in self._sessions.values() if not s.busy and now - s.last_used > self.idle_timeout]
        for session in stale:
            del self._sessions[session.id]
        return stale

    def all(self) -> list[Session]:
        return list(self._sessions.values())
