"""`PeerClient`, the forwarder's HTTP/1.1 client, against real loopback servers (raw trio sockets, so each test
controls exactly what the peer sends and when it closes): keep-alive reuse, a connection the peer closed while
idle, the connection limit, lines as they arrive, and a clear `PeerError` for every way a peer can fail."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import h11
import pytest
import trio

from afactors.cluster._peers import PeerClient, PeerError

Handler = Callable[[trio.SocketStream, int], Awaitable[None]]


async def read_request(stream: trio.SocketStream, conn: h11.Connection) -> bytes | None:
    """The body of the next request on `conn`; None once the client closed the connection."""
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body
        elif isinstance(event, h11.ConnectionClosed):
            return None


def answer(conn: h11.Connection, body: bytes, status: int = 200) -> bytes:
    head = h11.Response(status_code=status, headers=[("content-length", str(len(body))), ("retry-after", "3")])
    return conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server running `handler(stream, connection number)`; its URL and the connections it got."""
    connections: list[int] = []

    async def accept(stream: trio.SocketStream) -> None:
        connections.append(len(connections))
        with trio.move_on_after(10):
            await handler(stream, connections[-1])

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, accept, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", connections
        nursery.cancel_scope.cancel()


async def echo(stream: trio.SocketStream, number: int) -> None:
    """Answers every request on the connection with `<connection number>:<its body>`."""
    conn = h11.Connection(h11.SERVER)
    while (body := await read_request(stream, conn)) is not None:
        await stream.send_all(answer(conn, b"%d:%s" % (number, body)))
        conn.start_next_cycle()


def client(**changes: float) -> PeerClient:
    settings = {"connect": 1.0, "silence": 1.0, "max_connections": 10, **changes}
    return PeerClient(connect=settings["connect"], silence=settings["silence"],
                      max_connections=int(settings["max_connections"]))  # fmt: skip


async def post(peers: PeerClient, url: str, body: bytes) -> tuple[int, bytes]:
    response = await peers.post(url + "/x", body, {"x-test": "1"})
    try:
        return response.status, await response.read()
    finally:
        await response.aclose()


async def test_sequential_requests_share_one_keep_alive_connection() -> None:
    peers = client()
    async with serving(echo) as (url, connections):
        answers = [await post(peers, url, b"%d" % i) for i in range(3)]
        await peers.aclose()
    assert answers == [(200, b"0:0"), (200, b"0:1"), (200, b"0:2")] and connections == [0]


async def test_an_idle_connection_the_peer_closed_is_replaced_and_the_request_still_answered() -> None:
    async def once(stream: trio.SocketStream, number: int) -> None:  # one answer per connection, then close
        conn = h11.Connection(h11.SERVER)
        body = await read_request(stream, conn)
        await stream.send_all(answer(conn, b"%d:%s" % (number, body)))
        await stream.aclose()

    peers = client()
    async with serving(once) as (url, connections):
        first = await post(peers, url, b"a")
        await trio.sleep(0.05)  # the close arrives while the connection is idle
        second = await post(peers, url, b"b")
        await peers.aclose()
    assert first == (200, b"0:a") and second == (200, b"1:b") and connections == [0, 1]


async def test_a_request_failing_on_a_reused_connection_before_an_answer_is_sent_once_more_on_a_new_one() -> None:
    async def drops_second(stream: trio.SocketStream, number: int) -> None:  # reads a second request, then hangs up
        conn = h11.Connection(h11.SERVER)
        body = await read_request(stream, conn)
        await stream.send_all(answer(conn, b"%d:%s" % (number, body)))
        conn.start_next_cycle()
        if number == 0:
            await read_request(stream, conn)
            await stream.aclose()
        else:
            await echo(stream, number)

    peers = client()
    async with serving(drops_second) as (url, connections):
        answers = [await post(peers, url, b"a"), await post(peers, url, b"b")]
        await peers.aclose()
    assert answers == [(200, b"0:a"), (200, b"1:b")] and connections == [0, 1]


async def test_lines_come_as_they_arrive_across_chunks_and_a_refusal_has_its_status_and_headers() -> None:
    release = trio.Event()

    async def chunked(stream: trio.SocketStream, number: int) -> None:
        conn = h11.Connection(h11.SERVER)
        await read_request(stream, conn)
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")])))
        await stream.send_all(conn.send(h11.Data(data=b'{"a": 1}\n\n{"b"')))
        await release.wait()
        await stream.send_all(conn.send(h11.Data(data=b": 2}\nlast")) + conn.send(h11.EndOfMessage()))
        conn.start_next_cycle()
        await read_request(stream, conn)
        await stream.send_all(answer(conn, b'{"error": {}}', status=503))

    peers = client()
    async with serving(chunked) as (url, connections):
        response = await peers.post(url + "/x", b"", {})
        lines = response.lines()
        got = [await lines.__anext__(), await lines.__anext__()]  # before the rest was sent
        release.set()
        got += [line async for line in lines]
        await response.aclose()
        refused = await peers.post(url + "/x", b"", {})
        status, retry_after, body = refused.status, refused.headers.get("retry-after"), await refused.read()
        await refused.aclose()
        await peers.aclose()
    assert got == [b'{"a": 1}', b"", b'{"b": 2}', b"last"]
    assert (status, retry_after, body) == (503, "3", b'{"error": {}}') and connections == [0]


async def test_the_connection_limit_makes_a_request_wait_for_a_connection_to_be_given_back() -> None:
    peers = client(max_connections=1)
    order: list[str] = []
    async with serving(echo) as (url, _):
        first = await peers.post(url + "/x", b"1", {})

        async def second() -> None:
            order.append("second: " + (await post(peers, url, b"2"))[1].decode())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            await trio.sleep(0.05)
            order.append("first: " + (await first.read()).decode())
            await first.aclose()
        await peers.aclose()
    assert order == ["first: 0:1", "second: 0:2"]


async def silent(stream: trio.SocketStream, number: int) -> None:
    await trio.sleep_forever()


async def not_http(stream: trio.SocketStream, number: int) -> None:
    await stream.receive_some(65536)
    await stream.send_all(b"SSH-2.0-OpenSSH\r\n\r\n")


async def cut_off(stream: trio.SocketStream, number: int) -> None:
    conn = h11.Connection(h11.SERVER)
    await read_request(stream, conn)
    await stream.send_all(conn.send(h11.Response(status_code=200, headers=[("content-length", "100")])) + b"partial")
    await stream.aclose()


@pytest.mark.parametrize(("handler", "message"), [(silent, "sent nothing"), (not_http, "not HTTP"),
                                                  (cut_off, "not HTTP")])  # fmt: skip
async def test_every_way_a_peer_fails_is_a_peer_error(handler: Handler, message: str) -> None:
    peers = client(silence=0.2)
    async with serving(handler) as (url, _):
        with pytest.raises(PeerError, match=message):
            await post(peers, url, b"x")
        await peers.aclose()


async def test_an_unreachable_peer_or_a_bad_url_is_a_peer_error() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = listener.getsockname()[1]
    peers = client()
    with pytest.raises(PeerError, match="cannot connect"):
        await post(peers, f"http://127.0.0.1:{port}", b"x")
    with pytest.raises(PeerError, match="not an http"):
        await post(peers, "https://127.0.0.1:1", b"x")
    listener.close()


async def test_at_the_connection_limit_an_idle_connection_to_another_peer_is_closed_to_make_room() -> None:
    peers = client(max_connections=1)
    async with serving(echo) as (a, to_a), serving(echo) as (b, to_b):
        answers = [await post(peers, a, b"1"), await post(peers, b, b"2"), await post(peers, a, b"3")]
        await peers.aclose()
    assert answers == [(200, b"0:1"), (200, b"0:2"), (200, b"1:3")] and to_a == [0, 1] and to_b == [0]
