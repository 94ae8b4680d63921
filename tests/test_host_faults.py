"""A full disk and damaged conversations, seen through the host: refused turns, degraded readiness, recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

import afactors
from afactors.actors import ActorUnavailable
from afactors.host import ChannelContext, Contribution
from afactors.model import ConversationKey, Envelope, Message
from afactors.store import StoreDamaged, StoreFull
from afactors.testing import disk_full


def envelope(conversation: str = "c") -> Envelope:
    return Envelope(ConversationKey("t", conversation), (Message("user", "hi"),))


async def test_a_full_disk_refuses_turns_reports_degraded_and_recovers_by_itself(state_dir: Path) -> None:
    async with (
        afactors.open_host(state_dir=state_dir, port=0, durability="unsafe") as host,
        httpx.AsyncClient(base_url=host.urls[0]) as client,
    ):
        disk_full(host.store, True)
        with pytest.raises(StoreFull):
            await host.system.submit(envelope())
        degraded = await client.get("/readiness")
        assert degraded.status_code == 503 and degraded.json()["status"] == "degraded"
        disk_full(host.store, False)
        reply = await (await host.system.submit(envelope())).reply()
        assert reply.status == "completed"
        assert (await client.get("/readiness")).json()["status"] == "healthy"


async def test_a_turn_whose_commit_meets_a_full_disk_fails_alone_and_the_host_stays_up(state_dir: Path) -> None:
    started = trio.Event()
    go_on = trio.Event()

    async def agent(messages: list[Message]) -> AsyncIterator[str]:
        started.set()
        await go_on.wait()
        yield "answer"

    async with afactors.open_host(agent, state_dir=state_dir, port=0, durability="unsafe") as host:
        handle = await host.system.submit(envelope())
        await started.wait()
        disk_full(host.store, True)
        go_on.set()
        reply = await handle.reply()
        assert reply.status == "failed" and reply.error is not None and reply.error.code == "store_full"
        disk_full(host.store, False)
        again = await (await host.system.submit(envelope())).reply()
        assert again.status == "completed" and again.text == "answer"
        assert [m.text for m in host.system.get(envelope().key).history()] == ["hi", "answer"]


async def test_a_conversation_whose_records_do_not_read_is_quarantined_alone(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, durability="unsafe") as host:
        store_get = host.store.get

        def damaged_get(kind: str, key: str) -> object:
            if key.startswith("t/bad"):
                raise StoreDamaged(f"cannot read the {kind} record {key!r}: MDB_CORRUPTED")
            return store_get(kind, key)

        host.store.get = damaged_get  # type: ignore[method-assign]
        with pytest.raises(ActorUnavailable, match="stored records are damaged"):
            await host.system.submit(envelope("bad"))
        with pytest.raises(ActorUnavailable):
            await host.system.submit(envelope("bad"))
        reply = await (await host.system.submit(envelope("good"))).reply()
        assert reply.status == "completed"
        assert host.system.stats.quarantined == 1


async def test_a_channel_can_dead_letter_an_input_it_could_not_handle(state_dir: Path) -> None:
    class Quiet:
        name, run_hook, response_hook = "quiet", None, None

        def contribute(self, ctx: ChannelContext) -> Contribution:
            self.ctx = ctx
            return Contribution()

    channel = Quiet()
    async with afactors.open_host(channels=[channel], state_dir=state_dir, port=0, durability="unsafe") as host:
        await channel.ctx.dead_letter("update/7", "ValueError: bad photo", {"update_id": 7, "photo": 5})
        [(key, dead)] = host.store.scan("dead_letters", "quiet/")
    assert key == "quiet/update/7" and dead.error == "ValueError: bad photo" and dead.data["photo"] == 5


async def test_cached_histories_stay_within_the_tenant_budget(state_dir: Path) -> None:
    big = "x" * (1 << 20)
    async with afactors.open_host(
        state_dir=state_dir, port=0, durability="unsafe", tenant_budget=3 << 20, history_budget=8 << 20
    ) as host:
        for n in range(6):  # six conversations of one tenant, each with a 1 MiB input
            key = ConversationKey("greedy", f"c{n}")
            await (await host.system.submit(Envelope(key, (Message("user", big),)))).reply()
        other = ConversationKey("modest", "c")
        await (await host.system.submit(Envelope(other, (Message("user", "hi"),)))).reply()
        stats = host.system.statistics()
        assert 0 < stats.history_bytes <= (3 << 20) + 4096
        assert stats.chain_bytes <= (8 << 20) // 4
        again = await (
            await host.system.submit(Envelope(ConversationKey("greedy", "c0"), (Message("user", "more"),)))
        ).reply()
        assert again.status == "completed"
        assert [m.text[:1] for m in host.system.get(ConversationKey("greedy", "c0")).history()][:1] == ["x"]
