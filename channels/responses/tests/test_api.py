"""Create, retrieve, delete and input items through the official SDK in strict mode.

Covers R-01..R-14, R-20..R-24 and R-40..R-45.
"""

from __future__ import annotations

import base64

import openai
import pytest

from afactors.host import HookRejected, ServerLimits
from afactors.model import DataPart, Envelope, FunctionCallPart, FunctionResultPart, Identity, Message, TextPart
from afactors_responses import ResponsesChannel

PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()


async def test_r01_r03_r20_r21_create_answers_a_string_input(serve) -> None:
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(model="whatever-model", input="hello")
    assert response.output_text == "Turn 1. You said: hello"
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert response.model == "whatever-model"
    assert response.output[0].id.startswith("msg_") and response.completed_at is not None
    assert (response.store, response.background, response.tools, response.metadata) == (True, False, [], {})


async def test_r04_r05_list_input_reaches_the_target_as_messages(serve, recorder) -> None:
    async with serve(recorder) as served, served.sdk() as client:
        await client.responses.create(
            model="m",
            input=[
                {"role": "developer", "content": "rules"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "see"},
                        {"type": "input_image", "image_url": PNG_URL, "detail": "low"},
                    ],
                },
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
            ],
        )
    assert recorder.seen[0].messages == (
        Message("system", "rules"),
        Message("user", (TextPart("see"), DataPart(b"\x89PNG fake", "image/png"))),
        Message("assistant", (FunctionCallPart("c1", "lookup", "{}"),)),
        Message("tool", (FunctionResultPart("c1", "42"),)),
    )


async def test_r06_instructions_reach_the_target_and_are_not_inherited(serve, recorder) -> None:
    async with serve(recorder) as served, served.sdk() as client:
        first = await client.responses.create(model="m", input="a", instructions="be brief")
        second = await client.responses.create(model="m", input="b", previous_response_id=first.id)
    assert first.instructions == "be brief" and second.instructions is None
    assert recorder.seen[0].options["instructions"] == "be brief"
    assert "instructions" not in recorder.seen[1].options


async def test_r11_r12_r14_settings_are_echoed_and_unknown_fields_ignored(serve) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "w",
        "parameters": {"type": "object"},
        "strict": True,
    }
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(
            model="m",
            input="x",
            metadata={"order": "42"},
            tools=[tool],
            temperature=0.2,
            max_output_tokens=50,
            extra_body={"not_a_field": {"deep": True}},
        )
        again = await client.responses.retrieve(response.id)
    for got in (response, again):
        assert got.metadata == {"order": "42"}
        assert got.tools[0].name == "get_weather" and got.tools[0].strict is True
        assert (got.temperature, got.max_output_tokens) == (0.2, 50)


async def test_r40_retrieve_shows_the_same_response_and_unknown_ids_are_404(serve) -> None:
    async with serve() as served, served.sdk() as client:
        created = await client.responses.create(model="m", input="x")
        got = await client.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError) as missing:
            await client.responses.retrieve("resp_doesnotexist")
    assert got.model_dump() == created.model_dump()
    assert missing.value.body == {
        "message": "Response with id 'resp_doesnotexist' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_r08_store_false_is_neither_retrievable_nor_continuable(serve) -> None:
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(model="m", input="secret", store=False)
        assert response.store is False and response.output_text == "Turn 1. You said: secret"
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(response.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="m", input="more", previous_response_id=response.id)
    assert (refused.value.param, refused.value.code) == ("previous_response_id", "previous_response_not_found")


async def test_r07_unknown_previous_response_is_400(serve) -> None:
    async with serve() as served, served.sdk() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="m", input="x", previous_response_id="resp_nope")
    assert (refused.value.status_code, refused.value.param, refused.value.code) == (
        400,
        "previous_response_id",
        "previous_response_not_found",
    )


async def test_r44_delete_hides_a_response_for_good(serve) -> None:
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(model="m", input="x")
        raw = await served.http.delete(f"/v1/responses/{response.id}")
        assert raw.status_code == 200 and raw.json() == {"id": response.id, "object": "response", "deleted": True}
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.delete(response.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="m", input="x", previous_response_id=response.id)
    assert refused.value.code == "previous_response_not_found"


async def test_r45_input_items_paginate_through_the_sdk(serve) -> None:
    texts = [f"m{i}" for i in range(5)]
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(model="m", input=[{"role": "user", "content": t} for t in texts])
        newest_first = [item async for item in client.responses.input_items.list(response.id, limit=2)]
        oldest_first = await client.responses.input_items.list(response.id, order="asc", limit=100)
        with pytest.raises(openai.NotFoundError):
            await client.responses.input_items.list("resp_unknown")
    assert [item.content[0].text for item in newest_first] == texts[::-1]
    assert [item.content[0].text for item in oldest_first.data] == texts
    assert len({item.id for item in newest_first}) == 5


async def test_r42_include_parameters_are_accepted_and_ignored(serve) -> None:
    async with serve() as served, served.sdk() as client:
        created = await client.responses.create(model="m", input="x", include=["message.output_text.logprobs"])
        got = await client.responses.retrieve(
            created.id, include=["message.output_text.logprobs"], include_obfuscation=False
        )
        items = await client.responses.input_items.list(created.id, include=["message.input_image.image_url"])
    assert got.output_text == created.output_text and len(items.data) == 1


async def test_a_run_hook_can_refuse_a_request_with_its_own_status(serve) -> None:
    def hook(envelope: Envelope) -> Envelope:
        if "forbidden" in envelope.input[-1].text:
            raise HookRejected("that topic is not allowed", status=403, code="topic_refused")
        return envelope

    async with serve(channel=ResponsesChannel(run_hook=hook)) as served, served.sdk() as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.responses.create(model="m", input="a forbidden thing")
        allowed = await client.responses.create(model="m", input="fine")
    assert refused.value.code == "topic_refused" and allowed.status == "completed"


async def test_safety_identifier_or_user_becomes_the_envelope_identity(serve, recorder) -> None:
    async with serve(recorder) as served, served.sdk() as client:
        await client.responses.create(model="m", input="x", safety_identifier="sid-1", user="u-1")
        await client.responses.create(model="m", input="x", user="u-2")
        await client.responses.create(model="m", input="x")
    assert [ctx.identity for ctx in recorder.seen] == [
        Identity("responses", "sid-1"),
        Identity("responses", "u-2"),
        None,
    ]


@pytest.mark.parametrize("lean", [True, False])
async def test_a_created_response_names_its_id_in_a_header_for_a_front_proxy(serve, lean) -> None:
    async with serve(limits=ServerLimits(lean=lean)) as served, served.sdk() as client:
        plain = await client.responses.with_raw_response.create(model="m", input="hi")
        streamed = await client.responses.with_raw_response.create(model="m", input="hi", stream=True)
        background = await client.responses.with_raw_response.create(model="m", input="hi", background=True)
        events = [event async for event in streamed.parse()]
        ids = [plain.parse().id, events[0].response.id, background.parse().id]
        retrieved = await served.http.get(f"/v1/responses/{ids[0]}")
    assert [r.headers.get("x-afactors-response-id") for r in (plain, streamed, background)] == ids
    assert retrieved.status_code == 200 and "x-afactors-response-id" not in retrieved.headers
