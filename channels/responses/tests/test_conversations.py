"""Branching with previous_response_id vs named conversations (R-07, R-13): context, isolation, serialisation, busy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
import trio

from afactors.model import TurnContext, Update
from afactors_responses import ResponsesChannel


async def test_r07_a_five_turn_chain_carries_its_context(serve) -> None:
    async with serve() as served, served.sdk() as client:
        previous = None
        texts = []
        for n in range(1, 6):
            response = await client.responses.create(model="m", input=f"message {n}", previous_response_id=previous)
            assert response.previous_response_id == previous
            texts.append(response.output_text)
            previous = response.id
    assert texts == [f"Turn {n}. You said: message {n}" for n in range(1, 6)]


def user_texts(ctx: TurnContext) -> list[str]:
    return [m.text for m in ctx.messages if m.role == "user"]


async def test_r07_branches_from_one_response_never_see_each_other(serve, recorder) -> None:
    async with serve(recorder) as served, served.sdk() as client:
        root = await client.responses.create(model="m", input="root")
        left = await client.responses.create(model="m", input="left", previous_response_id=root.id)
        await client.responses.create(model="m", input="right", previous_response_id=root.id)
        await client.responses.create(model="m", input="again", previous_response_id=left.id)
    assert [user_texts(ctx) for ctx in recorder.seen] == [
        ["root"],
        ["root", "left"],
        ["root", "right"],
        ["root", "left", "again"],
    ]
    assert recorder.seen[3].messages[1].role == "assistant"  # the chain carries the answers too


class Overlap:
    """Answers with the user texts it sees; turns other than "root" wait until `n` of them are running at once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.running = 0
        self.all_in = trio.Event()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if ctx.messages[-1].text != "root":
            self.running += 1
            if self.running == self.n:
                self.all_in.set()
            await self.all_in.wait()
        yield Update(delta=" | ".join(user_texts(ctx)))


async def test_r07_branches_running_at_the_same_time_stay_isolated(serve) -> None:
    answers: dict[str, str] = {}
    async with serve(Overlap(3)) as served, served.sdk() as client:
        root = await client.responses.create(model="m", input="root")

        async def branch(name: str) -> None:
            response = await client.responses.create(model="m", input=name, previous_response_id=root.id)
            answers[name] = response.output_text

        async with trio.open_nursery() as nursery:
            for name in ("a", "b", "c"):
                nursery.start_soon(branch, name)
    assert answers == {"a": "root | a", "b": "root | b", "c": "root | c"}


async def test_r13_a_conversation_remembers_every_turn_and_is_echoed(serve) -> None:
    async with serve() as served, served.sdk() as client:
        first = await client.responses.create(model="m", input="remember the sky is green", conversation="chat-1")
        second = await client.responses.create(model="m", input="what do you remember?", conversation={"id": "chat-1"})
        other = await client.responses.create(model="m", input="what do you remember?", conversation="chat-2")
    assert first.conversation.id == "chat-1" and second.conversation.id == "chat-1"
    assert second.output_text == "Turn 2. I remember: the sky is green."
    assert other.output_text == "Turn 1. I don't remember anything yet."


async def test_r13_conversation_and_previous_response_together_are_refused(serve) -> None:
    async with serve() as served, served.sdk() as client:
        first = await client.responses.create(model="m", input="x")
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="m", input="y", conversation="c", previous_response_id=first.id)
    assert refused.value.param == "conversation"


async def test_twenty_concurrent_turns_of_one_conversation_are_serialised(serve) -> None:
    answers: list[str] = []
    async with serve() as served, served.sdk() as client:

        async def turn(n: int) -> None:
            answers.append((await client.responses.create(model="m", input=f"n{n}", conversation="busy")).output_text)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(turn, n)
        last = await client.responses.create(model="m", input="last", conversation="busy")
    assert sorted(int(a.split(".")[0].removeprefix("Turn ")) for a in answers) == list(range(1, 21))
    assert last.output_text == "Turn 21. You said: last"


@pytest.mark.parametrize("where", ["host", "channel"])
async def test_r51_reject_policy_answers_409_without_retry(serve, gate, where: str) -> None:
    options = {"busy_policy": "reject"} if where == "host" else {"channel": ResponsesChannel(busy_policy="reject")}
    async with serve(gate, **options) as served, served.sdk() as client, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: client.responses.create(model="m", input="first", conversation="c"))
        await gate.entered.wait()
        with pytest.raises(openai.ConflictError) as busy:
            await client.responses.create(model="m", input="second", conversation="c")
        raw = await served.http.post("/v1/responses", json={"input": "third", "conversation": "c"})
        gate.open()
    assert busy.value.code == "conversation_busy" and busy.value.status_code == 409
    assert raw.status_code == 409 and raw.headers["x-should-retry"] == "false"
    assert raw.json()["error"]["code"] == "conversation_busy"
