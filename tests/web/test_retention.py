"""Retention: the sweeper deletes expired records of each kind in small batches, and only those."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import trio

import afactors
from afactors.actors import new_turn_id
from afactors.host import RetentionConfig
from afactors.host._retention import DAY, turn_id_time
from afactors.model import ConversationKey, ResponseTarget
from afactors.store import DeadLetter, DeliveryAudit, DeliveryOutcome, Put, TokenRecord
from afactors_responses import ResponsesChannel


def test_turn_ids_carry_their_creation_time() -> None:
    before = time.time()
    made = turn_id_time(new_turn_id("resp_"))
    assert made is not None and before - 1 <= made <= time.time() + 1
    assert turn_id_time("caller-chosen") is None and turn_id_time("x" * 30) is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("dedup", -1, "retention dedup must be at least 0 seconds or None"), ("batch", 0, "batch must be greater than 0")],
)
def test_bad_retention_settings_name_the_setting(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionConfig(**{field: value})


async def test_sweeper_removes_expired_records_per_kind_and_keeps_the_rest(state_dir: Path) -> None:
    retention = RetentionConfig(interval=3600, batch=2)  # pages of 2: many small commits
    channels = [ResponsesChannel()]
    async with afactors.open_host(state_dir=state_dir, port=0, channels=channels, retention=retention) as host:
        store, sweeper = host.store, host.sweeper
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            ids = []
            for text in ("one", "two", "three"):
                made = await client.post("/v1/responses", json={"input": text, "conversation": "old"})
                ids.append(made.json()["id"])
            background = await client.post("/v1/responses", json={"input": "bg", "background": True})
            with trio.fail_after(10):
                while store.count("dedup") < 1 or store.count("inbox"):
                    await trio.sleep(0.01)
            now = time.time()
            old, old_target = now - 40 * DAY, ResponseTarget.all_linked()
            await store.commit(
                [
                    Put("dead_letters", "a/old", DeadLetter(None, "boom", failed_at=now - 40 * DAY)),
                    Put("dead_letters", "a/new", DeadLetter(None, "boom", failed_at=now)),
                    Put("tokens", "expired", TokenRecord("link", "default", "u1", "d1", expires_at=now - 1)),
                    Put("tokens", "valid", TokenRecord("link", "default", "u2", "d2", expires_at=now + DAY)),
                    Put("deliveries", "push_old", DeliveryAudit("default", "push_old", old_target, created_at=old)),
                    Put("outcomes", "push_old/000000", DeliveryOutcome("delivered", old)),
                    Put("deliveries", "push_new", DeliveryAudit("default", "push_new", old_target, created_at=now)),
                    Put("outcomes", "push_new/000000", DeliveryOutcome("delivered", now)),
                ]
            )
            assert host.system.passivate(ConversationKey("default", "conv:old"))
            with trio.fail_after(10):
                while sweeper.sweeps < 1:  # the startup sweep is over
                    await trio.sleep(0.01)

            assert await sweeper.sweep(now) == {"dedup": 0, "responses": 0, "dead_letters": 1, "tokens": 1,
                                                "closed_turns": 0, "timers": 0, "deliveries": 1,
                                                "limits": 0}  # fmt: skip
            assert [k for k, _ in store.scan("outcomes")] == ["push_new/000000"]  # the old audit's went with it
            assert [k for k, _ in store.scan("tokens")] == ["valid"]
            assert [k for k, _ in store.scan("dead_letters")] == ["a/new"]

            month = await sweeper.sweep(now + 31 * DAY)
            assert month == {"dedup": 1, "responses": 4, "dead_letters": 1, "tokens": 1, "closed_turns": 0,
                             "timers": 0, "deliveries": 1, "limits": 0}  # fmt: skip
            gone = await client.get(f"/v1/responses/{ids[0]}")
            assert gone.status_code == 404 and background.status_code == 200
            assert store.count("turns") == 4  # history is kept until the conversation is closed long enough

            assert (await sweeper.sweep(now + 91 * DAY))["closed_turns"] == 3  # the background one's actor is live
            assert store.count("turns") == 1 and store.count("snapshots") == 2  # turn counts and state stay
            metrics = (await client.get("/metrics")).text
    assert 'afactors_retention_removed_total{kind="responses"} 4.0' in metrics
    assert 'afactors_retention_removed_total{kind="closed_turns"} 3.0' in metrics


async def test_turns_of_a_conversation_in_memory_are_kept(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, channels=[ResponsesChannel()]) as host:
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            await client.post("/v1/responses", json={"input": "hi", "conversation": "live"})
        removed = await host.sweeper.sweep(time.time() + 365 * DAY)
        assert removed["closed_turns"] == 0 and host.store.count("turns") == 1


async def test_retention_can_be_off(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, retention=RetentionConfig(enabled=False)) as host:
        await trio.sleep(0.05)
        assert host.sweeper.sweeps == 0


@pytest.mark.parametrize("keep", [7 * DAY, None])
async def test_fired_one_shot_timers_are_kept_for_the_retention_period_pending_ones_always(
    state_dir: Path, keep: float | None
) -> None:
    retention = RetentionConfig(interval=3600, timers=keep)
    async with afactors.open_host(state_dir=state_dir, port=0, retention=retention) as host:
        key = ConversationKey("default", "c")
        await host.timers.schedule(key, cron="0 9 * * *", id="daily")
        await host.timers.schedule(key, after=0, id="once")
        with trio.fail_after(10):
            while host.timers.count() != 1 or host.store.count("inbox"):
                await trio.sleep(0.01)
        [(_, daily), (_, once)] = host.store.scan("timers")
        assert daily.pending and once.fired_at is not None and once.turn_id.startswith("timer_")
        assert host.system.record(once.turn_id) is not None  # the turn it fired as
        now = time.time()
        assert (await host.sweeper.sweep(now + 6 * DAY)).get("timers", 0) == 0
        assert (await host.sweeper.sweep(now + 8 * DAY)).get("timers", 0) == (0 if keep is None else 1)
        assert [record.timer.id for _, record in host.store.scan("timers")] == (
            ["daily", "once"] if keep is None else ["daily"]
        )
