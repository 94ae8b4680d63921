"""Forwarding between two real hosts on loopback: a turn sent to A for a conversation B owns runs on B, over real
HTTP, and the client cannot tell (Responses plain and streamed, Invocations), cancel propagates, a moved lease is
followed, a dead owner is a 503 with Retry-After after the bounded wait."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

import afactors
from afactors.host import ServerLimits
from afactors.model import ConversationKey
from afactors_chat import ChatChannel
from afactors_responses import ResponsesChannel
from channels.responses.tests.conftest import post_and_read_first_event
from channels.responses.tests.test_streaming import Hanging
from tests.cluster.conftest import SECRET, OpenNodes


def sse(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A stream's events without what differs between two turns (ids, times)."""
    return [(e["type"], e["sequence_number"], e.get("delta"), e.get("output_index")) for e in events]


async def test_a_plain_responses_turn_sent_to_a_runs_on_b(nodes: OpenNodes) -> None:
    async with nodes() as n:
        first = await n.http.post("/v1/responses", json={"model": "m", "input": "hello", "conversation": "b-1"})
        second = await n.http.post("/v1/responses", json={"model": "m", "input": "again", "conversation": "b-1"})
        local = await n.http.post("/v1/responses", json={"model": "m", "input": "mine", "conversation": "a-1"})
        metrics = (await n.http.get("/metrics")).text
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["status"] == "completed" and body["output"][0]["content"][0]["text"] == "Turn 1. You said: hello"
        assert second.json()["output"][0]["content"][0]["text"].startswith("Turn 2.")  # B keeps the history
        assert n.b.system.record(body["id"]) is not None and n.a.system.record(body["id"]) is None
        assert n.b.system.snapshot("default/conv:b-1").seq == 2 and n.a.system.snapshot("default/conv:b-1").seq == 0
        assert n.a.system.record(local.json()["id"]) is not None  # A's own conversations run on A
    assert 'afactors_cluster_forwarded_turns_total{channel="responses",outcome="accepted"} 2.0' in metrics
    assert 'afactors_cluster_forward_seconds_count{channel="responses"} 2.0' in metrics


async def test_a_streamed_responses_turn_through_a_is_the_same_stream_as_on_b(nodes: OpenNodes) -> None:
    ask = {"model": "m", "input": "stream me", "stream": True}
    async with nodes() as n:
        through_a = await n.http.post("/v1/responses", json={**ask, "conversation": "b-s1"})
        on_b = await n.http.post(n.b_url + "/v1/responses", json={**ask, "conversation": "b-s2"})
        assert through_a.status_code == 200 and through_a.headers["content-type"] == "text/event-stream"
        forwarded, direct = sse(through_a.text), sse(on_b.text)
        assert shape(forwarded) == shape(direct)
        assert forwarded[-1]["type"] == "response.completed"
        assert "".join(e.get("delta", "") for e in forwarded) == "Turn 1. You said: stream me"
        assert n.b.system.record(forwarded[-1]["response"]["id"]) is not None


async def many_deltas(messages: list[Any]) -> AsyncIterator[str]:
    for n in range(2_000):
        yield f"{n},"
        await trio.lowlevel.checkpoint()


async def test_a_burst_of_deltas_arrives_whole_through_a(nodes: OpenNodes) -> None:
    async with nodes(many_deltas) as n:
        answer = await n.http.post("/v1/responses", json={"model": "m", "input": "go", "stream": True,
                                                           "conversation": "b-burst"})  # fmt: skip
    events = sse(answer.text)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "".join(f"{n}," for n in range(2_000))


async def test_invocations_through_a_run_on_b(nodes: OpenNodes) -> None:
    async with nodes() as n:
        plain = await n.http.post("/invocations?agent_session_id=b-inv", json={"message": "hi there"})
        streamed = await n.http.post("/invocations?agent_session_id=b-inv", json={"message": "more", "stream": True})
        assert plain.status_code == 200, plain.text
        assert "Turn 1. You said: hi there" in plain.text
        deltas = [orjson.loads(line[6:])["delta"] for line in streamed.text.splitlines() if '"delta"' in line]
        assert streamed.status_code == 200 and "".join(deltas) == "Turn 2. You said: more"
        (key,) = {key for node, key in n.cluster.located if node == "b"}  # the owner checked it owns them
        assert n.b.system.snapshot(key.path).seq == 2 and n.a.system.snapshot(key.path).seq == 0


async def test_a_client_leaving_a_forwarded_stream_cancels_the_turn_on_b(nodes: OpenNodes) -> None:
    agent = Hanging()
    async with nodes(agent) as n:
        ask = {"model": "m", "input": "x", "stream": True, "conversation": "b-cancel"}
        first = await post_and_read_first_event(n.a_url, ask)
        with trio.fail_after(10):
            await agent.cancelled.wait()
            while (record := n.b.system.record(first["response"]["id"])) is None or record.status != "cancelled":
                await trio.sleep(0.02)
    assert record.output == ()


async def test_a_plain_request_cut_by_its_client_cancels_the_turn_on_b(nodes: OpenNodes) -> None:
    agent = Hanging()
    async with nodes(agent) as n:
        async with trio.open_nursery() as nursery:
            ask = {"model": "m", "input": "x", "conversation": "b-cut"}
            nursery.start_soon(lambda: n.http.post("/v1/responses", json=ask))
            await agent.entered.wait()
            nursery.cancel_scope.cancel()
        with trio.fail_after(10):
            await agent.cancelled.wait()


async def test_not_owner_makes_a_locate_again_and_follow_the_lease(nodes: OpenNodes) -> None:
    async with nodes() as n:
        answers = {"a": iter(["b", "a"]), "b": iter(["a"])}  # A's first view is stale: the lease moved to A

        def moved(key: ConversationKey) -> str:
            return next(answers[n.cluster.located[-1][0]]) if key.conversation == "conv:b-moved" else "a"

        n.cluster.rule = moved
        answer = await n.http.post("/v1/responses", json={"model": "m", "input": "x", "conversation": "b-moved"})
        assert answer.status_code == 200, answer.text
        assert (
            n.a.system.record(answer.json()["id"]) is not None and n.b.system.snapshot("default/conv:b-moved").seq == 0
        )
    asked = [node for node, key in n.cluster.located if key.conversation == "conv:b-moved"]
    assert asked == ["a", "b", "a"]


async def test_a_dead_owner_is_a_503_with_retry_after_once_the_bounded_wait_is_over(nodes: OpenNodes) -> None:
    async with nodes() as n:
        n.cluster.urls["c"] = "http://127.0.0.1:9"  # nobody listens: connection refused
        n.cluster.rule = lambda key: "c"
        with trio.fail_after(10):
            answer = await n.http.post("/v1/responses", json={"model": "m", "input": "x"})
            streamed = await n.http.post("/v1/responses", json={"model": "m", "input": "x", "stream": True})
            invocation = await n.http.post("/invocations", json={"message": "x"})
    for refused in (answer, streamed):
        assert refused.status_code == 503 and refused.headers["retry-after"] == "7", refused.text
        error = refused.json()["error"]
        assert error["code"] == "conversation_unavailable" and "no node accepted it" in error["message"]
    assert invocation.status_code == 503 and invocation.headers["retry-after"] == "7"
    located = [node for node, _ in n.cluster.located]
    assert located.count("a") >= 3  # located again between attempts


async def test_a_busy_conversation_on_b_is_refused_through_a_as_it_would_be_on_b(nodes: OpenNodes) -> None:
    agent = Hanging()
    async with nodes(agent, channels=lambda: [ResponsesChannel(busy_policy="reject")]) as n:
        ask = {"model": "m", "input": "x", "conversation": "b-busy"}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: n.http.post("/v1/responses", json=ask))
            await agent.entered.wait()
            busy = await n.http.post("/v1/responses", json=ask)
            nursery.cancel_scope.cancel()
        with trio.fail_after(10):
            await agent.cancelled.wait()
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "conversation_busy"


async def test_chat_completions_through_a_run_on_b_plain_and_streamed(nodes: OpenNodes) -> None:
    """A channel whose envelopes carry no turn id: the forwarding node gives them one, and an idempotency key."""
    headers = {"x-afactors-conversation": "b-chat"}
    ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with nodes(channels=lambda: [ChatChannel()]) as n:
        plain = await n.http.post("/v1/chat/completions", json=ask, headers=headers)
        streamed = await n.http.post("/v1/chat/completions", json={**ask, "stream": True}, headers=headers)
        assert n.b.system.snapshot("default/chat:b-chat").seq == 2
        assert n.a.system.snapshot("default/chat:b-chat").seq == 0
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["message"]["content"] == "Turn 1. You said: hi"
    chunks = [orjson.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == (
        "Turn 2. You said: hi"
    )


@pytest.mark.parametrize("limit", [64 << 10, 8 << 20])
async def test_a_request_within_the_limit_whose_envelope_is_not_is_a_413_not_a_503(
    nodes: OpenNodes, limit: int
) -> None:
    """A forwarded envelope is larger than the request it came from; one over the nodes' body limit gets the client
    its protocol's 413 at once (not a 503 after the retries), and nothing runs."""
    async with nodes(limits=ServerLimits(max_body_bytes=limit)) as n:

        def near_limit(ask: dict[str, Any], field: str) -> bytes:
            body = orjson.dumps({**ask, field: "x" * (limit - len(orjson.dumps(ask)) - 8)})
            assert len(body) <= limit
            return body

        headers = {"content-type": "application/json"}
        ask = {"model": "m", "input": "", "conversation": "b-big"}
        with trio.fail_after(10):
            answer = await n.http.post("/v1/responses", content=near_limit(ask, "input"), headers=headers)
            invocation = await n.http.post("/invocations?agent_session_id=b-big", headers=headers,
                                           content=near_limit({"message": ""}, "message"))  # fmt: skip
            fits = await n.http.post("/v1/responses", json={**ask, "input": "small"})
            metrics = (await n.http.get("/metrics")).text
        assert n.b.system.snapshot("default/conv:b-big").seq == 1  # only the small turn ran
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "request_entity_too_large" and "too large to hand to the node" in error["message"]
    assert invocation.status_code == 413 and invocation.json()["error"]["code"] == "payload_too_large"
    assert fits.status_code == 200  # the conversation itself is fine
    assert 'afactors_cluster_forwarded_turns_total{channel="responses",outcome="refused"} 1.0' in metrics


async def test_the_owners_413_is_the_clients_413(nodes: OpenNodes, tmp_path: Path) -> None:
    """Nodes with different body limits: the owner (a third node, its limit lower than A's) refuses what A forwards."""
    async with nodes() as n:
        async with afactors.open_host(
            channels=[ResponsesChannel()], state_dir=tmp_path / "small", locator=n.cluster.locator("b"), port=0,
            cluster_secret=SECRET, limits=ServerLimits(max_body_bytes=1024), durability="unsafe",
        ) as small:  # fmt: skip
            n.cluster.urls["b"] = small.urls[0]
            with trio.fail_after(10):
                answer = await n.http.post("/v1/responses", json={"model": "m", "input": "x" * 2000,
                                                                   "conversation": "b-big"})  # fmt: skip
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "request_entity_too_large" and "node b refused it" in error["message"]
