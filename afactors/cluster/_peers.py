"""`PeerClient`: the HTTP/1.1 client a node forwards with, kept small because it runs once per forwarded turn.

A general client (httpx) spent more CPU per request than the forwarded turn's own work on the owner (URL merging,
cookies, auth and redirect hooks, its models, a connection pool scanned per request). This one does only what
forwarding needs: POST a body to a peer, read the answer's status and headers, then its body whole or line by line
as it arrives, over keep-alive connections reused per peer (h11 parses, trio carries the bytes).

- Every wait is bounded: `connect` seconds to open a connection, `silence` seconds for each read; past either, or
  when the connection breaks or the peer answers what is not HTTP, `PeerError`.
- A connection returns to its peer's idle set only once its answer was read to the end; an answer abandoned midway
  closes it. An idle connection the peer closed meanwhile is noticed before it is used again (it is readable), and a
  request that fails on a reused connection before any answer arrives is sent once more on a new one: every request
  a node sends a peer may be sent twice (forwarded turns carry an idempotency key; cancelling is idempotent).
- `max_connections` open connections across all peers at most (a running forwarded turn holds one); a request
  finding all of them in use waits for one, and one finding them all open but some idle closes an idle one.
"""

from __future__ import annotations

import select
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from urllib.parse import urlsplit

import h11
import trio

_READ = 65536
_IDLE_PER_PEER = 64


class PeerError(Exception):
    """A request to a peer failed: unreachable, silent past the timeout, broken off, or not HTTP."""


class _Connection:
    def __init__(self, address: tuple[str, int], stream: trio.SocketStream, borrower: object) -> None:
        self.address, self.stream, self.h11 = address, stream, h11.Connection(h11.CLIENT)
        self.borrower = borrower  # what holds its place in the client's connection limit while in use
        self.used = False

    def stale(self) -> bool:
        """The peer closed it (or sent something unasked) while it sat idle."""
        poll = select.poll()
        poll.register(self.stream.socket.fileno(), select.POLLIN)
        return bool(poll.poll(0))

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


class PeerResponse:
    """A peer's answer: `status`, `headers` (lower-case names), then the body by `read()` or `lines()`, once."""

    def __init__(self, client: PeerClient, connection: _Connection, response: h11.Response) -> None:
        self.status = response.status_code
        self.headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in response.headers}
        self._client = client
        self._connection: _Connection | None = connection
        self._ended = False

    async def _chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        while True:
            event = await self._client._next_event(connection)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._ended = True
                return
            else:
                raise PeerError(f"unexpected {type(event).__name__} in the answer")

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self._chunks()])

    async def lines(self) -> AsyncGenerator[bytes, None]:
        """The body's lines as they arrive (without their newline; a last line without one included)."""
        rest = b""
        async for chunk in self._chunks():
            *complete, rest = (rest + chunk).split(b"\n")
            for line in complete:
                yield line
        if rest:
            yield rest

    async def aclose(self) -> None:
        """Give the connection back (answer read to its end) or close it (not)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._client._release(connection, reusable=self._ended)


class PeerClient:
    """Keep-alive HTTP/1.1 connections to the peers; `post` sends one request on one of them."""

    def __init__(self, *, connect: float, silence: float, max_connections: int) -> None:
        self.connect, self.silence, self.max_connections = connect, silence, max_connections
        self._limit = trio.CapacityLimiter(max_connections)  # connections in use
        self._idle: defaultdict[tuple[str, int], list[_Connection]] = defaultdict(list)
        self._open = 0

    async def aclose(self) -> None:
        idle = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        for connection in idle:
            await self._close(connection)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PeerResponse:
        """Send `body` to `url`; the answer once its status and headers arrived (read or close it)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise PeerError(f"not an http:// URL: {url!r}")
        address = (parts.hostname, parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [("host", parts.netloc), ("content-length", str(len(body))), *headers.items()]
        request = h11.Request(method="POST", target=target, headers=head)
        while True:
            connection = await self._acquire(address)
            reused = connection.used
            connection.used = True
            try:
                await self._send(connection, request, body)
                answer = await self._next_event(connection)
            except PeerError:
                await self._release(connection, reusable=False)
                if reused:  # it failed before any answer: the peer closed it meanwhile; once more on a new one
                    continue
                raise
            except BaseException:
                await self._release(connection, reusable=False)
                raise
            if not isinstance(answer, h11.Response):
                await self._release(connection, reusable=False)
                raise PeerError(f"unexpected {type(answer).__name__} instead of an answer")
            return PeerResponse(self, connection, answer)

    async def _acquire(self, address: tuple[str, int]) -> _Connection:
        """A connection to `address` in use by the caller: an idle one, else a new one (waiting for room)."""
        borrower = object()
        await self._limit.acquire_on_behalf_of(borrower)
        try:
            idle = self._idle.get(address)
            while idle:
                connection = idle.pop()
                if not connection.stale():
                    connection.borrower = borrower
                    return connection
                await self._close(connection)
            if self._open >= self.max_connections:  # the others in use are fewer: close an idle one elsewhere
                await self._close(next(connections for connections in self._idle.values() if connections).pop(0))
            with trio.move_on_after(self.connect) as scope:
                try:
                    stream = await trio.open_tcp_stream(*address)
                except OSError as error:
                    raise PeerError(f"cannot connect to {address[0]}:{address[1]}: {error}") from None
            if scope.cancelled_caught:
                raise PeerError(f"no connection to {address[0]}:{address[1]} within {self.connect} s")
        except BaseException:
            self._limit.release_on_behalf_of(borrower)
            raise
        self._open += 1
        return _Connection(address, stream, borrower)

    async def _release(self, connection: _Connection, *, reusable: bool) -> None:
        """Give `connection` back: idle for the next request when its exchange ended cleanly, else closed."""
        self._limit.release_on_behalf_of(connection.borrower)
        state = connection.h11
        if reusable and state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            idle = self._idle[connection.address]
            if len(idle) < _IDLE_PER_PEER:
                idle.append(connection)
                return
        await self._close(connection)

    async def _close(self, connection: _Connection) -> None:
        self._open -= 1
        await connection.aclose()

    async def _send(self, connection: _Connection, request: h11.Request, body: bytes) -> None:
        state = connection.h11
        data = state.send(request) + state.send(h11.Data(data=body)) + state.send(h11.EndOfMessage())
        with trio.move_on_after(self.silence) as scope:
            try:
                await connection.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                raise PeerError(f"the connection broke: {error!r}") from None
        if scope.cancelled_caught:
            raise PeerError(f"the peer took no request for {self.silence} s")

    async def _next_event(self, connection: _Connection) -> object:
        state = connection.h11
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as error:
                raise PeerError(f"the peer's answer is not HTTP: {error}") from None
            if event is not h11.NEED_DATA:
                if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                    raise PeerError("the peer closed the connection")
                return event
            data = b""
            with trio.move_on_after(self.silence) as scope:
                try:
                    data = await connection.stream.receive_some(_READ)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                    raise PeerError(f"the connection broke: {error!r}") from None
            if scope.cancelled_caught:
                raise PeerError(f"the peer sent nothing for {self.silence} s")
            with suppress(RuntimeError):  # data after the peer closed: the next event says so
                state.receive_data(data)
