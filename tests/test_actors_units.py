"""Pure parts of the actor runtime: reply building, error text, restart bookkeeping, store keys."""

from __future__ import annotations

import random

import pytest

from afactors.actors._keys import dedup_key, inbox_key, new_turn_id, outbox_key, turn_key
from afactors.actors._replies import ReplyBuilder, error_text
from afactors.actors._supervision import RestartPolicy, RestartTracker
from afactors.model import (
    ErrorInfo,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    ReasoningPart,
    TextPart,
    Update,
    UsagePart,
)
from afactors.store import ResponseRecord


def test_reply_joins_deltas_then_whole_parts_and_sums_usage() -> None:
    builder = ReplyBuilder()
    call = FunctionCallPart("c1", "lookup", "{}")
    for update in (
        Update(delta="Hel"),
        Update(part=UsagePart(3, 1)),
        Update(delta="lo"),
        Update(part=call),
        Update(part=UsagePart(2, 5)),
    ):
        builder.add(update)
    reply = builder.reply()
    assert reply.status == "completed" and reply.error is None
    assert reply.messages == (Message("assistant", (TextPart("Hello"), call)),)
    assert reply.usage == UsagePart(5, 6)


def test_reply_without_updates_is_one_empty_assistant_message() -> None:
    reply = ReplyBuilder().reply()
    assert reply.messages == (Message("assistant", ()),) and reply.usage is None and reply.text == ""


def test_an_update_with_delta_and_part_keeps_both() -> None:
    builder = ReplyBuilder()
    builder.add(Update(delta="a", part=TextPart("b")))
    assert builder.reply().messages[0].contents == (TextPart("a"), TextPart("b"))


def test_parts_keep_their_order_and_text_runs_stay_apart_around_a_tool_call() -> None:
    builder = ReplyBuilder()
    call, result = FunctionCallPart("c1", "add", "{}"), FunctionResultPart("c1", "5")
    for update in (
        Update(part=ReasoningPart("plan")),
        Update(delta="Let me"),
        Update(delta=" add."),
        Update(part=call),
        Update(part=result),
        Update(delta="The sum"),
        Update(part=TextPart(" (whole)")),
        Update(delta=" is 5"),
    ):
        builder.add(update)
    assert builder.reply().messages[0].contents == (
        ReasoningPart("plan"),
        TextPart("Let me add."),
        call,
        result,
        TextPart("The sum is 5"),
        TextPart(" (whole)"),
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RuntimeError("boom"), "RuntimeError: boom"),
        (ValueError("first line\n  File 'x.py', line 3"), "ValueError: first line"),
        (KeyError(), "KeyError"),
        (RuntimeError("   "), "RuntimeError"),
    ],
)
def test_error_text_is_one_short_line(exc: BaseException, expected: str) -> None:
    assert error_text(exc) == expected


def test_error_text_is_capped() -> None:
    text = error_text(RuntimeError("x" * 5000))
    assert len(text) == 300 and text.endswith("...")


def test_a_stored_record_becomes_the_reply_it_stands_for() -> None:
    out = (Message("assistant", "hi"),)
    done = ResponseRecord(id="r", tenant="t", conversation="t/c", status="completed", output=out, usage=UsagePart(1, 1))
    assert done.as_reply().text == "hi" and done.as_reply().usage == UsagePart(1, 1)
    err = ErrorInfo("agent_error", "RuntimeError: boom")
    bad = ResponseRecord(id="r", tenant="t", conversation="t/c", status="failed", error=err)
    assert bad.as_reply().status == "failed" and bad.as_reply().error == err
    running = ResponseRecord(id="r", tenant="t", conversation="t/c", status="in_progress")
    assert running.as_reply().status == "incomplete" and not running.ended and done.ended


def _policy(**overrides: object) -> RestartPolicy:
    return RestartPolicy(rng=random.Random(7), **overrides)  # type: ignore[arg-type]


def test_backoff_doubles_within_jitter_and_caps() -> None:
    tracker = RestartTracker(_policy(max_restarts=100, window=1.0))
    delays = [tracker.record(10.0 * n) for n in range(10)]  # 10 s apart: within the quiet minute, outside the window
    for n, delay in enumerate(delays):
        nominal = min(30.0, 0.5 * 2**n)
        assert delay is not None and nominal * 0.8 <= delay <= nominal * 1.2


def test_backoff_starts_over_after_a_quiet_minute() -> None:
    tracker = RestartTracker(_policy(jitter=0.0))
    assert [tracker.record(t) for t in (0.0, 1.0, 2.0)] == [0.5, 1.0, 2.0]
    assert tracker.record(62.0) == 0.5


def test_more_than_max_restarts_within_the_window_stops() -> None:
    tracker = RestartTracker(_policy(jitter=0.0, max_restarts=5, window=30.0))
    assert all(tracker.record(float(t)) is not None for t in range(5))
    assert tracker.record(5.0) is None
    fresh = RestartTracker(_policy(jitter=0.0, max_restarts=5, window=30.0))
    assert all(fresh.record(t * 10.0) is not None for t in range(10))  # spread out: never more than 4 in 30 s
    assert fresh.count <= 4


def test_store_keys_sort_in_order_and_name_their_conversation() -> None:
    assert turn_key("t/c", 2) < turn_key("t/c", 10)
    assert inbox_key("t/c", 999) < inbox_key("t/c", 1000)
    assert outbox_key("t/c", 5) < outbox_key("t/c", 12)
    assert dedup_key("t/c", "m1") == "t/c/m1"
    ids = [new_turn_id() for _ in range(100)]
    assert len(set(ids)) == 100 and all(i.startswith("turn_") and len(i) == 29 for i in ids)
    assert ids == sorted(ids)  # later ids sort later: new records append to the end of the B-tree


async def test_chain_cache_keeps_ended_turns_and_evicts_the_least_recent(tmp_path) -> None:
    from afactors.actors._history import ChainCache
    from afactors.model import Message
    from afactors.store import Put, ResponseRecord, Store

    async with Store.open(tmp_path / "s", durability="unsafe") as store:

        def record(turn_id: str, status: str) -> Put:
            return Put(
                "responses",
                turn_id,
                ResponseRecord(
                    id=turn_id,
                    tenant="t",
                    conversation="t/c",
                    status=status,
                    input=(Message("user", turn_id),),
                ),
            )  # type: ignore[arg-type]

        await store.commit([record("a", "completed"), record("b", "in_progress"), record("c", "completed")])
        cache = ChainCache(capacity=1)
        assert cache.link(store, "b") == ("t", None, (Message("user", "b"),))
        await store.commit([record("b", "completed")])
        link = cache.link(store, "b")
        assert link is not None and link == cache._links["b"][0]  # cached once ended
        cache.link(store, "a")  # pushes "b" out
        assert list(cache._links) == ["a"]
        assert cache.link(store, "missing") is None
