"""The delivery outbox: replies to envelopes with a `reply_to` reach the channel's `deliver`, durably."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

import afactors
from afactors._backoff import Backoff
from afactors.actors.ledger import outbox_group
from afactors.host import ChannelContext, Contribution, Delivery, DeliveryFailed
from afactors.model import ConversationKey, Envelope, Message, Reply, ReplyTarget


@attrs.define
class PushChannel:
    """A test channel that only pushes: it records deliveries and can be told to fail them."""

    name: str = "push"
    run_hook: None = None
    response_hook: None = None
    ctx: ChannelContext | None = None
    delivered: list[tuple[str, str]] = attrs.Factory(list)
    fail_first: bool = False
    permanent: bool = False
    refuse_all: bool = False
    arrived: trio.Event = attrs.Factory(trio.Event)
    want: int = 1

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self.ctx = ctx
        return Contribution(deliver=self.deliver)

    async def deliver(self, delivery: Delivery) -> None:
        if self.refuse_all:
            raise DeliveryFailed("chat unreachable", retry_after=0.3)
        if self.permanent:
            raise DeliveryFailed("bot was blocked", permanent=True)
        if self.fail_first and delivery.attempt == 1:
            raise DeliveryFailed("flood wait", retry_after=0.01)
        self.delivered.append((delivery.address["chat"], delivery.reply.text))
        if len(self.delivered) >= self.want:
            self.arrived.set()

    async def send(self, chat: str, text: str) -> None:
        assert self.ctx is not None
        envelope = Envelope(
            ConversationKey("default", f"push:{chat}"),
            (Message("user", text),),
            idempotency_key=f"{chat}:{text}",
            reply_to=ReplyTarget(self.name, {"chat": chat}),
        )
        await self.ctx.submit(envelope)


async def echo(messages: list[Message]) -> str:
    return f"re: {messages[-1].text}"


async def test_replies_are_pushed_in_order_per_conversation(state_dir: Path) -> None:
    channel = PushChannel(want=20)
    async with afactors.open_host(echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe") as host:
        for i in range(10):
            await channel.send("a", f"m{i}")
            await channel.send("b", f"m{i}")
        with trio.fail_after(10):
            await channel.arrived.wait()
            while host.store.count("outbox"):  # each row goes once its delivery returned
                await trio.sleep(0.01)
    for chat in ("a", "b"):
        assert [text for c, text in channel.delivered if c == chat] == [f"re: m{i}" for i in range(10)]


async def test_a_failed_delivery_is_retried(state_dir: Path) -> None:
    channel = PushChannel(fail_first=True)
    async with afactors.open_host(echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe") as host:
        await channel.send("a", "hello")
        with trio.fail_after(10):
            await channel.arrived.wait()
        assert host.outbox is not None and host.outbox.stats.retried == 1
    assert channel.delivered == [("a", "re: hello")]


async def test_a_permanent_failure_is_dead_lettered(state_dir: Path) -> None:
    channel = PushChannel(permanent=True)
    async with afactors.open_host(echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe") as host:
        await channel.send("a", "hello")
        with trio.fail_after(10):
            while host.store.count("dead_letters") == 0:
                await trio.sleep(0.01)
        [(_, dead)] = host.store.scan("dead_letters", "outbox/")
        assert dead.error == "bot was blocked"
        assert dead.delivery.address == {"chat": "a"}
        assert host.store.count("outbox") == 0


async def test_undelivered_replies_survive_a_restart(state_dir: Path) -> None:
    refusing = PushChannel(refuse_all=True)
    async with afactors.open_host(echo, channels=[refusing], state_dir=state_dir, port=0, durability="unsafe") as host:
        await refusing.send("a", "hello")
        with trio.fail_after(10):
            while host.outbox is None or host.outbox.stats.retried == 0:
                await trio.sleep(0.01)
    working = PushChannel()
    async with afactors.open_host(echo, channels=[working], state_dir=state_dir, port=0, durability="unsafe"):
        with trio.fail_after(10):
            await working.arrived.wait()
    assert working.delivered == [("a", "re: hello")]


def test_group_of_strips_the_arrival_stamp() -> None:
    assert outbox_group("default/push:a/00000000000000000042") == "default/push:a"


def test_backoff_grows_and_is_capped() -> None:
    import random

    backoff = Backoff(0.5, 60.0, rng=random.Random(1))
    delays = [backoff.delay(n) for n in range(1, 12)]
    assert 0.4 <= delays[0] <= 0.6
    assert delays[3] > delays[0] * 4
    assert max(delays) <= 72.0


def test_backoff_without_jitter_is_exact_and_never_overflows() -> None:
    backoff = Backoff(1.0, 30.0, jitter=0.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 6, 10_000)] == [1.0, 2.0, 4.0, 30.0, 30.0]
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)


async def test_a_push_without_a_turn_is_delivered_in_order_with_the_conversations_replies(state_dir: Path) -> None:
    channel = PushChannel(want=3)
    async with afactors.open_host(echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe") as host:
        assert channel.ctx is not None
        await channel.send("a", "first")
        with trio.fail_after(10):
            while len(channel.delivered) < 1:
                await trio.sleep(0.01)
        push_id = await channel.ctx.push(
            ConversationKey("default", "push:a"), {"chat": "a"}, Reply((Message("assistant", "pushed"),))
        )
        await channel.send("a", "second")
        with trio.fail_after(10):
            await channel.arrived.wait()
            while host.store.count("outbox"):
                await trio.sleep(0.01)
        assert push_id.startswith("push_")
    assert channel.delivered == [("a", "re: first"), ("a", "pushed"), ("a", "re: second")]
