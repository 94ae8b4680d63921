"""Responses under faults: an unfinished body is 408, a full disk is 507, a draining host is 503, all in the
OpenAI error envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import h11
import httpx
import orjson
import trio

import afactors
from afactors.host import ServerLimits
from afactors.model import Message
from afactors.testing import disk_full, raw_exchange
from afactors_responses import ResponsesChannel


async def test_an_unfinished_body_gets_408_in_the_envelope(tmp_path: Path) -> None:
    limits = ServerLimits(body_timeout=0.5)
    channels = [ResponsesChannel()]
    async with afactors.open_host(
        channels=channels, state_dir=tmp_path, port=0, durability="unsafe", limits=limits
    ) as host:
        head = [("host", "x"), ("content-type", "application/json"), ("content-length", "100")]
        response, body = await raw_exchange(
            host.urls[0], h11.Request(method="POST", target="/v1/responses", headers=head), b"{"
        )
    assert response.status_code == 408
    error = orjson.loads(body)["error"]
    assert error["code"] == "request_timeout" and set(error) >= {"message", "type", "code"}


async def test_a_full_disk_is_507_with_retry_after(tmp_path: Path) -> None:
    async with (
        afactors.open_host(channels=[ResponsesChannel()], state_dir=tmp_path, port=0, durability="unsafe") as host,
        httpx.AsyncClient(base_url=host.urls[0]) as client,
    ):
        disk_full(host.store)
        full = await client.post("/v1/responses", json={"model": "m", "input": "hi"})
        disk_full(host.store, False)
        after = await client.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert full.status_code == 507 and full.headers["retry-after"] == "30"
    assert full.json()["error"]["code"] == "insufficient_storage"
    assert after.status_code == 200 and after.json()["status"] == "completed"


async def slow(messages: list[Message]) -> AsyncIterator[str]:
    await trio.sleep(1.0)
    yield "slow answer"


async def test_new_requests_during_the_drain_get_503_shutting_down(tmp_path: Path) -> None:
    answers: dict[str, httpx.Response] = {}
    async with (
        trio.open_nursery() as nursery,
        afactors.open_host(
            slow, channels=[ResponsesChannel()], state_dir=tmp_path, port=0, durability="unsafe"
        ) as host,
    ):
        client = httpx.AsyncClient(base_url=host.urls[0], timeout=20)
        started = trio.Event()

        async def running() -> None:
            started.set()
            answers["running"] = await client.post("/v1/responses", json={"model": "m", "input": "first"})

        async def late() -> None:
            await host.shutting_down.wait()
            answers["late"] = await client.post("/v1/responses", json={"model": "m", "input": "second"})

        nursery.start_soon(running)
        nursery.start_soon(late)
        await started.wait()
        await trio.sleep(0.2)  # the first request is running its turn
    await client.aclose()
    assert answers["running"].status_code == 200 and answers["running"].json()["status"] == "completed"
    assert answers["late"].status_code == 503 and answers["late"].json()["error"]["code"] == "shutting_down"
