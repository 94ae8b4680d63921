"""Header rules (M-01, M-02, M-05) and SSE framing (M-07), as pure functions."""

from __future__ import annotations

import pytest

from afactors_mcp.headers import (
    accepts,
    check_content_type,
    check_get_accept,
    check_origin,
    check_post_accept,
    origin_allowed,
    protocol_version,
    session_id,
)
from afactors_mcp.jsonrpc import RpcError
from afactors_mcp.protocol import HANDSHAKE_VERSIONS
from afactors_mcp.sse import event_id, frame, parse_event_id, priming


@pytest.mark.parametrize(
    "origin",
    [None, "http://localhost", "http://localhost:6274", "https://127.0.0.1:8000", "http://[::1]:3000"],
)
def test_loopback_and_absent_origins_pass(origin: str | None) -> None:
    assert origin_allowed(origin, ())


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example.com", "null", "file://", "http://localhost.evil.com", "ftp://localhost", "http://[::1"],
)
def test_other_origins_are_forbidden(origin: str) -> None:
    assert not origin_allowed(origin, ())
    with pytest.raises(RpcError) as caught:
        check_origin(origin, ())
    assert caught.value.status == 403


def test_listed_or_wildcard_origins_pass() -> None:
    assert origin_allowed("https://app.example.com", ("https://app.example.com",))
    assert not origin_allowed("https://app.example.com:444", ("https://app.example.com",))
    assert origin_allowed("http://anything", ("*",))


@pytest.mark.parametrize(
    "accept",
    ["application/json, text/event-stream", "text/event-stream;q=0.9, application/json", "*/*",
     "application/*, text/*"],
)  # fmt: skip
def test_a_post_accepting_both_passes(accept: str) -> None:
    check_post_accept(accept)


@pytest.mark.parametrize("accept", [None, "", "application/json", "text/event-stream", "text/html"])
def test_a_post_not_accepting_both_is_406(accept: str | None) -> None:
    with pytest.raises(RpcError) as caught:
        check_post_accept(accept)
    assert caught.value.status == 406 and "Not Acceptable" in caught.value.message


def test_a_get_must_accept_an_event_stream() -> None:
    check_get_accept("text/event-stream")
    assert accepts("text/*", "text/event-stream") and not accepts("application/json", "text/event-stream")
    with pytest.raises(RpcError) as caught:
        check_get_accept("application/json")
    assert caught.value.status == 406


def test_content_type_must_be_json() -> None:
    check_content_type("application/json; charset=utf-8")
    for bad in (None, "text/plain", "application/jsonx"):
        with pytest.raises(RpcError) as caught:
            check_content_type(bad)
        assert caught.value.status == 415


def test_protocol_version_header() -> None:
    assert protocol_version(None) == "2025-03-26"
    assert protocol_version("2025-11-25") == "2025-11-25"
    with pytest.raises(RpcError) as caught:
        protocol_version("1999-01-01")
    assert caught.value.status == 400 and caught.value.data == {"supported": list(HANDSHAKE_VERSIONS)}


def test_session_id_header() -> None:
    assert session_id("abc123") == "abc123"
    for missing in (None, "", "  "):
        with pytest.raises(RpcError) as caught:
            session_id(missing)
        assert caught.value.status == 400 and "Missing session ID" in caught.value.message
    for impossible in ("has space", "x" * 300, "caf\u00e9"):
        with pytest.raises(RpcError) as caught:
            session_id(impossible)
        assert caught.value.status == 404


def test_event_ids_round_trip_and_foreign_ones_are_none() -> None:
    assert parse_event_id(event_id(3, 17)) == (3, 17)
    for foreign in (None, "", "17", "a-b", "1-2-3", "-1-2", "9999999999-1"):
        assert parse_event_id(foreign) is None


def test_frames() -> None:
    assert frame(b'{"a":1}', "1-2") == b'event: message\nid: 1-2\ndata: {"a":1}\n\n'
    assert frame(b"{}") == b"event: message\ndata: {}\n\n"
    assert priming("4-0", 500) == b"id: 4-0\nretry: 500\ndata: \n\n"
