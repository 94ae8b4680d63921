"""The HTTP server's connection handling: no CLOSE-WAIT build-up, header timeouts, a connection limit, JSON
errors outside the channels, and a listener that stays open (answering 503) while a shutdown drains."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import orjson
import trio

import afactors
from afactors.host import ServerLimits
from afactors.model import ConversationKey, Envelope, Message

REQUEST = b"GET /readiness HTTP/1.1\r\nhost: test\r\n\r\n"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def close_wait_sockets(port: int) -> int:
    """Server-side sockets on `port` in CLOSE-WAIT (state 08 in /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "08":
                count += 1
    return count


async def read_response(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection (fails after 5 s)."""
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def one_request(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(REQUEST)
    data = b""
    with trio.fail_after(5):
        while not complete(data):
            data += await stream.receive_some(65536)
    await stream.aclose()
    return data


def complete(data: bytes) -> bool:
    """Whether `data` holds a whole response (headers and a content-length body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `condition` (the kernel's socket table has no event to wait on) until true; fail after `seconds`."""
    with trio.fail_after(seconds):
        while not condition():
            await trio.sleep(0.02)


async def test_clients_that_close_after_one_request_leave_no_close_wait_sockets(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, durability="unsafe") as host:
        port = port_of(host.urls[0])
        answers: list[bytes] = []

        async def client() -> None:
            for _ in range(20):
                answers.append(await one_request(port))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(client)
        assert len(answers) == 400 and all(b" 200 " in answer for answer in answers)
        await until(lambda: close_wait_sockets(port) == 0)


async def test_connection_close_and_keep_alive_idle_still_close_and_shutdown_is_prompt(state_dir: Path) -> None:
    limits = ServerLimits(keep_alive_timeout=0.3)
    async with afactors.open_host(state_dir=state_dir, port=0, durability="unsafe", limits=limits) as host:
        port = port_of(host.urls[0])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(REQUEST.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
        assert b" 200 " in await read_response(stream)  # the server closed it: we read EOF
        await stream.aclose()
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        await idle.send_all(REQUEST)
        assert b" 200 " in await read_response(idle)  # closed after the keep-alive timeout
        await idle.aclose()
        held = await trio.open_tcp_stream("127.0.0.1", port)
        await held.send_all(REQUEST)
        data = b""
        while not complete(data):
            data += await held.receive_some(65536)
        started = trio.current_time()
    assert trio.current_time() - started < 5  # a held keep-alive connection does not hold up the shutdown
    await held.aclose()


async def test_slow_headers_get_408_and_the_connection_closes(state_dir: Path) -> None:
    limits = ServerLimits(header_timeout=0.3)
    async with afactors.open_host(state_dir=state_dir, port=0, durability="unsafe", limits=limits) as host:
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(host.urls[0]))
        await stream.send_all(b"GET /readiness HTTP/1.1\r\nhost: te")
        answer = await read_response(stream)
        await stream.aclose()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


async def test_connections_beyond_the_limit_get_503_and_the_rest_keep_working(state_dir: Path) -> None:
    limits = ServerLimits(max_connections=4)
    async with afactors.open_host(state_dir=state_dir, port=0, durability="unsafe", limits=limits) as host:
        port = port_of(host.urls[0])
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(4)]
        await trio.sleep(0.1)  # let the server accept them
        refused = await trio.open_tcp_stream("127.0.0.1", port)
        answer = await read_response(refused)
        await refused.aclose()
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer
        assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "too_many_connections"
        await idle.pop().aclose()
        with trio.fail_after(5):
            while True:
                if b" 200 " in await one_request_or_refused(port):
                    break
                await trio.sleep(0.05)
        for stream in idle:
            await stream.aclose()


async def one_request_or_refused(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(REQUEST.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
    try:
        return await read_response(stream)
    except trio.BrokenResourceError:
        return b""
    finally:
        await stream.aclose()


async def test_paths_outside_the_channels_get_json_errors(state_dir: Path) -> None:
    async with (
        afactors.open_host(state_dir=state_dir, port=0, durability="unsafe") as host,
        httpx.AsyncClient(base_url=host.urls[0]) as client,
    ):
        missing = await client.get("/no/such/path")
        wrong = await client.post("/readiness")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


async def slow_agent(messages: list[Message]) -> AsyncIterator[str]:
    await trio.sleep(1.0)
    yield "done"


async def test_the_listener_stays_open_during_the_drain_and_answers_503(state_dir: Path) -> None:
    seen: list[httpx.Response] = []
    async with trio.open_nursery() as nursery:
        async with afactors.open_host(slow_agent, state_dir=state_dir, port=0, durability="unsafe") as host:
            url = host.urls[0]
            handle = await host.system.submit(Envelope(ConversationKey("t", "c"), (Message("user", "hi"),)))

            async def probe() -> None:
                await host.shutting_down.wait()
                async with httpx.AsyncClient(base_url=url) as client:
                    seen.append(await client.get("/readiness"))

            nursery.start_soon(probe)
        reply = await handle.reply()
    assert reply.text == "done"  # the running turn finished within the drain
    assert seen and seen[0].status_code == 503 and seen[0].json()["status"] == "stopping"


async def test_a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout(state_dir: Path) -> None:
    limits = ServerLimits(header_timeout=0.3, keep_alive_timeout=60)
    async with afactors.open_host(state_dir=state_dir, port=0, durability="unsafe", limits=limits) as host:
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(host.urls[0]))
        answer = await read_response(stream)
        await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 408 ")
