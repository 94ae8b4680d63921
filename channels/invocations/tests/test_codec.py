"""The pure Invocations codec: default body, I-02 ids, I-08 isolation keys, I-06 errors, SSE frames."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from afactors.model import ErrorInfo, Message, Reply, ResponseTarget, TextPart
from afactors_invocations.codec import (
    PLATFORM_SERVER,
    SSE_DONE,
    InvocationError,
    InvocationIds,
    InvocationRequest,
    Isolation,
    decode_json,
    echo_or_new,
    header_value,
    is_protocol_id,
    isolation,
    parse_default,
    render_default,
    reply_error,
    resolve_session_id,
    sse_delta,
    sse_error,
    status_body,
    turn_id_of,
    user_key,
)


def counter() -> Any:
    numbers = itertools.count(1)
    return lambda: f"new-{next(numbers)}"


def assert_error(exc: pytest.ExceptionInfo[InvocationError], status: int, code: str, text: str = "") -> None:
    assert (exc.value.status, exc.value.code) == (status, code)
    assert text in exc.value.message
    assert exc.value.body() == {"error": {"code": code, "message": exc.value.message}}


# ---------------------------------------------------------------- I-02 ids


@pytest.mark.parametrize("value", ["a", "inv-1", "A.b_c:d-9", "x" * 256, "0"])
def test_i02_valid_ids_are_echoed(value: str) -> None:
    assert is_protocol_id(value)
    assert echo_or_new(value, counter()) == value


@pytest.mark.parametrize("value", [None, "", "x" * 257, "a b", "a/b", "é", "a\n", "id!", "{x}"])
def test_i02_invalid_ids_get_a_fresh_one(value: str | None) -> None:
    assert not is_protocol_id(value)
    assert echo_or_new(value, counter()) == "new-1"


def test_i02_response_headers_carry_every_id() -> None:
    headers = InvocationIds("inv", "sess", "req").headers()
    assert headers == {
        "x-agent-invocation-id": "inv",
        "x-agent-session-id": "sess",
        "x-request-id": "req",
        "x-platform-server": PLATFORM_SERVER,
    }
    assert PLATFORM_SERVER.startswith("afactors-invocations/") and "(python/3." in PLATFORM_SERVER


def test_i02_session_id_precedence_query_body_env_generated() -> None:
    assert resolve_session_id("q", "b", "e", counter()) == "q"
    assert resolve_session_id(None, "b", "e", counter()) == "b"
    assert resolve_session_id("", "b", "e", counter()) == "b"
    assert resolve_session_id(None, None, "e", counter()) == "e"
    assert resolve_session_id(None, "", "e", counter()) == "e"
    assert resolve_session_id(None, None, None, counter()) == "new-1"
    assert resolve_session_id(None, None, "", counter()) == "new-1"


def test_i02_session_ids_may_be_any_visible_ascii() -> None:
    assert resolve_session_id("user@example.com#1", None, None, counter()) == "user@example.com#1"
    assert resolve_session_id(None, "x" * 256, None, counter()) == "x" * 256


@pytest.mark.parametrize("bad", ["a b", "x" * 257, "é", "a\tb"])
def test_i02_bad_query_session_id_is_400(bad: str) -> None:
    with pytest.raises(InvocationError) as exc:
        resolve_session_id(bad, None, None, counter())
    assert_error(exc, 400, "invalid_request", "agent_session_id")


@pytest.mark.parametrize("bad", ["a b", "x" * 257, "é", 5, ["s"], True])
def test_i02_bad_body_session_id_is_422(bad: object) -> None:
    with pytest.raises(InvocationError) as exc:
        resolve_session_id(None, bad, None, counter())
    assert_error(exc, 422, "invalid_request", "'session_id'")


def test_i02_unusable_environment_session_id_is_ignored() -> None:
    assert resolve_session_id(None, None, "bad value", counter()) == "new-1"


# ---------------------------------------------------------------- I-08 isolation


def test_i08_user_key_prefers_user_id_then_isolation_key_then_local() -> None:
    both = {"x-agent-user-id": "u1", "x-agent-user-isolation-key": "k1"}
    assert user_key(both, "local") == "u1"
    assert user_key({"x-agent-user-isolation-key": "k1"}, "local") == "k1"
    assert user_key({}, "local") == "local"
    assert user_key({"x-agent-user-id": "  "}, "local") == "local"


def test_i08_chat_key_prefers_header_over_session() -> None:
    assert isolation({"x-agent-chat-isolation-key": "c1"}, "s1", "local") == Isolation("local", "c1")
    assert isolation({}, "s1", "local") == Isolation("local", "s1")
    assert isolation({"x-agent-chat-isolation-key": ""}, "s1", "local") == Isolation("local", "s1")


def test_i08_conversation_ids_never_collide() -> None:
    assert Isolation("a/b", "c").conversation != Isolation("a", "b/c").conversation
    assert Isolation("u", "s").conversation == "invocations/u/s"


@pytest.mark.parametrize("bad", ["caf\xe9", "a\x01b", "x" * 1025])
def test_i08_bad_header_values_are_400(bad: str) -> None:
    with pytest.raises(InvocationError) as exc:
        header_value({"x-agent-user-id": bad}, "x-agent-user-id")
    assert_error(exc, 400, "invalid_header", "x-agent-user-id")


def test_turn_ids_are_scoped_by_tenant_and_user() -> None:
    base = turn_id_of("t1", "u1", "inv")
    assert base.startswith("inv_") and len(base) == 36
    assert base == turn_id_of("t1", "u1", "inv")
    assert (
        len({base, turn_id_of("t2", "u1", "inv"), turn_id_of("t1", "u2", "inv"), turn_id_of("t1", "u1", "inv2")}) == 4
    )


# ---------------------------------------------------------------- default body


def test_default_body_minimal() -> None:
    parsed = parse_default({"message": "hi"})
    assert parsed == InvocationRequest((Message("user", "hi"),))
    assert (parsed.session_id, parsed.stream, parsed.background) == (None, False, False)


def test_default_body_every_field() -> None:
    parsed = parse_default({"message": "hi", "session_id": "s", "stream": True, "background": False, "extra": 1})
    assert (parsed.input[0].text, parsed.session_id, parsed.stream, parsed.background) == ("hi", "s", True, False)
    assert parse_default({"message": "hi", "background": True, "stream": None}).background


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ([], "must be a JSON object, got an array"),
        ("hi", "must be a JSON object, got a string"),
        (None, "got null"),
        (3, "got a number"),
        ({}, "missing 'message'"),
        ({"message": None}, "missing 'message'"),
        ({"message": ""}, "must not be empty"),
        ({"message": "  \n"}, "must not be empty"),
        ({"message": 5}, "'message' must be a string, got a number"),
        ({"message": ["a"]}, "got an array"),
        ({"message": {"text": "a"}}, "got an object"),
        ({"message": "hi", "session_id": 5}, "'session_id' must be a string"),
        ({"message": "hi", "session_id": False}, "got a boolean"),
        ({"message": "hi", "stream": "yes"}, "'stream' must be a boolean"),
        ({"message": "hi", "stream": 1}, "'stream' must be a boolean"),
        ({"message": "hi", "background": "true"}, "'background' must be a boolean"),
        ({"message": "hi", "stream": True, "background": True}, "cannot both be true"),
    ],
)
def test_default_body_refusals_are_422(body: object, text: str) -> None:
    with pytest.raises(InvocationError) as exc:
        parse_default(body)
    assert_error(exc, 422, "invalid_request", text)


def test_request_input_accepts_text_message_or_messages() -> None:
    m = Message("user", "a")
    assert InvocationRequest("a").input == (m,)
    assert InvocationRequest(m).input == (m,)
    assert InvocationRequest([m, m]).input == (m, m)


@pytest.mark.parametrize(
    ("raw", "text"), [(b"", "empty"), (b"  \n", "empty"), (b"{", "not valid JSON"), (b"\xff", "not valid JSON")]
)
def test_unparsable_json_is_400(raw: bytes, text: str) -> None:
    with pytest.raises(InvocationError) as exc:
        decode_json(raw)
    assert_error(exc, 400, "invalid_json", text)


def test_json_decodes() -> None:
    assert decode_json(b'{"message": "hi"}') == {"message": "hi"}


# ---------------------------------------------------------------- responses


IDS = InvocationIds("inv", "sess", "req")


def test_default_render() -> None:
    reply = Reply(messages=(Message("assistant", "Turn 1."),))
    assert render_default(reply, IDS) == {"response": "Turn 1.", "session_id": "sess", "invocation_id": "inv"}


def test_reply_errors() -> None:
    assert reply_error(Reply()) is None
    failed = reply_error(Reply(status="failed", error=ErrorInfo("agent_error", "boom")))
    assert failed is not None and (failed.status, failed.code, failed.message) == (500, "agent_error", "boom")
    bare = reply_error(Reply(status="incomplete"))
    assert bare is not None and (bare.status, bare.code) == (500, "internal_error")
    cancelled = reply_error(Reply(status="cancelled", error=ErrorInfo("cancelled", "x")))
    assert cancelled is not None and (cancelled.status, cancelled.code, cancelled.message) == (409, "cancelled", "x")
    interrupted = reply_error(Reply(status="cancelled", error=ErrorInfo("interrupted", "newer")))
    assert interrupted is not None and (interrupted.status, interrupted.code) == (409, "interrupted")
    shutdown = reply_error(Reply(status="cancelled", error=ErrorInfo("shutdown", "stopping")))
    assert shutdown is not None and (shutdown.status, shutdown.code) == (503, "shutting_down")
    bare_cancel = reply_error(Reply(status="cancelled"))
    assert bare_cancel is not None and (bare_cancel.status, bare_cancel.code) == (409, "cancelled")


def test_status_body() -> None:
    assert status_body(IDS, "queued") == {"invocation_id": "inv", "session_id": "sess", "status": "queued"}
    done = status_body(IDS, "completed", result={"response": "x"})
    assert done["result"] == {"response": "x"} and "error" not in done
    failed = status_body(IDS, "failed", error={"code": "c", "message": "m"})
    assert failed["error"] == {"code": "c", "message": "m"} and "result" not in failed


def test_sse_frames() -> None:
    frame = sse_delta('line 1\nline "2"')
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n") and frame.count(b"\n") == 2
    assert orjson.loads(frame[6:]) == {"delta": 'line 1\nline "2"'}
    assert SSE_DONE == b"data: [DONE]\n\n"
    error = sse_error(InvocationError(500, "agent_error", "boom"))
    event, data = error.rstrip(b"\n").split(b"\n")
    assert event == b"event: error"
    assert orjson.loads(data.removeprefix(b"data: ")) == {"error": {"code": "agent_error", "message": "boom"}}


def test_text_part_is_the_response_text() -> None:
    reply = Reply(messages=(Message("assistant", (TextPart("a"), TextPart("b"))),))
    assert render_default(reply, IDS)["response"] == "ab"


def test_the_response_target_field() -> None:
    assert parse_default({"message": "hi"}).response_target is None
    named = parse_default({"message": "hi", "response_target": {"kind": "all_linked", "echo_input": True}})
    assert named.response_target == ResponseTarget.all_linked(echo_input=True) and not named.background
    quiet = parse_default({"message": "hi", "response_target": "none"})
    assert quiet.response_target == ResponseTarget.none() and quiet.background
    for body in (
        {"message": "hi", "response_target": "everyone"},
        {"message": "hi", "response_target": {"kind": "channels", "channels": []}},
        {"message": "hi", "response_target": "none", "stream": True},
    ):
        with pytest.raises(InvocationError) as error:
            parse_default(body)
        assert error.value.status == 422, body
