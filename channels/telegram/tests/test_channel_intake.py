"""The intake's lanes and offset: per-chat order, chats in parallel, no offset past an unfinished update."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio
import trio.testing

from afactors.channel import StoreFull
from afactors_telegram.intake import Intake, lane_of


def upd(update_id: int, chat: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "chat": {"id": chat, "type": "private"}}}


async def unexpected_poison(update: Mapping[str, Any], reason: str) -> None:
    raise AssertionError(f"update {update['update_id']} dead-lettered: {reason}")


def test_lane_of_finds_the_chat() -> None:
    assert lane_of(upd(1, 42)) == 42
    assert lane_of({"update_id": 7, "poll": {"id": "x"}}) == "update:7"


async def test_a_blocked_chat_holds_back_only_itself_and_the_offset() -> None:
    gates = {1: trio.Event()}
    handled: list[int] = []

    async def handler(update: Mapping[str, Any]) -> None:
        gate = gates.get(update["update_id"])
        if gate is not None:
            await gate.wait()
        handled.append(update["update_id"])

    async with trio.open_nursery() as nursery:
        intake = Intake(nursery, handler, unexpected_poison)
        assert intake.offset is None
        events = [
            intake.offer(upd(1, 100)),
            intake.offer(upd(2, 100)),
            intake.offer(upd(3, 200)),
            intake.offer(upd(4, 300)),
        ]
        await events[3].wait()
        await events[2].wait()
        assert handled == [3, 4] or handled == [4, 3]
        assert intake.offset == 1 and intake.in_flight == 2  # update 1 is not done: the offset may not pass it
        assert intake.known(3) and intake.known(1) and not intake.known(9)
        gates[1].set()
        await events[1].wait()
        assert handled[-2:] == [1, 2]  # chat 100 in order
        assert intake.offset == 5 and intake.in_flight == 0


async def test_an_update_offered_twice_is_handled_once() -> None:
    calls: list[int] = []

    async def handler(update: Mapping[str, Any]) -> None:
        calls.append(update["update_id"])

    async with trio.open_nursery() as nursery:
        intake = Intake(nursery, handler, unexpected_poison)
        first = intake.offer(upd(1, 5))
        assert intake.offer(upd(1, 5)) is first  # in flight: the same event
        await first.wait()
        again = intake.offer(upd(1, 5))  # done recently: already set
        assert again.is_set()
    assert calls == [1]


async def test_a_failing_handler_is_retried_then_dead_lettered(autojump_clock: trio.testing.MockClock) -> None:
    attempts: dict[int, int] = {}
    poisoned: list[tuple[int, str]] = []

    async def poison(update: Mapping[str, Any], reason: str) -> None:
        poisoned.append((update["update_id"], reason))

    async def handler(update: Mapping[str, Any]) -> None:
        attempts[update["update_id"]] = attempts.get(update["update_id"], 0) + 1
        if update["update_id"] == 1 and attempts[1] < 3:
            raise RuntimeError("transient")
        if update["update_id"] == 2:
            raise RuntimeError("always")

    async with trio.open_nursery() as nursery:
        intake = Intake(nursery, handler, poison)
        done = [intake.offer(upd(1, 5)), intake.offer(upd(2, 5)), intake.offer(upd(3, 5))]
        await done[2].wait()
    assert attempts == {1: 3, 2: 5, 3: 1}
    assert poisoned == [(2, "RuntimeError: always")]
    assert intake.offset == 4


async def test_a_full_store_holds_the_update_and_the_offset(autojump_clock: trio.testing.MockClock) -> None:
    full = True
    handled: list[int] = []

    async def handler(update: Mapping[str, Any]) -> None:
        if full:
            raise StoreFull("the disk is full")
        handled.append(update["update_id"])

    async with trio.open_nursery() as nursery:
        intake = Intake(nursery, handler, unexpected_poison)
        done = intake.offer(upd(1, 5))
        await trio.sleep(600)  # far more than five attempts' worth: a full store is not a poison update
        assert not done.is_set() and intake.offset == 1
        full = False
        await done.wait()
    assert handled == [1] and intake.offset == 2
