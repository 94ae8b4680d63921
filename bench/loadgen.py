"""A raw-socket HTTP/1.1 keep-alive load generator; run it as its own process (`python -m bench.loadgen`).

N connections each send POST requests back to back over one keep-alive socket (one thread, `selectors`, no
HTTP library: an httpx client saturates its own core near 1.3k req/s and would hide the servers'
differences). Every response is timed from the first byte sent to the last byte parsed; non-2xx responses and
socket errors (refused, reset, early close, timeout, malformed response) are counted, and after an error the
connection is reopened. A per-connection body function chooses each request body from the previous response
on that connection, so a client can continue its own conversation.

Body specs: `fresh` (the same new-conversation body every time), `chain` (continue with the previous
response's id as `previous_response_id`), `conversation=<id>` (every request joins conversation `<id>`), or
`package.module:factory[=arg]`, where `factory(connection_index, arg)` returns a `BodyFn`.

    python -m bench.loadgen http://127.0.0.1:8000/v1/responses --connections 50 --duration 10 --warmup 1
prints one JSON object (`LoadResult.to_json()`) on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import math
import selectors
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import attrs

REQUEST = {"model": "m", "input": "hello"}
"""The request every peer is measured with: a non-streaming Responses turn."""

_MAX_HEAD = 64 * 1024
_RECV_SIZE = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class ProtocolError(Exception):
    """The server sent something that is not a valid HTTP/1.1 response."""


@attrs.frozen
class Response:
    """One complete response: status code and body."""

    status: int
    body: bytes


@attrs.frozen
class ParsedResponse:
    """A response parsed off the front of a buffer; `consumed` bytes belong to it."""

    status: int
    body: bytes
    consumed: int
    close: bool


BodyFn = Callable[[Response | None], bytes]
"""Per-connection request-body function: previous response on this connection (None at first and after an
error) -> next request body."""

BodyFactory = Callable[[int, str], BodyFn]
"""(connection index, spec argument) -> that connection's BodyFn."""


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def fresh(connection: int, arg: str = "") -> BodyFn:
    """Every request starts a new conversation."""
    body = _json(REQUEST)
    return lambda previous: body


def chain(connection: int, arg: str = "") -> BodyFn:
    """Each request continues this connection's conversation via the previous response's `id`."""
    first = _json(REQUEST)

    def next_body(previous: Response | None) -> bytes:
        if previous is None or not 200 <= previous.status < 300:
            return first
        try:
            response_id = json.loads(previous.body)["id"]
        except (ValueError, KeyError, TypeError):
            return first
        return _json({**REQUEST, "previous_response_id": response_id})

    return next_body


def conversation(connection: int, arg: str) -> BodyFn:
    """Every request is a turn of the one conversation named by `arg`."""
    if not arg:
        raise ValueError("body spec 'conversation' needs an id: conversation=<id>")
    body = _json({**REQUEST, "conversation": arg})
    return lambda previous: body


BUILTIN_BODIES: dict[str, BodyFactory] = {"fresh": fresh, "chain": chain, "conversation": conversation}


def body_factory(spec: str) -> tuple[BodyFactory, str]:
    """Resolve a body spec (`fresh`, `chain`, `conversation=<id>`, `module:factory[=arg]`) to (factory, arg)."""
    name, _, arg = spec.partition("=")
    if name in BUILTIN_BODIES:
        return BUILTIN_BODIES[name], arg
    module_name, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"unknown body spec {spec!r}: use one of {sorted(BUILTIN_BODIES)} or module:factory")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory, arg


def _chunked_body(buf: bytes | bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `pos`: (body, end offset), or None while incomplete."""
    parts: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text!r}") from None
        pos = line_end + 2
        if size == 0:
            if buf[pos : pos + 2] == b"\r\n":
                return b"".join(parts), pos + 2
            trailer_end = buf.find(b"\r\n\r\n", pos)
            return None if trailer_end < 0 else (b"".join(parts), trailer_end + 4)
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


def parse_response(buf: bytes | bytearray, eof: bool = False) -> ParsedResponse | None:
    """Parse one HTTP/1.x response off the front of `buf`; None while incomplete.

    `eof` says the peer closed the connection, which ends a body that has neither a length nor chunking.
    Raises ProtocolError on malformed input.
    """
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > _MAX_HEAD:
            raise ProtocolError("response head larger than 64 KiB")
        return None
    lines = bytes(buf[:head_end]).split(b"\r\n")
    status_line = lines[0]
    version = status_line[:9].lower()
    if version not in (b"http/1.1 ", b"http/1.0 ") or not status_line[9:12].isdigit():
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    status = int(status_line[9:12])
    close = version == b"http/1.0 "
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise ProtocolError(f"bad content-length {value!r}") from None
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            tokens = {t.strip() for t in value.split(b",")}
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
    start = head_end + 4
    if 100 <= status < 200:
        raise ProtocolError(f"unexpected interim response {status}")
    if status in _NO_BODY_STATUSES:
        return ParsedResponse(status, b"", start, close)
    if chunked:
        decoded = _chunked_body(buf, start)
        return None if decoded is None else ParsedResponse(status, decoded[0], decoded[1], close)
    if length is not None:
        end = start + length
        return None if len(buf) < end else ParsedResponse(status, bytes(buf[start:end]), end, close)
    return ParsedResponse(status, bytes(buf[start:]), len(buf), True) if eof else None


@attrs.frozen
class Target:
    """Where requests go."""

    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse `http://host:port/path` (https is not supported)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http:// URL with a host, got {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path or "/")

    def request_head(self, body_length: int) -> bytes:
        """The request line and headers for a JSON POST of `body_length` bytes."""
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n\r\n"
        ).encode()


@attrs.frozen
class LoadConfig:
    """A load shape: `connections` clients, each sending `requests` requests or for `duration` seconds.

    With `duration`, the first `warmup` seconds are run but not measured.
    """

    url: str
    connections: int = attrs.field(validator=attrs.validators.ge(1))
    requests: int | None = None
    duration: float | None = None
    warmup: float = 0.0
    body: str = "fresh"
    timeout: float = 30.0

    def __attrs_post_init__(self) -> None:
        if (self.requests is None) == (self.duration is None):
            raise ValueError("give exactly one of requests (per connection) or duration")
        if self.warmup and self.duration is None:
            raise ValueError("warmup needs a duration")


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@attrs.frozen
class LoadResult:
    """What one load run measured. Latencies are in milliseconds, for measured responses only."""

    connections: int
    requests: int
    """Responses completed in the measured window (any status)."""
    total: int
    """Responses completed in the whole run, warmup included (for server CPU per request)."""
    non_2xx: int
    errors: int
    elapsed: float
    statuses: dict[int, int]
    error_kinds: dict[str, int]
    latencies_ms: tuple[float, ...] = attrs.field(repr=False)

    @property
    def rps(self) -> float:
        """Measured responses per second."""
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Latency percentile (nearest rank), e.g. 0.99."""
        return _percentile(sorted(self.latencies_ms), fraction)

    def to_json(self, include_latencies: bool = False) -> dict[str, object]:
        """A JSON-ready summary (the CLI's output)."""
        ordered = sorted(self.latencies_ms)
        out: dict[str, object] = {
            "connections": self.connections,
            "requests": self.requests,
            "total": self.total,
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "elapsed": self.elapsed,
            "rps": self.rps,
            "p50_ms": _percentile(ordered, 0.50),
            "p90_ms": _percentile(ordered, 0.90),
            "p99_ms": _percentile(ordered, 0.99),
            "max_ms": ordered[-1] if ordered else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_kinds": dict(sorted(self.error_kinds.items())),
        }
        if include_latencies:
            out["latencies_ms"] = list(self.latencies_ms)
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LoadResult:
        """Rebuild a result from `to_json(include_latencies=True)`."""
        return cls(
            connections=int(data["connections"]),  # type: ignore[call-overload]
            requests=int(data["requests"]),  # type: ignore[call-overload]
            total=int(data["total"]),  # type: ignore[call-overload]
            non_2xx=int(data["non_2xx"]),  # type: ignore[call-overload]
            errors=int(data["errors"]),  # type: ignore[call-overload]
            elapsed=float(data["elapsed"]),  # type: ignore[arg-type]
            statuses={int(k): int(v) for k, v in data["statuses"].items()},  # type: ignore[attr-defined]
            error_kinds={str(k): int(v) for k, v in data["error_kinds"].items()},  # type: ignore[attr-defined]
            latencies_ms=tuple(float(x) for x in data["latencies_ms"]),  # type: ignore[attr-defined]
        )


class _Conn:
    """One client connection's state in the event loop."""

    __slots__ = ("began", "buf", "in_flight", "index", "next_body", "out", "previous", "sent", "sock", "writing")

    def __init__(self, index: int, next_body: BodyFn) -> None:
        self.index = index
        self.next_body = next_body
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.out = memoryview(b"")
        self.sent = 0
        self.began = 0.0
        self.in_flight = False
        self.previous: Response | None = None
        self.writing = False


class _Run:
    """The event loop of one load run."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.target = Target.from_url(config.url)
        factory, arg = body_factory(config.body)
        self.conns = [_Conn(i, factory(i, arg)) for i in range(config.connections)]
        self.selector = selectors.DefaultSelector()
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.error_kinds: Counter[str] = Counter()
        self.total = 0
        self.attempts = [0] * config.connections
        self.open = 0
        self.retry: list[_Conn] = []
        self.start = 0.0
        self.measure_from = 0.0
        self.stop_at = float("inf")
        self.last_done = 0.0

    def run(self) -> LoadResult:
        config = self.config
        self.start = time.perf_counter()
        self.measure_from = self.start + config.warmup
        if config.duration is not None:
            self.stop_at = self.measure_from + config.duration
        try:
            for conn in self.conns:
                self._next_request(conn)
            next_check = self.start + 0.05
            while self.open or self.retry:
                retry, self.retry = self.retry, []
                for conn in retry:
                    self._next_request(conn)
                for key, mask in self.selector.select(0 if self.retry else 0.05):
                    conn = key.data
                    if mask & selectors.EVENT_WRITE:
                        self._on_writable(conn)
                    if mask & selectors.EVENT_READ and conn.sock is not None:
                        self._on_readable(conn)
                now = time.perf_counter()
                if now >= next_check:
                    next_check = now + 0.05
                    self._expire(now)
        finally:
            for conn in self.conns:
                if conn.sock is not None:
                    self._close(conn)
            self.selector.close()
        end = self.last_done if self.latencies else time.perf_counter()
        return LoadResult(
            connections=config.connections,
            requests=len(self.latencies),
            total=self.total,
            non_2xx=sum(n for status, n in self.statuses.items() if not 200 <= status < 300),
            errors=sum(self.error_kinds.values()),
            elapsed=max(0.0, end - self.measure_from),
            statuses=dict(self.statuses),
            error_kinds=dict(self.error_kinds),
            latencies_ms=tuple(self.latencies),
        )

    def _wants_more(self, conn: _Conn) -> bool:
        if self.config.requests is not None:
            return self.attempts[conn.index] < self.config.requests
        return time.perf_counter() < self.stop_at

    def _next_request(self, conn: _Conn) -> None:
        if not self._wants_more(conn):
            if conn.sock is not None:
                self._close(conn)
            return
        self.attempts[conn.index] += 1
        body = conn.next_body(conn.previous)
        conn.out = memoryview(self.target.request_head(len(body)) + body)
        conn.sent = 0
        conn.in_flight = True
        conn.began = time.perf_counter()
        if conn.sock is None:
            self._connect(conn)
        else:
            self._send(conn)

    def _connect(self, conn: _Conn) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = sock
        conn.buf.clear()
        self.open += 1
        code = sock.connect_ex((self.target.host, self.target.port))
        if code not in (0, errno.EINPROGRESS):
            self._fail(conn, errno.errorcode.get(code, str(code)))
            return
        conn.writing = True
        self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def _on_writable(self, conn: _Conn) -> None:
        assert conn.sock is not None
        if conn.sent == 0 and conn.out:
            code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._fail(conn, errno.errorcode.get(code, str(code)))
                return
        self._send(conn)

    def _send(self, conn: _Conn) -> None:
        assert conn.sock is not None
        if conn.sent == 0:
            conn.began = time.perf_counter()
        try:
            n = conn.sock.send(conn.out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._fail(conn, type(exc).__name__)
            return
        conn.sent += n
        conn.out = conn.out[n:]
        want_write = bool(conn.out)
        if want_write != conn.writing:
            conn.writing = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self.selector.modify(conn.sock, events, conn)

    def _on_readable(self, conn: _Conn) -> None:
        assert conn.sock is not None
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(conn, type(exc).__name__)
            return
        conn.buf += data
        try:
            parsed = parse_response(conn.buf, eof=not data)
        except ProtocolError:
            self._fail(conn, "protocol")
            return
        if parsed is None:
            if not data:
                self._fail(conn, "closed" if conn.in_flight else "closed_idle")
            return
        if not conn.in_flight:
            self._fail(conn, "unsolicited")
            return
        now = time.perf_counter()
        conn.in_flight = False
        self.total += 1
        self.statuses[parsed.status] += 1
        if conn.began >= self.measure_from:
            self.latencies.append((now - conn.began) * 1000.0)
            self.last_done = now
        conn.previous = Response(parsed.status, parsed.body)
        del conn.buf[: parsed.consumed]
        if parsed.close or not data:
            self._close(conn)
        self._next_request(conn)

    def _expire(self, now: float) -> None:
        for conn in self.conns:
            if conn.in_flight and now - conn.began > self.config.timeout:
                self._fail(conn, "timeout")

    def _fail(self, conn: _Conn, kind: str) -> None:
        self.error_kinds[kind] += 1
        conn.in_flight = False
        conn.previous = None
        if conn.sock is not None:
            self._close(conn)
        self.retry.append(conn)  # reconnect from the main loop, not by recursion

    def _close(self, conn: _Conn) -> None:
        assert conn.sock is not None
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()
        conn.sock = None
        conn.writing = False
        self.open -= 1


def run_load(config: LoadConfig) -> LoadResult:
    """Run one load shape in this process (blocking) and return what it measured."""
    return _Run(config).run()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run one load shape and print its LoadResult as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="http://host:port/path to POST to")
    parser.add_argument("--connections", "-c", type=int, default=1)
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--requests", "-n", type=int, help="requests per connection")
    amount.add_argument("--duration", "-d", type=float, help="seconds to measure")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds run before measuring (with --duration)")
    parser.add_argument("--body", default="fresh", help="fresh | chain | conversation=<id> | module:factory[=arg]")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request before it counts as error")
    parser.add_argument("--latencies", action="store_true", help="include every latency in the output")
    args = parser.parse_args(argv)
    try:
        config = LoadConfig(
            url=args.url,
            connections=args.connections,
            requests=args.requests,
            duration=args.duration,
            warmup=args.warmup,
            body=args.body,
            timeout=args.timeout,
        )
        body_factory(config.body)
    except (ValueError, ImportError, AttributeError) as exc:
        parser.error(str(exc))
    result = run_load(config)
    json.dump(result.to_json(include_latencies=args.latencies), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
