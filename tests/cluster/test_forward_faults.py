"""Forwarding when the network fails after the owner accepted a turn: the turn is durable there, so the forwarding
node joins it again by its idempotency key instead of running it twice; and background turns forwarded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio

from afactors.cluster import Forwarder
from afactors.model import TurnContext, Update
from channels.responses.tests.test_streaming import Hanging
from tests.cluster.conftest import FAST, SECRET, OpenNodes, Relay


class Gated:
    """Answers "one", waits for `go`, answers "two"; counts its runs."""

    def __init__(self) -> None:
        self.entered, self.go = trio.Event(), trio.Event()
        self.runs = 0

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.runs += 1
        self.entered.set()
        yield Update(delta="one")
        await self.go.wait()
        yield Update(delta="two")


async def test_a_connection_lost_after_acceptance_rejoins_the_turn_instead_of_running_it_again(
    nodes: OpenNodes,
) -> None:
    agent = Gated()
    async with nodes(agent) as n, trio.open_nursery() as nursery:
        relay = Relay(int(n.b_url.rpartition(":")[2]))
        n.cluster.urls["b"] = await nursery.start(relay.serve)
        answers: list[Any] = []

        async def ask(stream: bool) -> None:
            body = {"model": "m", "input": "x", "conversation": "b-rejoin", "stream": stream}
            answers.append(await n.http.post("/v1/responses", json=body))

        nursery.start_soon(ask, False)
        await agent.entered.wait()
        asked = len(n.cluster.located)
        relay.cut()  # the answer breaks off mid-turn
        with trio.fail_after(10):
            while not [node for node, _ in n.cluster.located[asked:] if node == "b"]:
                await trio.sleep(0.01)  # A sent the envelope again and B checked it owns the conversation
        agent.go.set()
        with trio.fail_after(10):
            while not answers:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "completed"
    assert answer.json()["output"][0]["content"][0]["text"] == "onetwo"
    assert agent.runs == 1 and relay.connections >= 2


async def test_a_background_turn_sent_to_a_is_accepted_and_runs_on_b(nodes: OpenNodes) -> None:
    async with nodes() as n:
        created = await n.http.post(
            "/v1/responses", json={"model": "m", "input": "later", "conversation": "b-bg", "background": True}
        )
        assert created.status_code == 200, created.text
        response_id = created.json()["id"]
        assert created.json()["status"] in ("queued", "in_progress", "completed")
        with trio.fail_after(10):
            while (record := n.b.system.record(response_id)) is None or not record.ended:
                await trio.sleep(0.01)
        assert record.output[0].text == "Turn 1. You said: later" and n.a.system.record(response_id) is None


async def test_a_cancel_by_turn_id_goes_to_the_node_running_it(nodes: OpenNodes) -> None:
    """`ChannelContext.cancel` on a shared store: the node that reads the record asks the owner to cancel."""
    agent = Hanging()
    async with nodes(agent) as n, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: n.http.post("/v1/responses", json={"model": "m", "input": "x",
                                                                      "conversation": "b-by-id"}))  # fmt: skip
        await agent.entered.wait()
        (running,) = n.b.system.turns_in_flight()

        async def not_here(turn_id: str) -> bool:
            raise AssertionError("B owns the conversation: A must not cancel it locally")

        async with Forwarder.open(n.cluster.locator("a"), SECRET, FAST) as forwarder:
            assert await forwarder.cancel_where(running.key, running.turn_id, not_here)
            assert not await forwarder.cancel_where(running.key, running.turn_id, not_here)  # nothing left to cancel
        with trio.fail_after(10):
            await agent.cancelled.wait()
        nursery.cancel_scope.cancel()
