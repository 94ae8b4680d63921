"""The forwarding wire format (pure): requests and events round-trip through the one converter, and every malformed
body is a `WireError` naming what is wrong."""

from __future__ import annotations

import orjson
import pytest

from afactors.cluster import ForwardPolicy
from afactors.cluster._wire import (
    SCHEMA,
    Accepted,
    Finished,
    ForwardRequest,
    Queued,
    Streamed,
    WireError,
    cancel_path,
    decode_error,
    decode_event,
    decode_request,
    encode_error,
    encode_event,
    encode_request,
)
from afactors.model import (
    ConversationKey,
    DataPart,
    Destination,
    Envelope,
    ErrorInfo,
    FunctionCallPart,
    Identity,
    Message,
    Reply,
    ReplyTarget,
    ResponseTarget,
    Routing,
    TextPart,
    Update,
    UsagePart,
)
from afactors.store import ResponseRecord

FULL = Envelope(
    key=ConversationKey("t1", "conv:b-1"),
    input=(Message("user", (TextPart("hi"), DataPart(b"\x00\x01", "application/octet-stream"))),),
    kind="turn",
    turn_id="resp_1",
    parent="resp_0",
    options={"model": "m", "nested": {"a": [1, 2]}},
    identity=Identity("telegram", "42", "Alice"),
    idempotency_key="tg:1:900",
    reply_to=ReplyTarget("telegram", {"chat_id": 42}),
    busy_policy="reject",
    trace_id="trace",
    follow_identity=True,
    response_target=ResponseTarget.channel("telegram", echo_input=True),
    routing=Routing(ResponseTarget.channel("telegram"), False, (Destination("telegram", "42", {"chat_id": 42}),)),
    trace_context={"traceparent": "00-abc-def-01"},
)


@pytest.mark.parametrize("envelope", [FULL, Envelope(ConversationKey("t", "c"))])
@pytest.mark.parametrize(("stream", "background"), [(False, False), (True, False), (False, True)])
def test_a_request_round_trips(envelope: Envelope, stream: bool, background: bool) -> None:
    forward = ForwardRequest(envelope, "telegram", stream, background)
    data = encode_request(forward)
    assert orjson.loads(data)["schema"] == SCHEMA
    assert decode_request(data) == forward
    assert decode_request(data.decode()) == forward


RECORD = ResponseRecord(id="resp_1", tenant="t1", conversation="t1/conv:b-1", status="queued", background=True,
                        input=(Message("user", "hi"),), created_at=1.5, data={"k": "v"})  # fmt: skip


@pytest.mark.parametrize(
    "event",
    [
        Accepted("resp_1"),
        Accepted("resp_1", done=True),
        Streamed(Update("a delta")),
        Streamed(Update()),
        Streamed(Update(part=FunctionCallPart("c1", "lookup", '{"q": 1}'))),
        Finished(Reply((Message("assistant", "done"),), UsagePart(1, 2), "completed")),
        Finished(Reply(status="failed", error=ErrorInfo("server_error", "boom")), stream_dropped=True),
        Queued(RECORD),
    ],
)
def test_an_event_is_one_line_and_round_trips(event: object) -> None:
    line = encode_event(event)  # type: ignore[arg-type]
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_event(line) == event
    assert decode_event(line.decode()) == event


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "bad_json", "not valid JSON"),
        (b"{", "bad_json", "not valid JSON"),
        (b"[]", "bad_request", "JSON object, not list"),
        (b'"x"', "bad_request", "JSON object, not str"),
        (b"{}", "unsupported_schema", "None"),
        (b'{"schema": 2}', "unsupported_schema", "2"),
        (b'{"schema": true}', "unsupported_schema", "True"),
        (b'{"schema": "1"}', "unsupported_schema", "'1'"),
        (b'{"schema": 1, "channel": "r", "envelope": {}, "zzz": 1}', "bad_request", "unknown field(s): zzz"),
        (b'{"schema": 1, "envelope": {}}', "bad_request", "'channel'"),
        (b'{"schema": 1, "channel": 5, "envelope": {}}', "bad_request", "'channel'"),
        (b'{"schema": 1, "channel": "r", "stream": 1, "envelope": {}}', "bad_request", "'stream'"),
        (b'{"schema": 1, "channel": "r", "background": null, "envelope": {}}', "bad_request", "'background'"),
        (b'{"schema": 1, "channel": "r"}', "bad_request", "missing 'envelope'"),
        (b'{"schema": 1, "channel": "r", "envelope": []}', "bad_envelope", "invalid envelope"),
        (b'{"schema": 1, "channel": "r", "envelope": {}}', "bad_envelope", "$.key"),
        (
            b'{"schema": 1, "channel": "r", "envelope": {"key": {"tenant": "t", "conversation": "c"}, "kind": "x"}}',
            "bad_envelope",
            "$.kind",
        ),
        (
            b'{"schema": 1, "channel": "r", "envelope": {"key": {"tenant": "t", "conversation": "c"},'
            b' "input": [{"role": "user", "contents": [{"type": "nope"}]}]}}',
            "bad_envelope",
            "nope",
        ),
    ],
)
def test_every_bad_request_body_is_named(data: bytes, code: str, words: str) -> None:
    with pytest.raises(WireError) as raised:
        decode_request(data)
    assert raised.value.code == code and words in raised.value.message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"nope", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b"{}", "unknown event with field(s) none"),
        (b'{"other": 1}', "unknown event with field(s) other"),
        (b'{"accepted": ""}', "'accepted' must be a turn id"),
        (b'{"accepted": 5}', "'accepted' must be a turn id"),
        (b'{"accepted": "t", "done": "yes"}', "'done' must be a boolean"),
        (b'{"update": []}', "invalid update"),
        (b'{"update": {"part": {"type": "nope"}}}', "invalid update"),
        (b'{"reply": {"status": "weird"}}', "invalid reply"),
        (b'{"reply": {}, "stream_dropped": "no"}', "'stream_dropped' must be a boolean"),
        (b'{"record": {"id": "x"}}', "invalid record"),
    ],
)
def test_every_bad_event_is_named(line: bytes, words: str) -> None:
    with pytest.raises(WireError) as raised:
        decode_event(line)
    assert raised.value.code == "bad_event" and words in raised.value.message


def test_an_error_body_round_trips_and_a_foreign_one_reads_as_unknown() -> None:
    assert decode_error(encode_error("not_owner", "node b does not own it")) == ("not_owner", "node b does not own it")
    assert decode_error(b"<html>bad gateway</html>") == ("unknown", "<html>bad gateway</html>")
    assert decode_error(b'{"error": "flat"}') == ("unknown", '{"error": "flat"}')
    assert decode_error(b'{"error": {"code": 1, "message": "m"}}')[0] == "unknown"
    assert decode_error(b"[]")[0] == "unknown"


def test_the_cancel_path_names_the_turn() -> None:
    assert cancel_path("resp_1") == "/v1/cluster/turns/resp_1/cancel"


@pytest.mark.parametrize(
    "setting",
    [
        {"wait": 0},
        {"attempts": 0},
        {"retry_after": -1},
        {"connect_timeout": 0},
        {"silence": 0},
        {"max_connections": 0},
    ],
)
def test_a_forward_policy_refuses_a_setting_that_would_never_wait_or_try(setting: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(setting))):
        ForwardPolicy(**setting)  # type: ignore[arg-type]


def test_the_heartbeat_is_a_third_of_the_silence_allowed() -> None:
    assert ForwardPolicy(silence=9.0).heartbeat == 3.0
