"""Streaming load generator: C concurrent streamed Responses requests over raw sockets, one per connection.

Each connection sends one `POST /v1/responses` with `"stream": true` and reads the SSE answer until the chunked
body ends, noting when the request went out, when the first text delta arrived and when the stream ended, and how
many `response.output_text.delta` events it carried. Prints one JSON object: per-stream `first_delta_s`,
`done_s` (both from the request's send), `deltas`, `completed` (a `response.completed` event arrived), and the
run's `wall_s`. A selector loop in one thread: nothing of it depends on the server's framework.

    python -m bench.stream_client http://127.0.0.1:8000/v1/responses [-c 1] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

DELTA = b"event: response.output_text.delta"
COMPLETED = b"event: response.completed"
END = b"\r\n0\r\n\r\n"


@attrs.define
class Stream:
    """One streamed request as the client saw it."""

    sock: socket.socket
    sent: float = 0.0
    first_delta: float | None = None
    done: float | None = None
    chunks: list[bytes] = attrs.field(factory=list)
    tail: bytes = b""

    def feed(self, data: bytes, now: float) -> bool:
        """Take what was read; True once the body has ended."""
        self.chunks.append(data)
        window = self.tail + data
        if self.first_delta is None and DELTA in window:
            self.first_delta = now
        self.tail = window[-64:]
        return self.tail.endswith(END)

    def result(self) -> dict[str, object]:
        body = b"".join(self.chunks)
        return {
            "first_delta_s": None if self.first_delta is None else self.first_delta - self.sent,
            "done_s": None if self.done is None else self.done - self.sent,
            "deltas": body.count(DELTA),
            "completed": COMPLETED in body,
        }


def run(url: str, connections: int, timeout: float) -> dict[str, object]:
    """Open `connections` streams at once and read them all to their end (or `timeout`)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = json.dumps({"model": "m", "input": "hello", "stream": True}).encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    selector = selectors.DefaultSelector()
    streams = []
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        streams.append(Stream(sock))
    started = time.perf_counter()
    open_streams = connections
    for stream in streams:
        stream.sent = time.perf_counter()
        try:
            stream.sock.sendall(request)
        except OSError:  # reset before the request went out: not completed
            stream.sock.close()
            open_streams -= 1
            continue
        stream.sock.setblocking(False)
        selector.register(stream.sock, selectors.EVENT_READ, stream)
    deadline = started + timeout
    while open_streams and time.perf_counter() < deadline:
        for key, _ in selector.select(timeout=1.0):
            stream = key.data
            now = time.perf_counter()
            try:
                data = stream.sock.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError:  # reset by the server: the stream counts as not completed
                data = b""
            if not data or stream.feed(data, now):
                stream.done = now if data else None
                selector.unregister(stream.sock)
                stream.sock.close()
                open_streams -= 1
    wall = time.perf_counter() - started
    for stream in streams:
        if stream.done is None:
            stream.sock.close()
    return {"wall_s": wall, "streams": [stream.result() for stream in streams]}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run and print the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench.stream_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    json.dump(run(args.url, args.connections, args.timeout), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
