"""The data model: roundtrips through the one converter, derived text, and clear errors on bad input."""

from __future__ import annotations

import attrs
import cattrs
import orjson
import pytest

from afactors.model import (
    ConversationKey,
    DataPart,
    Envelope,
    ErrorInfo,
    FunctionCallPart,
    FunctionResultPart,
    Identity,
    Message,
    ReasoningPart,
    Reply,
    ReplyTarget,
    TextPart,
    TurnContext,
    Update,
    UriPart,
    UsagePart,
    converter,
    describe_error,
    dumps,
    loads,
)

EVERY_PART = (
    TextPart("Hello, "),
    DataPart(b"\x89PNG\r\n\x1a\n\x00\xff", "image/png", name="pixel.png"),
    UriPart("https://example.com/a.pdf", "application/pdf"),
    FunctionCallPart("call-1", "add", '{"a": 1, "b": 2}'),
    FunctionResultPart("call-1", "3"),
    ReasoningPart("adding is easy"),
    UsagePart(12, 34),
    TextPart("world"),
)


def _roundtrip(obj: object) -> object:
    return loads(dumps(obj), type(obj))


def test_message_with_every_part_type_roundtrips() -> None:
    message = Message("assistant", EVERY_PART, name="calc")
    back = _roundtrip(message)
    assert back == message
    assert [type(p) for p in back.contents] == [type(p) for p in EVERY_PART]  # type: ignore[attr-defined]
    assert back.contents[1].data == b"\x89PNG\r\n\x1a\n\x00\xff"  # type: ignore[attr-defined]


def test_every_part_carries_its_type_tag_on_the_wire() -> None:
    doc = orjson.loads(dumps(Message("user", EVERY_PART)))
    assert [p["type"] for p in doc["contents"]] == [
        "text",
        "data",
        "uri",
        "function_call",
        "function_result",
        "reasoning",
        "usage",
        "text",
    ]


def test_json_shape_is_compact_and_stable() -> None:
    assert orjson.loads(dumps(Message("user", "hi"))) == {"role": "user", "contents": [{"text": "hi", "type": "text"}]}


def test_envelope_with_every_field_roundtrips() -> None:
    envelope = Envelope(
        key=ConversationKey("tenant-a", "conv-1"),
        input=(Message("system", "be brief"), Message("user", (TextPart("hi"), UriPart("file-1", "image/jpeg")))),
        kind="command",
        turn_id="turn-9",
        parent="turn-8",
        options={"temperature": 0.2, "tools": ["add"], "nested": {"a": [1, None, True]}},
        identity=Identity("telegram", "42", display_name="Ada"),
        idempotency_key="tg:1001",
        reply_to=ReplyTarget("telegram", {"chat_id": 42, "thread_id": None}),
        busy_policy="steer",
        trace_id="trace-1",
    )
    assert _roundtrip(envelope) == envelope
    assert _roundtrip(Envelope(ConversationKey("t", "c"))) == Envelope(ConversationKey("t", "c"))


def test_reply_and_update_roundtrip() -> None:
    reply = Reply(
        messages=(Message("assistant", EVERY_PART), Message("tool", (FunctionResultPart("c", "r"),))),
        usage=UsagePart(1, 2),
        status="failed",
        error=ErrorInfo("target_error", "the model is down"),
    )
    assert _roundtrip(reply) == reply
    for update in [Update(delta="tok"), *(Update(part=p) for p in EVERY_PART)]:
        assert _roundtrip(update) == update


def test_turn_context_roundtrips() -> None:
    ctx = TurnContext(
        key=ConversationKey("t", "c"),
        messages=(Message("user", "q"), Message("assistant", "a")),
        state={"counter": 3},
        turn_id="turn-2",
        seq=2,
        options={"model": "x"},
        identity=Identity("responses", "u1"),
    )
    assert _roundtrip(ctx) == ctx


def test_message_text_joins_only_text_parts() -> None:
    message = Message("assistant", EVERY_PART)
    assert message.text == "Hello, world"
    assert Message("user", "plain").contents == (TextPart("plain"),)
    assert Message("user").text == ""


def test_reply_text_joins_only_assistant_messages() -> None:
    reply = Reply(messages=(Message("assistant", "a"), Message("tool", "ignored"), Message("assistant", "b")))
    assert reply.text == "ab"


def test_usage_adds_up() -> None:
    total = UsagePart(1, 2) + UsagePart(10, 20)
    assert total == UsagePart(11, 22)
    assert total.total_tokens == 33


def test_model_objects_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Message("user", "x").role = "assistant"  # type: ignore[misc]


def _structure_error(data: object, cls: type) -> str:
    with pytest.raises(cattrs.BaseValidationError) as caught:
        converter.structure(data, cls)
    return describe_error(caught.value)


def test_unknown_part_type_is_a_clear_error() -> None:
    text = _structure_error({"role": "user", "contents": [{"type": "video", "url": "x"}]}, Message)
    assert text.startswith("unknown content part type 'video'")
    assert "$.contents[0]" in text


def test_part_that_is_not_an_object_is_a_clear_error() -> None:
    text = _structure_error({"role": "user", "contents": ["hi"]}, Message)
    assert text == "a content part must be an object, not str @ $.contents[0]"


def test_bad_role_is_a_clear_error() -> None:
    text = _structure_error({"role": "robot", "contents": []}, Message)
    assert text == "invalid value, expected one of 'user', 'assistant', 'system', 'tool' @ $.role"
    with pytest.raises(ValueError, match="'role' must be in"):
        Message("robot", "hi")  # type: ignore[arg-type]


def test_missing_fields_are_named_with_their_path() -> None:
    bad = {"key": {"tenant": "t"}, "input": [{"role": "user", "contents": [{"type": "text"}]}]}
    text = _structure_error(bad, Envelope)
    assert "required field missing @ $.key.conversation" in text
    assert "required field missing @ $.input[0].contents[0].text" in text


def test_bad_busy_policy_is_a_clear_error() -> None:
    text = _structure_error({"key": {"tenant": "t", "conversation": "c"}, "busy_policy": "shout"}, Envelope)
    assert text == "invalid value, expected one of 'enqueue', 'reject', 'interrupt', 'steer' @ $.busy_policy"


def test_message_contents_must_be_parts() -> None:
    with pytest.raises(TypeError, match=r"message contents must be content parts .* not dict"):
        Message("user", [{"type": "text", "text": "hi"}])  # type: ignore[list-item]


def test_describe_error_of_other_exceptions() -> None:
    assert describe_error(ValueError("boom")) == "ValueError: boom"
