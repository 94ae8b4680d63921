"""Rate-limit waits on the host's `/metrics`: a 429 from the fake Bot API is counted, with the seconds waited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from afactors_telegram.testing import FakeBotApi

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_flood_wait_shows_on_metrics(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    fake.private_chat(alice)
    async with serve() as (host, _):
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=10) as client:
            before = samples((await client.get("/metrics")).text)
            fake.force_flood_wait(1, chat=alice, method="sendMessage")
            fake.send_text(alice, "hi")
            await fake.wait_for_messages(alice, 1)
            after = samples((await client.get("/metrics")).text)
    assert before["afactors_telegram_flood_wait_seconds_count", ()] == 0
    assert ("afactors_telegram_flood_waits_total", (("method", "sendMessage"),)) not in before
    assert after["afactors_telegram_flood_waits_total", (("method", "sendMessage"),)] == 1
    assert after["afactors_telegram_flood_wait_seconds_count", ()] == 1
    assert after["afactors_telegram_flood_wait_seconds_sum", ()] == 1.0
    assert after["afactors_telegram_flood_wait_seconds_bucket", (("le", "0.5"),)] == 0
    assert after["afactors_telegram_flood_wait_seconds_bucket", (("le", "1.0"),)] == 1
    assert after["afactors_telegram_send_wait_seconds_count", ()] >= 2  # the refused send and its retry
    assert "Alice" not in str(after) and str(alice) not in str(after)  # no chat or user in any label


async def test_without_metrics_the_channel_still_sends(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    fake.private_chat(alice)
    async with serve(host_kwargs={"metrics": False}) as (host, _):
        fake.send_text(alice, "hi")
        [answer] = await fake.wait_for_messages(alice, 1)
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=10) as client:
            assert (await client.get("/metrics")).status_code == 404
    assert answer["text"] == "Turn 1. You said: hi"
