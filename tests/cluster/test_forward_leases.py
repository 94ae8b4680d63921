"""Forwarding between real cluster nodes (in-process hosts on one PostgreSQL schema, their leases and registries),
as `bench.cluster` drives them: a balancer blind to conversations sends each turn to the next node."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx

from afactors.host import open_host
from afactors.store.pg_server import PgServer, free_port
from afactors_responses import ResponsesChannel
from tests.cluster.test_leases import Echo

LEASE = 60.0  # the nodes read each other's records every LEASE / 3: not again during the test


async def test_a_node_forwards_to_a_peer_that_started_after_its_last_read_of_the_registry(pg_server: PgServer) -> None:
    # `a` starts first and has not read `b`'s record when b's conversation reaches it. It once judged the lease of
    # a node it had not seen expired, took the conversation, and b's next commit was fenced: the client got
    # "failed ... it is owned by node 'a'" with both nodes up (bench.cluster: 16-21 of about 1,500 turns).
    url, ports = pg_server.new_store_url(), {"a": free_port(), "b": free_port()}
    async with AsyncExitStack() as stack:
        for name, port in ports.items():
            await stack.enter_async_context(
                open_host(
                    Echo(name), channels=[ResponsesChannel()], store=url, node_id=name, port=port,
                    advertise=f"http://127.0.0.1:{port}", cluster_secret="s3cret", lease_seconds=LEASE, web_ui=False,
                )
            )  # fmt: skip
        answers = []
        async with httpx.AsyncClient(timeout=30) as client:
            for n, node in enumerate(("b", "a", "b")):
                body = {"model": "m", "input": f"turn {n}", "conversation": "late-peer"}
                answers.append(await client.post(f"http://127.0.0.1:{ports[node]}/v1/responses", json=body))
    replies = [(answer.status_code, answer.json()) for answer in answers]
    assert [(status, reply["status"], reply.get("error")) for status, reply in replies] == [
        (200, "completed", None)
    ] * 3
    texts = [reply["output"][0]["content"][0]["text"] for _, reply in replies]
    assert texts == ["b: turn 0", "b: turn 1", "b: turn 2"]  # every turn on its owner, b
