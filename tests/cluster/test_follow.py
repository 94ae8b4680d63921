"""Following a background turn through a node that does not own its conversation: two real cluster nodes on one
throwaway PostgreSQL schema, clients on the openai SDK. A background response created through node A (which owns
its conversation) is streamed again, polled and cancelled through node B with the same results as through A; and
(slow, node processes) a follower through B gets the end of a turn whose owner was killed mid-turn."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import openai
import orjson
import pytest
import trio

from afactors.host import Host
from afactors.model import TurnContext, Update
from afactors.store.pg_server import PgServer
from channels.responses.tests.test_streaming import Hanging
from tests.cluster.conftest import pg_node
from tests.cluster.test_nodes_process import LEASE, node, start_slow_turn


class Gated:
    """Streams "part one", waits for `gate`, then streams " part two" (whichever node runs it)."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.started = trio.Event()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        yield Update(delta="part one")
        self.started.set()
        await self.gate.wait()
        yield Update(delta=" part two")


@attrs.frozen
class Nodes:
    a: Host
    b: Host
    sdk_a: openai.AsyncOpenAI
    sdk_b: openai.AsyncOpenAI


@asynccontextmanager
async def two_nodes(url: str, target: object) -> AsyncIterator[Nodes]:
    """Cluster nodes "a" and "b" on `url`, hosting `target` with the Responses channel, and an SDK client of each."""
    async with pg_node(url, "a", target) as a, pg_node(url, "b", target) as b, sdk(a) as sdk_a, sdk(b) as sdk_b:
        yield Nodes(a, b, sdk_a, sdk_b)


def sdk(host: Host) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key="x", max_retries=0, timeout=20)


async def follow(client: openai.AsyncOpenAI, response_id: str, events: list[Any], *, first: trio.Event) -> None:
    """Stream a background response again (GET with stream=true) into `events`; `first` set at the first delta."""
    async with await client.responses.retrieve(response_id, stream=True) as stream:
        async for event in stream:
            events.append(event)
            if event.type == "response.output_text.delta":
                first.set()


def shape(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.type, e.sequence_number, getattr(e, "delta", None)) for e in events]


async def test_a_background_response_created_through_a_is_streamed_and_polled_through_b(pg_server: PgServer) -> None:
    target = Gated()
    async with two_nodes(pg_server.new_store_url(), target) as n:
        created = await n.sdk_a.responses.create(model="m", input="go", background=True)
        with trio.fail_after(20):
            await target.started.wait()
            assert n.a.cluster is not None and n.a.cluster.leases.lease("default/resp:" + created.id) is not None
            through_b: list[Any] = []
            through_a: list[Any] = []
            async with trio.open_nursery() as nursery:
                seen_b, seen_a = trio.Event(), trio.Event()
                nursery.start_soon(lambda: follow(n.sdk_b, created.id, through_b, first=seen_b))
                nursery.start_soon(lambda: follow(n.sdk_a, created.id, through_a, first=seen_a))
                await seen_b.wait()  # live through B while the turn still runs on A
                await seen_a.wait()
                polled = await n.sdk_b.responses.retrieve(created.id)
                assert polled.status == "in_progress"
                target.gate.set()
            done = await n.sdk_b.responses.retrieve(created.id)
            assert n.b.cluster is not None and not n.b.cluster.leases.held  # B only asked A: it never took the lease
    assert shape(through_b) == shape(through_a)
    assert "".join(e.delta for e in through_b if e.type == "response.output_text.delta") == "part one part two"
    assert through_b[-1].type == "response.completed"
    assert through_b[-1].response.output_text == "part one part two"
    assert done.status == "completed" and done.output_text == "part one part two"


async def test_a_background_response_that_ended_is_streamed_whole_through_b(pg_server: PgServer) -> None:
    target = Gated()
    target.gate.set()
    async with two_nodes(pg_server.new_store_url(), target) as n:
        created = await n.sdk_a.responses.create(model="m", input="go", background=True)
        with trio.fail_after(20):
            while (await n.sdk_b.responses.retrieve(created.id)).status != "completed":
                await trio.sleep(0.05)
            events: list[Any] = []
            await follow(n.sdk_b, created.id, events, first=trio.Event())
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "part one part two"


async def test_a_background_response_created_through_a_is_cancelled_through_b(pg_server: PgServer) -> None:
    agent = Hanging()
    async with two_nodes(pg_server.new_store_url(), agent) as n:
        created = await n.sdk_a.responses.create(model="m", input="hang", background=True)
        with trio.fail_after(20):
            await agent.entered.wait()
            cancelled = await n.sdk_b.responses.cancel(created.id)
            await agent.cancelled.wait()
            polled = await n.sdk_a.responses.retrieve(created.id)
    assert cancelled.status == "cancelled" and polled.status == "cancelled"


@pytest.mark.slow
async def test_a_follower_through_b_gets_the_end_of_a_turn_its_owner_died_running(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node processes: a background turn runs on A (forever), a client streams it through B, A is killed with
    kill -9: B's stream ends with the turn's completion once B has taken the conversation over and run it."""
    url, runs = pg_server.new_store_url(), tmp_path / "runs.txt"
    monkeypatch.setenv("AFACTORS_CLUSTER_SECRET", "follow-test-secret")  # the nodes forward to each other
    with node(url, "a", runs) as (a, base_a), node(url, "b", runs, sleep="0") as (_, base_b):
        response_id = start_slow_turn(base_a, runs, "a")
        events: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:

            async def follow_through_b(*, task_status: trio.TaskStatus[None]) -> None:
                async with http.stream("GET", f"{base_b}/v1/responses/{response_id}?stream=true") as answer:
                    assert answer.status_code == 200
                    async for line in answer.aiter_lines():
                        if line.startswith("data: "):
                            events.append(orjson.loads(line[6:]))
                            if events[-1]["type"] == "response.in_progress":
                                task_status.started()

            with trio.fail_after(LEASE * 10):
                await nursery.start(follow_through_b)
                os.kill(a.pid, signal.SIGKILL)
    assert events[-1]["type"] == "response.completed", events
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "b: done"
