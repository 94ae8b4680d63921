"""The benchmark load generator counts requests, latencies, non-2xx responses and socket errors correctly."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.common import REPO_ROOT
from bench.loadgen import LoadConfig, LoadResult, ProtocolError, parse_response, run_load

Action = Callable[[int], str]
"""Request number (1-based, server-wide) -> "ok" | "fail" (500) | "drop" (close without answering) | "hang"."""


class _Recorder:
    def __init__(self, action: Action) -> None:
        self.action = action
        self.lock = threading.Lock()
        self.count = 0
        self.seen: list[tuple[int, dict[str, object]]] = []  # (client port, request body)
        self.release = threading.Event()


@contextmanager
def tiny_server(action: Action = lambda n: "ok") -> Iterator[tuple[str, _Recorder]]:
    """A keep-alive HTTP/1.1 server on loopback whose answer to request n is `action(n)`."""
    recorder = _Recorder(action)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with recorder.lock:
                recorder.count += 1
                number = recorder.count
                recorder.seen.append((self.client_address[1], body))
            what = recorder.action(number)
            if what == "drop":
                self.close_connection = True
                return
            if what == "hang":
                recorder.release.wait(10)
                self.close_connection = True
                return
            status = 500 if what == "fail" else 200
            payload = json.dumps({"id": f"resp_{number}", "object": "response"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/responses", recorder
    finally:
        recorder.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_counts_every_request_and_its_latency_over_keep_alive_connections() -> None:
    with tiny_server() as (url, recorder):
        result = run_load(LoadConfig(url=url, connections=3, requests=4))
    assert (result.requests, result.total, result.non_2xx, result.errors) == (12, 12, 0, 0)
    assert result.statuses == {200: 12}
    assert len(result.latencies_ms) == 12 and all(ms > 0 for ms in result.latencies_ms)
    assert result.rps > 0
    assert recorder.count == 12
    assert len({port for port, _ in recorder.seen}) == 3  # one keep-alive connection per client
    assert all(body == {"model": "m", "input": "hello"} for _, body in recorder.seen)


def test_counts_non_2xx_responses_as_responses_not_errors() -> None:
    with tiny_server(lambda n: "fail" if n % 3 == 0 else "ok") as (url, _):
        result = run_load(LoadConfig(url=url, connections=2, requests=6))
    assert result.statuses == {200: 8, 500: 4}
    assert (result.requests, result.non_2xx, result.errors) == (12, 4, 0)
    assert len(result.latencies_ms) == 12


def test_counts_dropped_connections_as_errors_and_reconnects() -> None:
    with tiny_server(lambda n: "drop" if n % 4 == 0 else "ok") as (url, recorder):
        result = run_load(LoadConfig(url=url, connections=1, requests=12))
    assert recorder.count == 12
    assert (result.requests, result.errors) == (9, 3)
    assert result.error_kinds == {"closed": 3}
    assert len(result.latencies_ms) == 9
    assert len({port for port, _ in recorder.seen}) == 3  # a new connection after each of the first two drops


def test_counts_refused_connections_as_errors() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound but not listening: connections are refused
        result = run_load(LoadConfig(url=f"http://127.0.0.1:{port}/", connections=2, requests=3))
    assert (result.requests, result.total, result.errors) == (0, 0, 6)
    assert result.error_kinds == {"ECONNREFUSED": 6}
    assert result.rps == 0


def test_counts_a_request_past_its_timeout_as_an_error() -> None:
    with tiny_server(lambda n: "hang") as (url, _):
        result = run_load(LoadConfig(url=url, connections=1, requests=1, timeout=0.2))
    assert (result.requests, result.errors, result.error_kinds) == (0, 1, {"timeout": 1})


def test_chain_body_continues_each_connection_from_its_previous_response() -> None:
    with tiny_server(lambda n: "drop" if n == 5 else "ok") as (url, recorder):
        result = run_load(LoadConfig(url=url, connections=2, requests=4, body="chain"))
    assert result.errors == 1
    by_connection: dict[int, list[tuple[int, dict[str, object]]]] = {}
    for number, (port, body) in enumerate(recorder.seen, start=1):
        by_connection.setdefault(port, []).append((number, body))
    for requests in by_connection.values():
        assert "previous_response_id" not in requests[0][1]
        for (previous_number, _), (number, body) in itertools.pairwise(requests):
            assert body["previous_response_id"] == f"resp_{previous_number}"
            assert number > previous_number


def test_conversation_body_joins_the_named_conversation() -> None:
    with tiny_server() as (url, recorder):
        run_load(LoadConfig(url=url, connections=2, requests=2, body="conversation=conv_1"))
    assert [body["conversation"] for _, body in recorder.seen] == ["conv_1"] * 4


def test_duration_mode_measures_after_the_warmup() -> None:
    with tiny_server() as (url, recorder):
        result = run_load(LoadConfig(url=url, connections=2, duration=0.3, warmup=0.1))
    assert result.requests > 0
    assert result.total >= result.requests
    assert result.total == recorder.count
    assert result.errors == 0


def test_runs_as_its_own_process_and_prints_json() -> None:
    with tiny_server() as (url, _):
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", url, "-c", "2", "-n", "3", "--latencies"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    result = LoadResult.from_json(json.loads(out.stdout))
    assert (result.requests, result.errors, len(result.latencies_ms)) == (6, 0, 6)


def test_rejects_a_config_with_both_or_neither_amount() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LoadConfig(url="http://127.0.0.1:1/", connections=1)
    with pytest.raises(ValueError, match="exactly one"):
        LoadConfig(url="http://127.0.0.1:1/", connections=1, requests=1, duration=1.0)


@pytest.mark.parametrize(
    ("raw", "status", "body", "consumed_extra", "close"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, b"hi", 0, False),
        (b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nhiNEXT", 201, b"hi", 4, False),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=1\r\nllo\r\n0\r\n\r\n",
            200,
            b"hello",
            0,
            False,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n", 200, b"a", 0, False),
        (b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 404, b"", 0, True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, b"x", 0, True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", 200, b"x", 0, False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", 0, False),
    ],
)
def test_parses_complete_responses(raw: bytes, status: int, body: bytes, consumed_extra: int, close: bool) -> None:
    parsed = parse_response(raw)
    assert parsed is not None
    assert (parsed.status, parsed.body, parsed.close) == (status, body, close)
    assert parsed.consumed == len(raw) - consumed_extra


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nuntil-eof",
    ],
)
def test_an_incomplete_response_waits_for_more(raw: bytes) -> None:
    assert parse_response(raw) is None


def test_a_body_without_length_ends_at_eof() -> None:
    parsed = parse_response(b"HTTP/1.1 200 OK\r\n\r\nuntil-eof", eof=True)
    assert parsed is not None and (parsed.body, parsed.close) == (b"until-eof", True)


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
)
def test_malformed_responses_raise(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_response(raw)


def test_a_protocol_error_counts_as_a_socket_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_garbage() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP\r\n\r\n")
                conn.recv(1)  # wait for the client to close

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        result = run_load(LoadConfig(url=f"http://127.0.0.1:{port}/", connections=1, requests=1))
        thread.join(5)
    assert (result.requests, result.errors, result.error_kinds) == (0, 1, {"protocol": 1})
