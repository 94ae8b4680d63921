"""Timers on a real host and store: set in a turn, fired as a turn of kind "timer", pushed; cancel; the HTTP route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import httpx
import pytest
import trio

import afactors
from afactors.actors import ActorSystem, ledger
from afactors.host import ChannelContext, Contribution, Delivery, Host, Timers
from afactors.model import ConversationKey, Envelope, Message, ReplyTarget, Timer, TurnContext, Update
from afactors.store import Delete, Expect, Generic, Put, Store, TimerDue, TimerRecord

KEY = ConversationKey("default", "push:chat1")


class Reminders:
    """A target that schedules, cancels and lists timers by command, and answers timer turns."""

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if ctx.kind == "timer":
            assert ctx.timer is not None
            yield Update(delta=f"reminder: {ctx.timer.payload['text']} (fired {ctx.timer.id})")
            return
        words = ctx.messages[-1].text.split()
        match words:
            case ["remind", seconds, timer_id, *text]:
                ctx.timers.after(float(seconds), id=timer_id, payload={"text": " ".join(text)})
                yield Update(delta=f"ok {timer_id}")
            case ["cancel", timer_id]:
                yield Update(delta=f"cancelled {ctx.timers.cancel(timer_id)}")
            case ["list"]:
                yield Update(delta="timers: " + ",".join(timer.id for timer in ctx.timers.list()))
            case ["fail"]:
                ctx.timers.after(0, id="never")
                raise RuntimeError("the target failed after scheduling")
            case _:
                yield Update(delta="?")


@attrs.define
class PushChannel:
    """A channel that pushes every reply to a list (the outbox delivers timer replies here)."""

    name: str = "push"
    run_hook: None = None
    response_hook: None = None
    ctx: ChannelContext | None = None
    delivered: list[str] = attrs.Factory(list)
    changed: trio.Event = attrs.Factory(trio.Event)

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self.ctx = ctx
        return Contribution(deliver=self.deliver)

    async def deliver(self, delivery: Delivery) -> None:
        self.delivered.append(delivery.reply.text)
        self.changed.set()
        self.changed = trio.Event()

    async def say(self, text: str) -> str:
        """Send `text` on chat1 (its reply is pushed too); the reply's text, or its status if it did not complete."""
        assert self.ctx is not None
        envelope = Envelope(KEY, (Message("user", text),), reply_to=ReplyTarget(self.name, {"chat": "chat1"}))
        handle = await self.ctx.submit(envelope)
        reply = await handle.reply()
        return reply.text if reply.status == "completed" else reply.status

    async def wait_for(self, text: str) -> None:
        with trio.fail_after(10):
            while not any(text in line for line in self.delivered):
                await self.changed.wait()


def open_host(state_dir: Path, channel: PushChannel, **settings: Any) -> Any:
    return afactors.open_host(
        Reminders(), channels=[channel], state_dir=state_dir, port=0, durability="unsafe", **settings
    )


async def test_a_timer_set_in_a_turn_fires_a_timer_turn_whose_reply_is_pushed(state_dir: Path) -> None:
    channel = PushChannel()
    async with open_host(state_dir, channel) as host:
        assert await channel.say("remind 0.2 t1 drink tea") == "ok t1"
        assert [timer.id for timer in host.timers.list(KEY)] == ["t1"]
        await channel.wait_for("reminder: drink tea (fired t1)")
        assert host.timers.list(KEY) == [] and host.store.count("timer_due") == 0
        assert host.store.count("inbox") == 0
        assert host.system.stats.timers_fired == 1
        assert await channel.say("list") == "timers: "


async def test_a_failed_turn_schedules_nothing(state_dir: Path) -> None:
    channel = PushChannel()
    async with open_host(state_dir, channel) as host:
        assert await channel.say("fail") == "failed"
        assert host.timers.list(KEY) == [] and host.store.count("timers") == 0


async def test_cancel_from_inside_a_turn(state_dir: Path) -> None:
    channel = PushChannel()
    async with open_host(state_dir, channel) as host:
        await channel.say("remind 0.5 t2 never")
        assert await channel.say("cancel t2") == "cancelled True"
        assert await channel.say("cancel t2") == "cancelled False"
        assert host.store.count("timers") == 0 and host.store.count("timer_due") == 0
        await trio.sleep(0.8)
    assert not any("never" in line for line in channel.delivered)


async def test_schedule_list_cancel_from_outside_and_passive_conversations_stay_passive(state_dir: Path) -> None:
    channel = PushChannel()
    other = ConversationKey("default", "push:chat2")
    target = ReplyTarget("push", {"chat": "chat2"})
    async with open_host(state_dir, channel) as host:
        kept = await host.timers.schedule(
            other, after=0.3, id="digest", payload={"text": "daily digest"}, reply_to=target
        )
        gone = await host.timers.schedule(other, after=0.3, id="gone", payload={"text": "nope"})
        assert [t.id for t in host.timers.list(other)] == sorted([kept.id, gone.id])
        assert await host.timers.cancel(other, "gone") and not await host.timers.cancel(other, "gone")
        assert not any(info.key == other for info in host.system.actors())  # no actor until it fires
        await channel.wait_for("reminder: daily digest (fired digest)")
        assert host.timers.count() == 0
    assert not any("nope" in line for line in channel.delivered)


async def test_rescheduling_an_id_replaces_it_and_a_stale_firing_is_refused(state_dir: Path) -> None:
    channel = PushChannel()
    async with open_host(state_dir, channel) as host:
        await channel.say("list")  # the conversation's reply address: where the timer's reply goes
        first = await host.timers.schedule(KEY, after=60, id="x", payload={"text": "old"})
        stale = host.store.scan("timers")[0]
        await host.timers.schedule(KEY, after=0.2, id="x", payload={"text": "new"})
        assert [t.payload["text"] for t in host.timers.list(KEY)] == ["new"]
        assert host.store.count("timer_due") == 1  # the old index row went with the old timer
        row_key, record = stale
        assert isinstance(record, TimerRecord) and record.timer == first
        assert not await host.system.fire(row_key, record, first.due_at)  # it changed: no firing
        await channel.wait_for("reminder: new")
        assert not any("old" in line for line in channel.delivered)


def remind_function(messages: list[Message], *, ctx: TurnContext) -> str:
    """A plain (threaded) function target: it sees timer turns, and schedules through `ctx.timers`."""
    if ctx.kind == "timer":
        assert ctx.timer is not None
        return f"function reminder: {ctx.timer.payload['text']}"
    ctx.timers.after(0.1, id="f", payload={"text": messages[-1].text})
    return "set " + ",".join(timer.id for timer in ctx.timers.list())


async def test_a_plain_function_target_sees_its_timer_turns(state_dir: Path) -> None:
    channel = PushChannel()
    async with afactors.open_host(remind_function, channels=[channel], state_dir=state_dir, port=0) as host:
        assert await channel.say("tea") == "set f"
        await channel.wait_for("function reminder: tea")
        assert host.timers.count() == 0


class Recorder:
    """Notes each timer turn's timer (id and the due time of the occurrence that fired)."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, float]] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        assert ctx.timer is not None
        self.fired.append((ctx.timer.id, ctx.timer.due_at))
        yield Update(delta="ok")


async def test_catch_up_a_missed_timer_fires_once_and_a_schedule_skips_its_missed_occurrences(
    state_dir: Path,
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = [datetime(2027, 1, 1, 8, 0, tzinfo=berlin).timestamp()]
    recorder, key = Recorder(), ConversationKey("t", "c")
    async with Store.open(state_dir, durability="unsafe") as store, ActorSystem.open(store, recorder) as system:
        timers = Timers(store, system, clock=lambda: now[0])
        await timers.schedule(key, cron="0 9 * * *", timezone="Europe/Berlin", id="daily")
        await timers.schedule(key, at=datetime(2027, 1, 1, 12, 0, tzinfo=berlin), id="once")
        now[0] = datetime(2027, 1, 4, 10, 30, tzinfo=berlin).timestamp()  # three days later: both missed
        async with trio.open_nursery() as nursery:
            await nursery.start(timers.run)

            async def fired(n: int) -> None:
                with trio.fail_after(10):
                    while len(recorder.fired) < n or store.count("inbox"):
                        await trio.sleep(0.01)

            await fired(2)
            assert sorted(recorder.fired) == [  # each once (fired together: in either order), the schedule's first
                # missed occurrence only
                ("daily", datetime(2027, 1, 1, 9, 0, tzinfo=berlin).timestamp()),
                ("once", datetime(2027, 1, 1, 12, 0, tzinfo=berlin).timestamp()),
            ]
            [daily] = timers.list(key)
            assert daily.due_at == datetime(2027, 1, 5, 9, 0, tzinfo=berlin).timestamp() and daily.fired == 1
            now[0] = daily.due_at + 1  # the next occurrence, on time
            timers.wake(0.0)
            await fired(3)
            assert recorder.fired[2] == ("daily", daily.due_at)
            nursery.cancel_scope.cancel()


async def test_purge(state_dir: Path) -> None:
    async with open_host(state_dir, PushChannel()) as host:
        for n in range(5):
            await host.timers.schedule(ConversationKey("a", f"c{n}"), after=600)
        await host.timers.schedule(ConversationKey("b", "c"), cron="0 9 * * *", timezone="Europe/Berlin")
        assert len(host.timers.pending(limit=10)) == 6
        assert await host.timers.purge(tenant="a") == 5
        assert host.timers.count() == 1 and host.store.count("timer_due") == 1
        assert await host.timers.purge() == 1
        assert host.timers.count() == 0 and host.store.count("timer_due") == 0


# -- the HTTP route -----------------------------------------------------------------------------------------


async def http(host: Host, method: str, *, key: str | None = "k1", **kwargs: Any) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=host.urls[0], headers=headers) as client:
        return await client.request(method, "/v1/timers", **kwargs)


async def test_http_schedule_list_cancel(state_dir: Path) -> None:
    channel = PushChannel()
    async with open_host(state_dir, channel, api_keys=("k1",)) as host:
        body = {"conversation": "c1", "id": "a", "at": "2999-01-01T09:00:00+01:00", "payload": {"text": "x"}}
        resp = await http(host, "POST", json=body)
        assert resp.status_code == 201, resp.text
        assert resp.json()["id"] == "a" and resp.json()["due"] == "2999-01-01T08:00:00+00:00"
        many = {"timers": [{"conversation": f"s{n}", "cron": "0 7 * * *", "timezone": "Asia/Tokyo"} for n in range(3)]}
        resp = await http(host, "POST", json=many)
        assert resp.status_code == 201 and len(resp.json()["data"]) == 3
        listed = await http(host, "GET", params={"conversation": "c1"})
        assert [t["id"] for t in listed.json()["data"]] == ["a"]
        assert (await http(host, "DELETE", params={"conversation": "c1", "id": "a"})).json()["deleted"] is True
        assert (await http(host, "GET", params={"conversation": "c1"})).json()["data"] == []
        assert host.timers.count() == 3
        other_tenant = await http(host, "GET", key="k1", params={"conversation": "s0"})
        assert len(other_tenant.json()["data"]) == 1


@pytest.mark.parametrize(
    ("method", "kwargs", "status", "message"),
    [
        ("POST", {"content": b"{not json"}, 400, "the body must be JSON"),
        ("POST", {"json": [1]}, 400, "must be a JSON object"),
        ("POST", {"json": {"after": 5}}, 400, "conversation must be a non-empty string"),
        ("POST", {"json": {"conversation": "c", "after": 5, "when": 1}}, 400, "unknown field 'when'"),
        ("POST", {"json": {"conversation": "c"}}, 400, "exactly one of at, after or cron"),
        ("POST", {"json": {"conversation": "c", "cron": "61 * * * *"}}, 400, "minute: 61"),
        ("POST", {"json": {"conversation": "c", "cron": "@daily", "timezone": "Nowhere/X"}}, 400, "unknown time zone"),
        ("POST", {"json": {"conversation": "c", "at": "tomorrow"}}, 400, "not an ISO 8601"),
        ("POST", {"json": {"conversation": "c", "at": "2030-01-01T09:00:00"}}, 400, "needs a UTC offset"),
        ("POST", {"json": {"conversation": "c", "after": 1, "payload": "x"}}, 400, "payload must be a JSON object"),
        ("POST", {"json": {"conversation": "c", "after": 1, "reply_to": {"to": 1}}}, 400, "reply_to must be"),
        ("POST", {"json": {"conversation": "c", "at": 1e20}}, 400, "after the year 9999"),
        ("POST", {"json": {"conversation": "c", "after": True}}, 400, "number of seconds"),
        ("POST", {"json": {"conversation": "c", "after": 1, "id": 7}}, 400, "timer id 7"),
        ("POST", {"json": {"timers": []}}, 400, "non-empty array"),
        ("POST", {"json": {"timers": [{"conversation": "c", "after": 1}] * 1001}}, 400, "at most 1000"),
        ("POST", {"json": {"timers": [{"conversation": "c", "after": -1}]}}, 400, "zero or more"),
        ("GET", {}, 400, "conversation must be"),
        ("DELETE", {"params": {"conversation": "c"}}, 400, "id is required"),
        ("DELETE", {"params": {"conversation": "c", "id": "zz"}}, 404, "has no timer 'zz'"),
    ],
)
async def test_http_bad_input(state_dir: Path, method: str, kwargs: dict[str, Any], status: int, message: str) -> None:
    async with open_host(state_dir, PushChannel(), api_keys=("k1",)) as host:
        resp = await http(host, method, **kwargs)
        assert resp.status_code == status, resp.text
        error = resp.json()["error"]
        assert message in error["message"] and error["type"].endswith("_error")
        assert host.timers.count() == 0


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_http_needs_an_api_key(state_dir: Path, key: str | None) -> None:
    async with open_host(state_dir, PushChannel(), api_keys=("k1",)) as host:
        resp = await http(host, "POST", key=key, json={"conversation": "c", "after": 1})
        assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
        assert host.timers.count() == 0


# -- the store's conditional commit and the ledger's timer ops ------------------------------------------------


async def test_a_commit_with_an_unmet_expectation_writes_nothing_and_others_in_its_batch_still_land(
    state_dir: Path,
) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        await store.commit([Put("checkpoints", "a", Generic({"v": 1}))])
        results: dict[str, bool] = {}

        async def commit(name: str, ops: list[Put], expect: list[Expect]) -> None:
            results[name] = await store.commit(ops, expect=expect)

        async with trio.open_nursery() as nursery:  # queued together: one group transaction
            nursery.start_soon(
                commit, "stale", [Put("checkpoints", "b", Generic())], [Expect("checkpoints", "a", Generic({"v": 0}))]
            )
            nursery.start_soon(
                commit, "fresh", [Put("checkpoints", "c", Generic())], [Expect("checkpoints", "a", Generic({"v": 1}))]
            )
            nursery.start_soon(
                commit, "absent", [Put("checkpoints", "d", Generic())], [Expect("checkpoints", "zz", None)]
            )
            nursery.start_soon(commit, "plain", [Put("checkpoints", "e", Generic())], [])
        assert results == {"stale": False, "fresh": True, "absent": True, "plain": True}
        assert [key for key, _ in store.scan("checkpoints")] == ["a", "c", "d", "e"]


def test_ledger_timer_ops_keep_the_index_in_step() -> None:
    key = ConversationKey("t", "c")
    old, new = Timer(id="x", due_at=10.0), Timer(id="x", due_at=20.0)
    ops = ledger.timers_changed(key, {"x": new, "y": None}, {"x": old})
    assert ops == [
        Delete("timer_due", "000000000010000000/t/c/x"),
        Put("timers", "t/c/x", TimerRecord(tenant="t", conversation="c", timer=new)),
        Put("timer_due", "000000000020000000/t/c/x", TimerDue(timer_key="t/c/x")),
        Delete("timers", "t/c/y"),
    ]
    assert ledger.due_of("000000000020000000/t/c/x") == 20.0
