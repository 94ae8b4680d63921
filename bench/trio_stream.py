"""The trio floor, streaming: `bench.bare_stream`'s events on raw trio sockets, with no HTTP framework at all.

One task per connection reads one HTTP/1.1 request by hand, then writes `bench.bare_stream.events` (the same
frames, the same pace) as chunked transfer encoding, one `send_all` per event, and closes the connection. A request
without `"stream": true` (the harness's readiness probe) gets `bench.bare_server.response_object` as JSON. Nothing
here parses HTTP properly: it is the least any trio server must spend per event (a `trio.sleep` wake-up and one
socket write), the floor under the bare stack, so it says what one core can stream at all.

    python -m bench.trio_stream --port 8000 [--deltas 10000] [--interval-ms 0]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial

import orjson
import trio

from bench import bare_server, bare_stream

_HEAD_LIMIT = 65_536


async def _read_request(stream: trio.SocketStream) -> bytes | None:
    """The body of one request (Content-Length framing only); None if the client went away first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(_HEAD_LIMIT)
        if not chunk or len(data) > _HEAD_LIMIT:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = await stream.receive_some(_HEAD_LIMIT)
        if not chunk:
            return None
        body += chunk
    return body


async def _handle(deltas: int, interval: float, stream: trio.SocketStream) -> None:
    async with stream:
        body = await _read_request(stream)
        if body is None:
            return
        request = orjson.loads(body or b"{}")
        if request.get("stream") is not True:
            answer = orjson.dumps(bare_server.response_object(str(request.get("model", "m")), "hello"))
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            await stream.send_all(head + b"content-length: %d\r\n\r\n" % len(answer) + answer)
            return
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"connection: close\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        async for frame in bare_stream.events(str(request.get("model", "m")), deltas, interval):
            await stream.send_all(b"%x\r\n%s\r\n" % (len(frame), frame))
        await stream.send_all(b"0\r\n\r\n")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve until SIGINT (or SIGTERM, which ends the process)."""
    args = bare_stream.parse_args("bench.trio_stream", __doc__, argv)
    handler = partial(_handle, args.deltas, args.interval_ms / 1000.0)
    trio.run(partial(trio.serve_tcp, handler, args.port, host=args.host, backlog=4096))
    return 0


if __name__ == "__main__":
    sys.exit(main())
