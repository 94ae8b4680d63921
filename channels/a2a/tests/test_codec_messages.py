"""Messages and parts (A-04, A-05) in both versions: pure conversions and their refusals."""

from __future__ import annotations

import base64

import pytest

from afactors.model import DataPart, FunctionCallPart, Message, ReasoningPart, TextPart, UriPart
from afactors_a2a.errors import RpcError
from afactors_a2a.fields import Fields
from afactors_a2a.messages import (
    accepts,
    message_from_v03,
    message_to_v03,
    parse_message,
    parse_part,
    part_from_v03,
    part_to_v03,
    render_message,
    render_part,
)

MODES = ("text/plain", "application/json", "image/*")


def part(data: dict) -> object:
    return parse_part(Fields(data, "message.parts[0]"), MODES)


def refused(fn, *args) -> RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(RpcError) as caught:
        fn(*args)
    return caught.value


def test_a05_each_v1_part_kind_becomes_an_afactors_part() -> None:
    assert part({"text": "hi"}) == TextPart("hi")
    assert part({"text": ""}) == TextPart("")
    raw = base64.b64encode(b"\x89PNG").decode()
    assert part({"raw": raw, "mediaType": "image/png", "filename": "a.png"}) == DataPart(
        b"\x89PNG", "image/png", "a.png"
    )
    assert part({"url": "https://x/y.png", "mediaType": "image/png"}) == UriPart("https://x/y.png", "image/png")
    assert part({"data": {"a": [1, 2]}, "metadata": {"k": "v"}}) == DataPart(b'{"a":[1,2]}', "application/json")


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"text": "a", "data": {}},
        {"text": 5},
        {"raw": "!!!", "mediaType": "image/png"},
        {"url": ""},
        {"text": "x", "metadata": "no"},
        {"text": "x", "mediaType": 3},
    ],
)
def test_a05_malformed_parts_are_invalid_params_naming_the_part(bad: dict) -> None:
    error = refused(part, bad)
    assert error.code == -32602 and "message.parts[0]" in error.message


def test_a05_a_media_type_not_accepted_is_32005() -> None:
    raw = base64.b64encode(b"%PDF").decode()
    error = refused(part, {"raw": raw, "mediaType": "application/pdf"})
    assert error.code == -32005 and "application/pdf" in error.message
    assert refused(part, {"url": "https://x/y"}).code == -32005  # no media type: octet-stream, not accepted here


def test_media_type_matching_has_wildcards_and_ignores_parameters() -> None:
    assert accepts(("image/*",), "image/png") and accepts(("*/*",), "application/zip")
    assert accepts(("text/plain",), "text/plain; charset=utf-8") and accepts(("TEXT/PLAIN",), "text/plain")
    assert not accepts(("image/*",), "text/plain") and not accepts((), "text/plain")


def test_a04_a_user_message_parses_with_its_ids() -> None:
    message = parse_message(
        Fields(
            {
                "messageId": "m1",
                "role": "ROLE_USER",
                "parts": [{"text": "hi"}],
                "contextId": "c",
                "taskId": "t",
                "referenceTaskIds": ["r"],
                "metadata": {"x": 1},
            },
            "message",
        ),
        MODES,
    )
    assert (message.message_id, message.context_id, message.task_id) == ("m1", "c", "t")
    assert message.parts == (TextPart("hi"),) and message.reference_task_ids == ("r",) and message.metadata == {"x": 1}


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"parts": [{"text": "x"}]}, "message.messageId"),
        ({"messageId": "", "parts": [{"text": "x"}]}, "message.messageId"),
        ({"messageId": "m"}, "message.parts"),
        ({"messageId": "m", "parts": []}, "message.parts"),
        ({"messageId": "m", "parts": {"text": "x"}}, "message.parts"),
        ({"messageId": "m", "parts": [{"text": "x"}], "role": "ROLE_AGENT"}, "role"),
        ({"messageId": "m", "parts": [{"text": "x"}], "referenceTaskIds": [1]}, "referenceTaskIds"),
        ({"messageId": "m", "parts": [{"text": "x"}], "contextId": 4}, "message.contextId"),
    ],
)
def test_a04_malformed_messages_are_invalid_params(bad: dict, where: str) -> None:
    error = refused(parse_message, Fields(bad, "message"), MODES)
    assert error.code == -32602 and where in error.message


def test_afactors_parts_render_as_v1_parts_and_others_are_left_out() -> None:
    assert render_part(TextPart("a")) == {"text": "a"}
    assert render_part(DataPart(b'{"a":1}', "application/json")) == {"data": {"a": 1}}
    assert render_part(DataPart(b"not json", "application/json")) == {
        "raw": "bm90IGpzb24=",
        "mediaType": "application/json",
    }
    assert render_part(DataPart(b"x", "text/plain", "x.txt")) == {
        "raw": "eA==",
        "mediaType": "text/plain",
        "filename": "x.txt",
    }
    assert render_part(UriPart("u", "image/png", "p")) == {"url": "u", "mediaType": "image/png", "filename": "p"}
    assert render_part(ReasoningPart("hmm")) is None and render_part(FunctionCallPart("c", "f", "{}")) is None


def test_messages_render_with_roles_and_ids() -> None:
    rendered = render_message(Message("assistant", (TextPart("a"), ReasoningPart("r"))), "m", "c", "t")
    assert rendered == {
        "messageId": "m",
        "contextId": "c",
        "role": "ROLE_AGENT",
        "parts": [{"text": "a"}],
        "taskId": "t",
    }
    assert render_message(Message("user", "q"), "m", "c", None)["role"] == "ROLE_USER"


V03_PARTS = [
    ({"kind": "text", "text": "hi"}, {"text": "hi"}),
    ({"kind": "data", "data": {"a": 1}, "metadata": {"m": 1}}, {"data": {"a": 1}, "metadata": {"m": 1}}),
    (
        {"kind": "file", "file": {"bytes": "eA==", "mimeType": "text/plain", "name": "x"}},
        {"raw": "eA==", "mediaType": "text/plain", "filename": "x"},
    ),
    ({"kind": "file", "file": {"uri": "https://x"}}, {"url": "https://x"}),
]


@pytest.mark.parametrize(("v03", "v1"), V03_PARTS)
def test_v03_parts_convert_both_ways(v03: dict, v1: dict) -> None:
    assert part_from_v03(v03, "p") == v1
    assert part_to_v03(v1) == v03


def test_v03_renders_non_object_data_wrapped() -> None:
    assert part_to_v03({"data": [1, 2]}) == {"kind": "data", "data": {"value": [1, 2]}}


@pytest.mark.parametrize(
    "bad",
    [
        {"text": "no kind"},
        {"kind": "video"},
        {"kind": "file", "file": {}},
        {"kind": "file", "file": {"bytes": "eA==", "uri": "u"}},
        {"kind": "data", "data": None},
        "text",
    ],
)
def test_v03_malformed_parts_are_invalid_params(bad: object) -> None:
    assert refused(part_from_v03, bad, "message.parts[0]").code == -32602


def test_v03_messages_convert_both_ways() -> None:
    v03 = {
        "kind": "message",
        "messageId": "m",
        "role": "user",
        "parts": [{"kind": "text", "text": "hi"}],
        "contextId": "c",
    }
    v1 = message_from_v03(v03, "message")
    assert v1 == {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}], "contextId": "c"}
    back = message_to_v03({**v1, "role": "ROLE_AGENT"})
    assert back == {**v03, "role": "agent"}
    assert refused(message_from_v03, {"role": "robot"}, "message").code == -32602
