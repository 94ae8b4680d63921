"""Invocations under faults: an unfinished body is 408, a full disk is 507, both in the I-06 envelope."""

from __future__ import annotations

from pathlib import Path

import h11
import httpx
import orjson

import afactors
from afactors.host import ServerLimits
from afactors.testing import disk_full, raw_exchange
from afactors_invocations import InvocationsChannel


async def test_an_unfinished_body_gets_408_in_the_envelope(tmp_path: Path) -> None:
    limits = ServerLimits(body_timeout=0.5)
    channels = [InvocationsChannel()]
    async with afactors.open_host(
        channels=channels, state_dir=tmp_path, port=0, durability="unsafe", limits=limits
    ) as host:
        head = [("host", "x"), ("content-type", "application/json"), ("content-length", "100")]
        request = h11.Request(method="POST", target="/invocations", headers=head)
        response, body = await raw_exchange(host.urls[0], request, b'{"message": "hel')
    assert response.status_code == 408
    error = orjson.loads(body)["error"]
    assert error["code"] == "request_timeout" and set(error) == {"code", "message"}
    assert dict(response.headers).get(b"x-agent-invocation-id")


async def test_a_full_disk_is_507_with_retry_after(tmp_path: Path) -> None:
    async with (
        afactors.open_host(channels=[InvocationsChannel()], state_dir=tmp_path, port=0, durability="unsafe") as host,
        httpx.AsyncClient(base_url=host.urls[0]) as client,
    ):
        disk_full(host.store)
        full = await client.post("/invocations", json={"message": "hi"})
        disk_full(host.store, False)
        after = await client.post("/invocations", json={"message": "hi"})
    assert full.status_code == 507 and full.headers["retry-after"] == "30"
    assert full.json()["error"]["code"] == "insufficient_storage"
    assert after.status_code == 200
