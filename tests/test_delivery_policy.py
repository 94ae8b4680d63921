"""The outbox's retry budget by time, ambiguous sends retried at most once, and re-driving dead letters."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio

import afactors
from afactors.host import ChannelContext, Contribution, Delivery, DeliveryFailed, DeliveryPolicy
from afactors.model import ConversationKey, Envelope, Message, ReplyTarget

FAST = DeliveryPolicy(retry_for=30.0, backoff=(0.01, 0.05))


@attrs.define
class FlakyChannel:
    """A pushing test channel whose `deliver` fails as told: `failing` (retryable), `ambiguous`, `permanent`."""

    name: str = "flaky"
    run_hook: None = None
    response_hook: None = None
    ctx: ChannelContext | None = None
    mode: str = "ok"
    attempts: int = 0
    delivered: list[str] = attrs.Factory(list)

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self.ctx = ctx
        return Contribution(deliver=self.deliver)

    async def deliver(self, delivery: Delivery) -> None:
        self.attempts += 1
        if self.mode == "failing":
            raise DeliveryFailed("Bot API answered 500")
        if self.mode == "ambiguous":
            self.delivered.append(delivery.reply.text)  # it did arrive, but the answer was lost
            raise DeliveryFailed("ReadTimeout", ambiguous=True)
        if self.mode == "permanent":
            raise DeliveryFailed("bot was blocked", permanent=True)
        self.delivered.append(delivery.reply.text)

    async def send(self, text: str) -> None:
        assert self.ctx is not None
        envelope = Envelope(
            ConversationKey("default", "flaky:1"), (Message("user", text),), idempotency_key=text,
            reply_to=ReplyTarget(self.name, {"chat": 1}),
        )  # fmt: skip
        await self.ctx.submit(envelope)


async def echo(messages: list[Message]) -> str:
    return f"re: {messages[-1].text}"


async def settled(host: afactors.Host, dead: int = 0) -> None:
    """Until the outbox is empty and holds `dead` dead letters."""
    with trio.fail_after(10):
        while host.store.count("outbox") or host.store.count("dead_letters") < dead:
            await trio.sleep(0.01)


async def test_an_outage_longer_than_eight_attempts_is_ridden_out(state_dir: Path) -> None:
    channel = FlakyChannel(mode="failing")
    async with afactors.open_host(
        echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe", delivery=FAST
    ) as host:
        await channel.send("hello")
        with trio.fail_after(10):
            while channel.attempts < 20:
                await trio.sleep(0.01)
        channel.mode = "ok"  # the Bot API is back
        await settled(host)
        assert channel.delivered == ["re: hello"] and host.store.count("dead_letters") == 0


async def test_a_delivery_failing_past_its_time_budget_is_dead_lettered(state_dir: Path) -> None:
    channel = FlakyChannel(mode="failing")
    policy = attrs.evolve(FAST, retry_for=0.3)
    async with afactors.open_host(
        echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe", delivery=policy
    ) as host:
        await channel.send("hello")
        await settled(host, dead=1)
        [(_, dead)] = host.outbox.dead_letters()  # type: ignore[union-attr]
        assert "still failing" in dead.error and dead.delivery is not None and dead.delivery.attempts > 1


async def test_a_send_whose_answer_was_lost_is_sent_again_at_most_once(state_dir: Path) -> None:
    channel = FlakyChannel(mode="ambiguous")
    async with afactors.open_host(
        echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe", delivery=FAST
    ) as host:
        await channel.send("hello")
        await settled(host, dead=1)
        assert channel.delivered == ["re: hello", "re: hello"]
        [(_, dead)] = host.outbox.dead_letters()  # type: ignore[union-attr]
        assert "may have arrived" in dead.error


async def test_dead_letters_can_be_redriven(state_dir: Path) -> None:
    channel = FlakyChannel(mode="permanent")
    async with afactors.open_host(
        echo, channels=[channel], state_dir=state_dir, port=0, durability="unsafe", delivery=FAST
    ) as host:
        assert host.outbox is not None
        await channel.send("one")
        await channel.send("two")
        await settled(host, dead=2)
        assert len(host.outbox.dead_letters("flaky")) == 2 and host.outbox.dead_letters("other") == []
        channel.mode = "ok"
        assert await host.outbox.redrive("flaky") == 2
        await settled(host)
        assert channel.delivered == ["re: one", "re: two"] and host.outbox.dead_letters() == []
