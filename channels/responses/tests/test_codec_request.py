"""`parse_create`: every accepted input shape (R-03..R-05, R-14) and every refusal with its envelope fields."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from afactors.model import DataPart, FunctionCallPart, FunctionResultPart, Message, ResponseTarget, TextPart, UriPart
from afactors_responses.codec import ApiError, parse_create, request_options

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def refused(body: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_create(body)
    assert caught.value.status == 400
    return caught.value


def test_r03_string_input_is_one_user_message() -> None:
    request = parse_create({"model": "m", "input": "hi"})
    assert request.input == (Message("user", "hi"),)
    assert (request.model, request.stream, request.store, request.background) == ("m", False, True, False)


def test_r02_model_defaults_when_absent_and_is_echoed_whatever_its_value() -> None:
    assert parse_create({"input": "x"}).model == "afactors"
    assert parse_create({"input": "x", "model": "gpt-9-imaginary"}).model == "gpt-9-imaginary"


def test_r04_message_items_with_and_without_type_and_every_role() -> None:
    request = parse_create(
        {
            "input": [
                {"role": "developer", "content": "be brief"},
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "sys"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "earlier"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                },
            ]
        }
    )
    assert request.input == (
        Message("system", "be brief"),
        Message("system", "sys"),
        Message("assistant", "earlier"),
        Message("user", (TextPart("a"), TextPart("b"))),
    )


def test_r04_image_parts_by_data_url_url_and_file_id() -> None:
    request = parse_create(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": PNG_URL, "detail": "high"},
                        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "original"},
                        {"type": "input_image", "file_id": "file-123"},
                    ],
                }
            ]
        }
    )
    assert request.input[0].contents == (
        DataPart(PNG, "image/png"),
        UriPart("https://example.com/cat.jpg", "image/*"),
        UriPart("file-123", "image/*"),
    )


def test_r04_file_parts_by_data_raw_base64_url_and_id() -> None:
    raw = base64.b64encode(b"%PDF-1.4").decode()
    request = parse_create(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_file", "file_data": "data:application/pdf;base64," + raw, "filename": "a.pdf"},
                        {"type": "input_file", "file_data": raw, "filename": "b.pdf"},
                        {"type": "input_file", "file_url": "https://example.com/c.txt"},
                        {"type": "input_file", "file_id": "file-9", "filename": "d.csv"},
                    ],
                }
            ]
        }
    )
    assert request.input[0].contents == (
        DataPart(b"%PDF-1.4", "application/pdf", "a.pdf"),
        DataPart(b"%PDF-1.4", "application/pdf", "b.pdf"),
        UriPart("https://example.com/c.txt", "application/octet-stream"),
        UriPart("file-9", "text/csv", "d.csv"),
    )


def test_r05_function_call_and_function_call_output_items() -> None:
    request = parse_create(
        {
            "input": [
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
                {"type": "function_call_output", "call_id": "c1", "output": "12C"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [
                        {"type": "input_text", "text": "see "},
                        {"type": "input_text", "text": "image"},
                        {"type": "input_image", "image_url": PNG_URL},
                    ],
                },
            ]
        }
    )
    assert request.input == (
        Message("assistant", (FunctionCallPart("c1", "get_weather", '{"city":"Oslo"}'),)),
        Message("tool", (FunctionResultPart("c1", "12C"),)),
        Message("tool", (FunctionResultPart("c2", "see image"), DataPart(PNG, "image/png"))),
    )


def test_r06_r11_r12_r24_settings_are_validated_and_kept_for_the_echo() -> None:
    tool = {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}
    request = parse_create(
        {
            "input": "x",
            "instructions": "be nice",
            "metadata": {"k": "v"},
            "tools": [tool],
            "tool_choice": {"type": "function", "name": "f"},
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 100,
            "parallel_tool_calls": False,
            "truncation": "auto",
            "user": "u1",
            "text": {"format": {"type": "json_object"}},
            "reasoning": {"effort": "low"},
            "service_tier": "flex",
            "top_logprobs": 3,
        }
    )
    assert request.settings == {
        "instructions": "be nice",
        "metadata": {"k": "v"},
        "tools": [tool],
        "tool_choice": {"type": "function", "name": "f"},
        "temperature": 0.5,
        "top_p": 0.9,
        "max_output_tokens": 100,
        "parallel_tool_calls": False,
        "truncation": "auto",
        "user": "u1",
        "text": {"format": {"type": "json_object"}},
        "reasoning": {"effort": "low", "summary": None},
        "service_tier": "flex",
        "top_logprobs": 3,
    }


def test_r14_unknown_fields_and_nulls_are_ignored() -> None:
    request = parse_create(
        {"input": "x", "frobnicate": {"a": 1}, "stream": None, "metadata": None, "tools": None, "instructions": None}
    )
    assert request.settings == {} and request.stream is False


def test_flags_and_continuation_fields() -> None:
    assert parse_create({"input": "x", "stream": True, "background": True}).background is True
    assert parse_create({"input": "x", "store": False}).store is False
    assert parse_create({"input": "x", "previous_response_id": "resp_abc"}).previous_response_id == "resp_abc"
    assert parse_create({"input": "x", "conversation": "my chat"}).conversation == "my chat"
    assert parse_create({"input": "x", "conversation": {"id": "conv_1"}}).conversation == "conv_1"


def test_request_options_carry_what_the_record_must_echo() -> None:
    request = parse_create(
        {"input": "x", "model": "m", "metadata": {"a": "b"}, "conversation": "c", "background": True}
    )
    assert request_options(request) == {
        "metadata": {"a": "b"},
        "model": "m",
        "store": True,
        "background": True,
        "conversation": "c",
    }


BAD_BODIES: list[tuple[str, Any, str | None, str | None]] = [
    # (case, body, param, code)
    ("array body", [1], None, "invalid_type"),
    ("string body", "hi", None, "invalid_type"),
    ("no input", {"model": "m"}, "input", "missing_required_parameter"),
    ("null input", {"input": None}, "input", "invalid_type"),
    ("number input", {"input": 3}, "input", "invalid_type"),
    ("empty list", {"input": []}, "input", "empty_array"),
    ("item not object", {"input": ["hi"]}, "input[0]", "invalid_type"),
    ("unknown item type", {"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type", "invalid_value"),
    (
        "reasoning no summary",
        {"input": [{"type": "reasoning", "id": "rs_1"}]},
        "input[0].summary",
        "missing_required_parameter",
    ),
    (
        "reasoning summary type",
        {"input": [{"type": "reasoning", "summary": [{"type": "x", "text": "t"}]}]},
        "input[0].summary[0].type",
        "invalid_value",
    ),
    (
        "reasoning encrypted number",
        {"input": [{"type": "reasoning", "summary": [], "encrypted_content": 5}]},
        "input[0].encrypted_content",
        "invalid_type",
    ),
    ("reference no id", {"input": [{"type": "item_reference"}]}, "input[0].id", "missing_required_parameter"),
    ("reference empty id", {"input": [{"type": "item_reference", "id": ""}]}, "input[0].id", "empty_string"),
    (
        "refusal without text",
        {"input": [{"role": "assistant", "content": [{"type": "refusal"}]}]},
        "input[0].content[0].refusal",
        "missing_required_parameter",
    ),
    ("include unknown", {"input": "x", "include": ["everything"]}, "include[0]", "invalid_value"),
    ("include not list", {"input": "x", "include": "reasoning.encrypted_content"}, "include", "invalid_type"),
    ("no role", {"input": [{"content": "x"}]}, "input[0].role", "missing_required_parameter"),
    ("bad role", {"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
    ("no content", {"input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
    ("content number", {"input": [{"role": "user", "content": 5}]}, "input[0].content", "invalid_type"),
    ("part not object", {"input": [{"role": "user", "content": ["x"]}]}, "input[0].content[0]", "invalid_type"),
    (
        "bad part type",
        {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "text missing",
        {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        "input[0].content[0].text",
        "missing_required_parameter",
    ),
    (
        "text not string",
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": 1}]}]},
        "input[0].content[0].text",
        "invalid_type",
    ),
    (
        "image both",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": PNG_URL, "file_id": "f"}]}]},
        "input[0].content[0]",
        "invalid_value",
    ),
    (
        "image none",
        {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
        "input[0].content[0]",
        "invalid_value",
    ),
    (
        "image bad detail",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": PNG_URL, "detail": "max"}]}]},
        "input[0].content[0].detail",
        "invalid_value",
    ),
    (
        "image bad scheme",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/y.png"}]}]},
        "input[0].content[0].image_url",
        "invalid_value",
    ),
    (
        "image not image",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:text/plain;base64,aGk="}]}]},
        "input[0].content[0].image_url",
        "invalid_value",
    ),
    (
        "image bad base64",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,@@@"}]}]},
        "input[0].content[0].image_url",
        "invalid_value",
    ),
    (
        "image malformed data url",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64"}]}]},
        "input[0].content[0].image_url",
        "invalid_value",
    ),
    (
        "file two sources",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "a", "file_url": "https://x"}]}]},
        "input[0].content[0]",
        "invalid_value",
    ),
    (
        "file bad base64",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "!!"}]}]},
        "input[0].content[0].file_data",
        "invalid_value",
    ),
    (
        "file bad url",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "file:///etc/passwd"}]}]},
        "input[0].content[0].file_url",
        "invalid_value",
    ),
    (
        "file empty name",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "a", "filename": ""}]}]},
        "input[0].content[0].filename",
        "empty_string",
    ),
    (
        "fco no call id",
        {"input": [{"type": "function_call_output", "output": "x"}]},
        "input[0].call_id",
        "missing_required_parameter",
    ),
    (
        "fco no output",
        {"input": [{"type": "function_call_output", "call_id": "c"}]},
        "input[0].output",
        "missing_required_parameter",
    ),
    (
        "fco bad output part",
        {"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "output_text", "text": "x"}]}]},
        "input[0].output[0].type",
        "invalid_value",
    ),
    (
        "fc no name",
        {"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
        "input[0].name",
        "missing_required_parameter",
    ),
    (
        "fc args not string",
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        "input[0].arguments",
        "invalid_type",
    ),
    ("model not string", {"input": "x", "model": 4}, "model", "invalid_type"),
    ("model empty", {"input": "x", "model": ""}, "model", "empty_string"),
    ("instructions list", {"input": "x", "instructions": ["a"]}, "instructions", "invalid_type"),
    ("metadata list", {"input": "x", "metadata": ["a"]}, "metadata", "invalid_type"),
    (
        "metadata 17 pairs",
        {"input": "x", "metadata": {str(i): "v" for i in range(17)}},
        "metadata",
        "object_above_max_properties",
    ),
    ("metadata long key", {"input": "x", "metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
    ("metadata long value", {"input": "x", "metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
    ("metadata number value", {"input": "x", "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ("tools not list", {"input": "x", "tools": {"type": "function"}}, "tools", "invalid_type"),
    ("tool not object", {"input": "x", "tools": ["f"]}, "tools[0]", "invalid_type"),
    ("tool web search", {"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_value"),
    ("tool no name", {"input": "x", "tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
    ("tool bad name", {"input": "x", "tools": [{"type": "function", "name": "a b"}]}, "tools[0].name", "invalid_value"),
    (
        "tool bad parameters",
        {"input": "x", "tools": [{"type": "function", "name": "f", "parameters": "{}"}]},
        "tools[0].parameters",
        "invalid_type",
    ),
    (
        "tool bad strict",
        {"input": "x", "tools": [{"type": "function", "name": "f", "strict": "yes"}]},
        "tools[0].strict",
        "invalid_type",
    ),
    (
        "tool duplicate",
        {"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "f"}]},
        "tools",
        "invalid_value",
    ),
    ("tool_choice word", {"input": "x", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    (
        "tool_choice unknown fn",
        {"input": "x", "tool_choice": {"type": "function", "name": "g"}},
        "tool_choice.name",
        "invalid_value",
    ),
    (
        "tool_choice other type",
        {"input": "x", "tool_choice": {"type": "web_search"}},
        "tool_choice.type",
        "invalid_value",
    ),
    ("temperature string", {"input": "x", "temperature": "hot"}, "temperature", "invalid_type"),
    ("temperature range", {"input": "x", "temperature": 3}, "temperature", "invalid_value"),
    ("top_p bool", {"input": "x", "top_p": True}, "top_p", "invalid_type"),
    ("max tokens zero", {"input": "x", "max_output_tokens": 0}, "max_output_tokens", "integer_below_min_value"),
    ("max tokens float", {"input": "x", "max_output_tokens": 1.5}, "max_output_tokens", "invalid_type"),
    ("top_logprobs big", {"input": "x", "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
    ("text not object", {"input": "x", "text": "plain"}, "text", "invalid_type"),
    ("text bad format", {"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value"),
    (
        "json_schema no schema",
        {"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
        "text.format.schema",
        "missing_required_parameter",
    ),
    ("reasoning bad effort", {"input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value"),
    ("truncation", {"input": "x", "truncation": "sometimes"}, "truncation", "invalid_value"),
    ("stream string", {"input": "x", "stream": "yes"}, "stream", "invalid_type"),
    ("store number", {"input": "x", "store": 0}, "store", "invalid_type"),
    ("background number", {"input": "x", "background": 1}, "background", "invalid_type"),
    ("background unstored", {"input": "x", "background": True, "store": False}, "background", "invalid_value"),
    ("previous not string", {"input": "x", "previous_response_id": 7}, "previous_response_id", "invalid_type"),
    ("previous malformed", {"input": "x", "previous_response_id": "abc"}, "previous_response_id", "invalid_value"),
    (
        "previous with slash",
        {"input": "x", "previous_response_id": "resp_a/b"},
        "previous_response_id",
        "invalid_value",
    ),
    (
        "previous too long",
        {"input": "x", "previous_response_id": "resp_" + "a" * 300},
        "previous_response_id",
        "string_above_max_length",
    ),
    ("conversation number", {"input": "x", "conversation": 5}, "conversation", "invalid_type"),
    ("conversation empty", {"input": "x", "conversation": ""}, "conversation", "empty_string"),
    ("conversation no id", {"input": "x", "conversation": {}}, "conversation.id", "missing_required_parameter"),
    ("conversation control char", {"input": "x", "conversation": "a\nb"}, "conversation", "invalid_value"),
    ("conversation too long", {"input": "x", "conversation": "c" * 257}, "conversation", "string_above_max_length"),
    (
        "conversation and previous",
        {"input": "x", "conversation": "c", "previous_response_id": "resp_1"},
        "conversation",
        None,
    ),
]


@pytest.mark.parametrize(("case", "body", "param", "code"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_are_refused_with_param_and_code(case: str, body: Any, param: str | None, code: str | None) -> None:
    error = refused(body)
    assert (error.param, error.code) == (param, code)
    assert error.body() == {
        "error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": code}
    }
    assert error.message


def test_every_item_type_the_server_emits_is_accepted_back() -> None:
    from afactors.model import FunctionCallPart, FunctionResultPart, ReasoningPart
    from afactors_responses.codec.request import ItemReference, resolve_input

    request = parse_create(
        {
            "include": ["reasoning.encrypted_content"],
            "input": [
                {"role": "developer", "content": "be brief"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "think"}],
                    "encrypted_content": "opaque==",
                },
                {
                    "type": "reasoning",
                    "id": "rs_2",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "raw"}],
                },
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "phase": "final_answer",
                    "content": [
                        {"type": "output_text", "text": "ok", "annotations": [], "logprobs": []},
                        {"type": "refusal", "refusal": " no"},
                    ],
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "c1",
                    "name": "f",
                    "arguments": "{}",
                    "status": "completed",
                },
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {"type": "item_reference", "id": "msg_abc_0"},
                {"id": "msg_abc_1"},
            ],
        }
    )
    items = request.input
    assert items[0] == Message("system", "be brief") and items[1] == Message("user", "hi")
    assert items[2] == Message("assistant", (ReasoningPart("think", "opaque=="),))
    assert items[3] == Message("assistant", (ReasoningPart("raw"),))
    assert items[4].text == "ok no"
    assert items[5] == Message("assistant", (FunctionCallPart("c1", "f", "{}"),))
    assert items[6] == Message("tool", (FunctionResultPart("c1", "42"),))
    assert items[7] == ItemReference("msg_abc_0", "input[7]") and items[8] == ItemReference("msg_abc_1", "input[8]")
    assert request.settings["include"] == ["reasoning.encrypted_content"]
    found = Message("assistant", "from before")
    resolved = resolve_input(items, {"msg_abc_0": found, "msg_abc_1": found}.get)
    assert resolved[7] == resolved[8] == found
    with pytest.raises(ApiError) as caught:
        resolve_input(items, lambda _: None)
    assert caught.value.param == "input[7].id" and caught.value.code == "item_not_found"


def test_the_response_target_extension() -> None:
    plain = parse_create({"input": "hi"})
    assert plain.response_target is None
    named = parse_create({"input": "hi", "response_target": {"kind": "channels", "channels": ["telegram"],
                                                             "echo_input": True}})  # fmt: skip
    assert named.response_target == ResponseTarget.channel("telegram", echo_input=True) and not named.background
    quiet = parse_create({"input": "hi", "response_target": "none"})
    assert quiet.response_target == ResponseTarget.none() and quiet.background  # "none" answers in the background
    for bad, message in [
        ("sometimes", "unknown response target kind"),
        ({"kind": "identities", "identities": [{"channel": "telegram"}]}, "'response_target.identities[].user'"),
        ({"kind": "active", "echo_input": 1}, "must be a boolean"),
    ]:
        with pytest.raises(ApiError) as error:
            parse_create({"input": "hi", "response_target": bad})
        assert error.value.status == 400 and error.value.param == "response_target"
        assert message in error.value.message
    with pytest.raises(ApiError) as unstored:
        parse_create({"input": "hi", "store": False, "response_target": "none"})
    assert unstored.value.param == "response_target"
