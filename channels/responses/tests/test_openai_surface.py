"""Issue 10 surface with real clients: Conversations (SDK strict), item types replayed (reasoning, encrypted
content, item references), in-flight retrieve, failed turns, root mount, isolation headers, the OpenAI Agents SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import trio

from afactors.model import FunctionCallPart, FunctionResultPart, ReasoningPart, TurnContext, Update
from afactors_responses import ResponsesChannel


class Thinker:
    """Reasons (with opaque encrypted content) and calls the first offered tool; answers once it has the result.

    Records the messages of each turn, so a test sees what a client replayed.
    """

    def __init__(self) -> None:
        self.seen: list[TurnContext] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.seen.append(ctx)
        results = [p for p in ctx.messages[-1].contents if isinstance(p, FunctionResultPart)]
        tools = ctx.options.get("tools") or []
        yield Update(part=ReasoningPart(f"step {len(self.seen)}", encrypted=f"enc-{len(self.seen)}"))
        if results:
            yield Update(delta=f"It is {results[0].result}.")
        elif tools:
            yield Update(part=FunctionCallPart(f"call_{len(self.seen)}", tools[0]["name"], '{"city": "Oslo"}'))
        else:
            yield Update(delta="ok")


@pytest.fixture
def thinker() -> Thinker:
    return Thinker()


WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}}


async def test_stateless_tool_loop_replays_reasoning_with_encrypted_content(serve, thinker) -> None:
    async with serve(thinker) as served, served.sdk() as client:
        first = await client.responses.create(
            model="m",
            input="weather?",
            tools=[WEATHER],
            store=False,
            include=["reasoning.encrypted_content"],  # type: ignore[list-item]
        )
        kinds = [item.type for item in first.output]
        assert kinds == ["reasoning", "function_call"]
        assert first.output[0].encrypted_content == "enc-1"  # type: ignore[union-attr]
        call = first.output[1]
        replay = [
            {"role": "user", "content": "weather?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ]  # type: ignore[union-attr]
        second = await client.responses.create(model="m", input=replay, tools=[WEATHER], store=False)  # type: ignore[arg-type,list-item]
        assert second.output_text == "It is sunny."
        reasoning = [item for item in second.output if item.type == "reasoning"]
        assert reasoning and reasoning[0].encrypted_content is None  # not asked for this time
    given = thinker.seen[-1].messages
    assert given[1].contents == (ReasoningPart("step 1", "enc-1"),)
    assert given[2].contents == (FunctionCallPart("call_1", "weather", '{"city": "Oslo"}'),)


async def test_item_reference_to_a_stored_output_item(serve, thinker) -> None:
    async with serve(thinker) as served, served.sdk() as client:
        first = await client.responses.create(model="m", input="weather?", tools=[WEATHER])  # type: ignore[list-item]
        call = first.output[1]
        await client.responses.create(
            model="m",
            tools=[WEATHER],
            input=[  # type: ignore[list-item]
                {"type": "item_reference", "id": first.output[0].id},  # type: ignore[union-attr]
                {"type": "item_reference", "id": call.id},  # type: ignore[union-attr]
                {"type": "function_call_output", "call_id": call.call_id, "output": "rainy"},  # type: ignore[union-attr]
            ],
        )
    assert thinker.seen[-1].messages[0].contents == (ReasoningPart("step 1", "enc-1"),)
    assert thinker.seen[-1].messages[1].contents[0] == FunctionCallPart("call_1", "weather", '{"city": "Oslo"}')


async def test_a_running_foreground_response_is_retrievable(serve, gate) -> None:
    """A stored foreground response answers GET while it runs: in_progress, with its output so far."""
    async with serve(gate) as served, served.sdk() as client:
        async with client.responses.stream(model="m", input="hello") as stream:
            response_id = ""
            while (event := await stream.__anext__()).type != "response.output_text.delta":
                if event.type == "response.created":
                    response_id = event.response.id
            running = await client.responses.retrieve(response_id)
            assert running.status == "in_progress" and running.output_text == "Turn 1."
            items = await client.responses.input_items.list(response_id)
            assert [item.type for item in items.data] == ["message"]
            gate.open()
            final = await stream.get_final_response()
        assert final.id == response_id
        assert (await client.responses.retrieve(response_id)).status == "completed"


async def test_no_404_window_after_a_client_disconnects(serve, gate, first_event) -> None:
    async with serve(gate) as served:
        created = await first_event(served.url, {"input": "hello", "stream": True})  # then the client is gone
        response_id = created["response"]["id"]
        for _ in range(100):  # whatever moment we look, the id is known: running, then cancelled
            response = await served.http.get(f"/v1/responses/{response_id}")
            assert response.status_code == 200
            if response.json()["status"] == "cancelled":
                break
            await trio.sleep(0.005)
        assert response.json()["status"] == "cancelled"


async def test_a_failed_turn_keeps_status_failed_and_its_error(serve) -> None:
    async def broken(messages: Any) -> str:
        raise RuntimeError("model down")

    async with serve(broken) as served, served.sdk() as client:
        response = await client.responses.create(model="m", input="hi")
        assert response.status == "failed" and response.error is not None
        assert response.error.code == "server_error" and "model down" in response.error.message
        again = await client.responses.retrieve(response.id)
        assert again.status == "failed" and again.error == response.error


async def test_conversations_api_with_the_sdk_in_strict_mode(serve, recorder) -> None:
    async with serve(recorder) as served, served.sdk() as client:
        conversation = await client.conversations.create(
            items=[{"type": "message", "role": "user", "content": "remember 7"}], metadata={"topic": "numbers"}
        )
        assert conversation.object == "conversation" and conversation.metadata == {"topic": "numbers"}
        response = await client.responses.create(model="m", input="what number?", conversation=conversation.id)
        assert response.output_text == "user:remember 7 | user:what number?"  # the added item was seen
        added = await client.conversations.items.create(
            conversation.id, items=[{"type": "message", "role": "user", "content": "and 8"}]
        )
        assert added.data[0].type == "message"
        items = [item async for item in client.conversations.items.list(conversation.id, order="asc", limit=2)]
        assert [item.type for item in items] == ["message"] * 4  # paged by two: the SDK followed `after`
        assert [i.role for i in items] == ["user", "user", "assistant", "user"]  # type: ignore[union-attr]
        one = await client.conversations.items.retrieve(items[2].id, conversation_id=conversation.id)
        assert one.id == items[2].id
        await client.conversations.items.delete(items[0].id, conversation_id=conversation.id)
        left = [item.id async for item in client.conversations.items.list(conversation.id, order="asc")]
        assert items[0].id not in left and len(left) == 3
        again = await client.responses.create(model="m", input="now?", conversation=conversation.id)
        assert again.status == "completed"
        users = [m.text for m in recorder.seen[-1].messages if m.role == "user"]
        assert users == ["what number?", "and 8", "now?"]  # the deleted item is gone from the context
        updated = await client.conversations.update(conversation.id, metadata={"topic": "changed"})
        assert updated.metadata == {"topic": "changed"}
        assert (await client.conversations.retrieve(conversation.id)).metadata == {"topic": "changed"}
        deleted = await client.conversations.delete(conversation.id)
        assert deleted.deleted is True
        with pytest.raises(openai.NotFoundError):
            await client.conversations.retrieve(conversation.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model="m", input="x", conversation=conversation.id)


async def test_conversations_isolate_tenants_and_stay_deleted_across_restart(serve, recorder) -> None:
    async with serve(recorder, api_keys=["k1", "k2"]) as served, served.sdk("k1") as one, served.sdk("k2") as two:
        conversation = await one.conversations.create(items=[{"role": "user", "content": "secret"}])
        with pytest.raises(openai.NotFoundError):
            await two.conversations.retrieve(conversation.id)
        with pytest.raises(openai.NotFoundError):
            await two.conversations.items.list(conversation.id)
        # the same isolation header narrows a tenant to one user
        header = {"x-agent-user-id": "u1"}
        with pytest.raises(openai.NotFoundError):
            await one.conversations.retrieve(conversation.id, extra_headers=header)
        await one.conversations.delete(conversation.id)
    async with serve(recorder, api_keys=["k1"], state_dir=served.host.store.path) as again, again.sdk("k1") as one:
        with pytest.raises(openai.NotFoundError):
            await one.conversations.retrieve(conversation.id)
        with pytest.raises(openai.NotFoundError):
            await one.conversations.items.list(conversation.id)


async def test_root_mount_serves_responses_and_conversations(serve) -> None:
    async with (
        serve(channel=ResponsesChannel(path="")) as served,
        openai.AsyncOpenAI(base_url=served.url, api_key="x", max_retries=0, _strict_response_validation=True) as client,
    ):
        response = await client.responses.create(model="m", input="hi")
        assert response.status == "completed"
        conversation = await client.conversations.create()
        assert (await client.conversations.retrieve(conversation.id)).id == conversation.id


def _agents_tool_loop(url: str) -> tuple[str, str]:
    """The OpenAI Agents SDK (asyncio) in its own loop: a tool loop that replays reasoning, then a session."""
    from agents import Agent, OpenAIConversationsSession, RunConfig, Runner, function_tool, set_tracing_disabled
    from agents.models.openai_responses import OpenAIResponsesModel

    set_tracing_disabled(True)

    @function_tool
    def weather(city: str) -> str:
        """The weather of a city."""
        return "sunny"

    async def main() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        model = OpenAIResponsesModel(model="m", openai_client=client)
        agent = Agent(name="a", model=model, tools=[weather])
        result = await Runner.run(agent, "weather in Oslo?", run_config=RunConfig(tracing_disabled=True))
        session = OpenAIConversationsSession(openai_client=client)
        chatty = Agent(name="b", model=model)
        await Runner.run(chatty, "first", session=session)
        second = await Runner.run(chatty, "second", session=session)
        items = await session.get_items()
        await client.close()
        return str(result.final_output), f"{second.final_output}|{len(items)}"

    return asyncio.run(main())


async def test_openai_agents_sdk_tool_loop_and_conversations_session(serve, thinker) -> None:
    async with serve(thinker) as served:
        final, session = await trio.to_thread.run_sync(_agents_tool_loop, served.url)
    assert final == "It is sunny."
    # the tool loop replayed the reasoning item and the call, so the target saw them in its second turn
    assert any(isinstance(p, ReasoningPart) for m in thinker.seen[1].messages for p in m.contents)
    assert session.startswith("ok|") and int(session.split("|")[1]) >= 4


async def test_bad_input_on_an_existing_conversation(serve) -> None:
    async with serve() as served:
        conversation = (await served.http.post("/v1/conversations", json={})).json()["id"]
        base = f"/v1/conversations/{conversation}"
        cases = [
            ("POST", base, {}, 400, "metadata", "missing_required_parameter"),
            ("POST", base, {"metadata": "x"}, 400, "metadata", "invalid_type"),
            ("POST", f"{base}/items", {}, 400, "items", "missing_required_parameter"),
            ("POST", f"{base}/items", {"items": []}, 400, "items", "empty_array"),
            (
                "POST",
                f"{base}/items",
                {"items": [{"role": "robot", "content": "x"}]},
                400,
                "items[0].role",
                "invalid_value",
            ),
            ("GET", f"{base}/items?limit=0", None, 400, "limit", "invalid_value"),
            ("GET", f"{base}/items?order=up", None, 400, "order", "invalid_value"),
            ("GET", f"{base}/items?after=msg_nope_0", None, 400, "after", "invalid_value"),
            ("GET", f"{base}/items?include=everything", None, 200, None, None),  # a query `include` is only read
            ("GET", f"{base}/items/msg_nope_0", None, 404, None, None),
            ("DELETE", f"{base}/items/msg_nope_0", None, 404, None, None),
            ("POST", f"{base}/items/msg_nope_0", {}, 405, None, "method_not_allowed"),
            ("PATCH", f"{base}/items", {}, 405, None, "method_not_allowed"),
        ]
        for method, path, body, status, param, code in cases:
            response = (
                await served.http.request(method, path, json=body)
                if body is not None
                else (await served.http.request(method, path))
            )
            assert response.status_code == status, (method, path, response.text)
            if status != 200:
                error = response.json()["error"]
                assert (error["param"], error["code"]) == (param, code) and error["message"], (method, path)
