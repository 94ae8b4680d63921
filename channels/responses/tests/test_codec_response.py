"""Response objects, input-item pages, SSE events and the error envelope, checked against openai 3.54.0's models."""

from __future__ import annotations

import base64
import time
from typing import Any

import attrs
import orjson
import pytest
from openai._models import validate_type
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent

from afactors.model import ErrorInfo, Message, Update, UsagePart
from afactors.store import ResponseRecord
from afactors_responses.codec import (
    ApiError,
    EventStream,
    PageQuery,
    error_body,
    input_items_page,
    parse_create,
    parse_page_query,
    render_response,
    request_options,
    sse_frame,
    view_of_record,
    view_of_request,
)

OPEN_RESPONSES_REQUIRED = {
    "id",
    "object",
    "created_at",
    "completed_at",
    "status",
    "incomplete_details",
    "model",
    "previous_response_id",
    "instructions",
    "output",
    "error",
    "tools",
    "tool_choice",
    "truncation",
    "parallel_tool_calls",
    "text",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "temperature",
    "reasoning",
    "user",
    "usage",
    "max_output_tokens",
    "max_tool_calls",
    "store",
    "background",
    "service_tier",
    "metadata",
    "safety_identifier",
    "prompt_cache_key",
}


def strict(type_: Any, value: object) -> Any:
    """What `_strict_response_validation=True` does to every body and event."""
    return validate_type(type_=type_, value=orjson.loads(orjson.dumps(value)))


def record(**fields: Any) -> ResponseRecord:
    base: dict[str, Any] = {
        "id": "resp_r1",
        "tenant": "t",
        "conversation": "t/resp:resp_r1",
        "status": "completed",
        "input": (Message("user", "hi"),),
        "output": (Message("assistant", "Hello"),),
        "usage": UsagePart(3, 4),
        "created_at": 1_700_000_000.7,
        "completed_at": 1_700_000_002.2,
        "data": {
            "model": "gpt-x",
            "store": True,
            "background": False,
            "metadata": {"k": "v"},
            "instructions": "be nice",
        },
    }
    return ResponseRecord(**{**base, **fields})


@pytest.mark.parametrize("status", ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"])
def test_r20_r24_every_status_renders_a_strictly_valid_open_responses_object(status: str) -> None:
    body = render_response(view_of_record(record(status=status, error=ErrorInfo("agent_error", "boom"))))
    assert body.keys() >= OPEN_RESPONSES_REQUIRED
    parsed = strict(Response, body)
    assert parsed.status == status
    assert parsed.object == "response" and isinstance(body["created_at"], int)
    assert (parsed.completed_at is not None) == (status in ("completed", "failed", "cancelled", "incomplete"))


def test_r21_r22_r24_completed_response_echoes_the_request() -> None:
    body = render_response(view_of_record(record()))
    parsed = strict(Response, body)
    assert parsed.output_text == "Hello"
    assert body["created_at"] == 1_700_000_000 and body["completed_at"] == 1_700_000_002
    assert body["usage"] == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }
    assert (body["model"], body["instructions"], body["metadata"]) == ("gpt-x", "be nice", {"k": "v"})
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == ([], "auto", True)
    assert (body["text"], body["truncation"], body["store"], body["background"]) == (
        {"format": {"type": "text"}},
        "disabled",
        True,
        False,
    )


def test_r22_unknown_usage_is_null() -> None:
    assert render_response(view_of_record(record(usage=None)))["usage"] is None


def test_r23_failure_codes_outside_the_sdk_enum_become_server_error() -> None:
    failed = render_response(view_of_record(record(status="failed", output=(), error=ErrorInfo("agent_error", "boom"))))
    assert failed["error"] == {"code": "server_error", "message": "boom"}
    kept = render_response(view_of_record(record(status="failed", error=ErrorInfo("rate_limit_exceeded", "slow down"))))
    assert kept["error"]["code"] == "rate_limit_exceeded"
    assert (
        render_response(view_of_record(record(status="cancelled", error=ErrorInfo("cancelled", "x"))))["error"] is None
    )


def test_r13_conversation_and_previous_response_are_echoed() -> None:
    request = parse_create({"input": "x", "conversation": {"id": "conv_7"}})
    body = render_response(view_of_request(request, "resp_a", time.time()))
    assert body["conversation"] == {"id": "conv_7"} and body["status"] == "in_progress" and body["output"] == []
    chained = view_of_record(record(parent="resp_p"))
    assert render_response(chained)["previous_response_id"] == "resp_p"


def test_r10_background_request_renders_queued() -> None:
    body = render_response(view_of_request(parse_create({"input": "x", "background": True}), "resp_b", time.time()))
    assert (body["status"], body["background"], body["usage"], body["completed_at"]) == ("queued", True, None, None)


def test_r12_function_tools_are_echoed_in_the_sdk_shape() -> None:
    request = parse_create(
        {
            "input": "x",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": "required",
        }
    )
    parsed = strict(Response, render_response(view_of_request(request, "resp_a", time.time())))
    assert parsed.tools[0].name == "get_weather" and parsed.tool_choice == "required"
    assert request_options(request)["tools"][0]["type"] == "function"


# ---------------------------------------------------------------- input items

PNG = base64.b64encode(b"\x89PNG....").decode()


def items_view() -> Any:
    request = parse_create(
        {
            "input": [
                {"role": "developer", "content": "rules"},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "data:image/png;base64," + PNG},
                        {"type": "input_image", "file_id": "file-1"},
                        {"type": "input_file", "file_url": "https://x.test/a.pdf"},
                        {"type": "input_file", "file_data": PNG, "filename": "p.bin"},
                    ],
                },
                {"role": "assistant", "content": "earlier answer"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "pic"}, {"type": "input_image", "file_id": "file-2"}],
                },
            ]
        }
    )
    return view_of_request(request, "resp_in", time.time())


def test_r45_input_items_render_every_kind_in_sdk_shapes() -> None:
    page = input_items_page(items_view(), PageQuery(limit=100, order="asc"))
    for item in page["data"]:
        strict(ResponseItem, item)
    assert [i["type"] for i in page["data"]] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert page["data"][0]["role"] == "system"
    assert [c["type"] for c in page["data"][1]["content"]] == [
        "input_text",
        "input_image",
        "input_image",
        "input_file",
        "input_file",
    ]
    assert page["data"][1]["content"][2] == {"type": "input_image", "detail": "auto", "file_id": "file-1"}
    assert page["data"][2]["content"][0]["type"] == "output_text"
    assert page["data"][4]["output"] == "42"
    assert page["data"][5]["output"][1] == {"type": "input_image", "detail": "auto", "file_id": "file-2"}
    assert (page["first_id"], page["last_id"], page["has_more"]) == (
        page["data"][0]["id"],
        page["data"][-1]["id"],
        False,
    )


def test_r45_pages_default_to_newest_first_and_continue_after_an_id() -> None:
    view = items_view()
    ids_asc = [i["id"] for i in input_items_page(view, PageQuery(limit=100, order="asc"))["data"]]
    first = input_items_page(view, PageQuery(limit=4))
    assert [i["id"] for i in first["data"]] == ids_asc[::-1][:4] and first["has_more"] is True
    rest = input_items_page(view, PageQuery(limit=4, after=first["last_id"]))
    assert [i["id"] for i in rest["data"]] == ids_asc[::-1][4:] and rest["has_more"] is False
    with pytest.raises(ApiError) as caught:
        input_items_page(view, PageQuery(after="msg_nope"))
    assert (caught.value.status, caught.value.param) == (400, "after")


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "up"}, "order"),
    ],
)
def test_r45_bad_page_queries_are_refused(args: dict[str, str], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_page_query(args)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_page_query_defaults() -> None:
    assert parse_page_query({"include[]": "x"}) == PageQuery(limit=20, order="desc", after=None)
    assert parse_page_query({"limit": "5", "order": "asc", "after": "msg_1"}) == PageQuery(5, "asc", "msg_1")


# ---------------------------------------------------------------- events (R-30..R-35)


def run_stream(
    status: str, texts: list[str], *, background: bool = False, error: ErrorInfo | None = None
) -> list[dict]:
    start = view_of_request(parse_create({"input": "x", "background": background}), "resp_s", time.time())
    stream = EventStream(start, chunked=background)
    events = stream.start()
    for text in texts:
        events.extend(stream.add(Update(delta=text)))
    output = (Message("assistant", "".join(texts)),) if status == "completed" else ()
    final = attrs.evolve(start, status=status, output=output, error=error, completed_at=time.time())
    return events + stream.finish(final)


def test_r31_the_event_sequence_of_one_text_message() -> None:
    events = run_stream("completed", ["Hel", "lo"])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(10))
    for event in events:
        strict(ResponseStreamEvent, event)
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[-1]["response"]["output"][0]["id"] == events[4]["item_id"]
    assert events[6]["text"] == "Hello"


def test_r31_background_streams_start_queued() -> None:
    events = run_stream("completed", ["a b"], background=True)
    assert (events[0]["response"]["status"], events[1]["response"]["status"]) == ("queued", "in_progress")


def test_r34_a_failure_ends_with_response_failed() -> None:
    events = run_stream("failed", ["par"], error=ErrorInfo("agent_error", "boom"))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "boom"}
    assert events[-2]["item"]["status"] == "incomplete"
    for event in events:
        strict(ResponseStreamEvent, event)


def test_r43_a_cancelled_stream_just_ends() -> None:
    events = run_stream("cancelled", ["par"])
    assert events[-1]["type"] == "response.output_text.delta"


def test_r30_sse_frame() -> None:
    frame = sse_frame({"type": "response.created", "sequence_number": 0})
    assert frame == b'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n'


def test_r50_error_envelope() -> None:
    assert error_body("nope", param="input", code="invalid_type") == {
        "error": {"message": "nope", "type": "invalid_request_error", "param": "input", "code": "invalid_type"}
    }
