"""Pure tests of the send-rate buckets (injected time), checked against the fake's own flood control (T-16)."""

from __future__ import annotations

import heapq
import random

import pytest

from afactors_telegram.config import SendLimits
from afactors_telegram.limits import Bucket, SendLimiter
from afactors_telegram.testing.ratelimit import FloodControl, RateLimits


def test_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = Bucket(interval=1.0, burst=3)
    times = []
    now = 0.0
    for _ in range(5):
        at = bucket.ready_at(now)
        bucket.take(at)
        times.append(at)
    assert times == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_bucket_refills_while_idle() -> None:
    bucket = Bucket(interval=1.0, burst=2)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.ready_at(0.0) == 1.0
    assert bucket.ready_at(10.0) == 10.0
    assert bucket.idle(10.0) and not bucket.idle(1.5)


def test_block_until_holds_every_token_back() -> None:
    bucket = Bucket(interval=1.0, burst=3)
    bucket.block_until(5.0)
    assert bucket.ready_at(0.0) == 5.0


def limiter(**kw: float) -> SendLimiter:
    return SendLimiter(SendLimits(**kw))  # type: ignore[arg-type]


def send(lim: SendLimiter, chat: int, group: bool, now: float) -> float:
    """What the sender does, one send at a time: wait for the chat, then the global bucket, take both."""
    at = lim.global_ready_at(lim.chat_ready_at(chat, group, now))
    lim.take_global(at)
    lim.commit_chat(chat, group, at)
    return at


def test_one_chat_gets_one_message_per_second() -> None:
    lim = limiter()
    now, times = 0.0, []
    for _ in range(4):
        now = send(lim, 1, False, now)
        times.append(now)
    assert times == [0.0, 1.0, 2.0, 3.0]


def test_many_chats_share_the_global_rate_in_order() -> None:
    lim = limiter(global_per_second=10.0)
    times = [send(lim, chat, False, 0.0) for chat in range(20)]
    assert times == pytest.approx([i / 10 for i in range(20)])


def test_groups_also_have_a_per_minute_budget() -> None:
    lim = limiter(per_group_per_minute=6.0, per_group_burst=2, per_chat_per_second=100.0, global_per_second=100.0)
    times = [send(lim, -5, True, 0.0) for _ in range(4)]
    assert times == pytest.approx([0.0, 0.01, 10.0, 20.0])
    assert lim.chat_ready_at(5, False, 0.0) == 0.0  # a private chat's own buckets are not held up by it


def test_try_take_only_when_everything_is_free_now() -> None:
    lim = limiter()
    assert lim.try_take(1, False, 0.0)
    assert not lim.try_take(1, False, 0.5)  # the chat has no token
    assert lim.try_take(2, False, 0.5)
    lim.take_global(0.5)  # the global bucket is spent: live previews yield to real sends
    assert not lim.try_take(3, False, 0.5)


def test_pause_chat_defers_only_that_chat() -> None:
    lim = limiter()
    lim.pause_chat(1, 7.0)
    assert lim.chat_ready_at(1, False, 0.0) == 7.0
    assert lim.chat_ready_at(2, False, 0.0) == 0.0


def test_full_buckets_are_pruned() -> None:
    lim = limiter(global_per_second=10_000.0)
    for chat in range(3000):
        send(lim, chat, False, chat * 0.001)
    assert len(lim) < 3000
    lim.prune(1000.0)
    assert len(lim) == 0


def simulate(lim: SendLimiter, requests: list[tuple[float, int]], lateness: float = 0.0) -> list[tuple[float, int]]:
    """Event-driven run of the sender's steps: one send at a time per chat, chats ready for the global
    bucket queue for it in order; every wake-up is `lateness` seconds late. Returns (sent at, chat)."""
    events: list[tuple[float, int, str, int]] = []
    queues: dict[int, list[float]] = {}
    for n, (arrival, chat) in enumerate(requests):
        heapq.heappush(events, (arrival, n, "arrive", chat))
    busy: set[int] = set()
    global_queue: list[int] = []
    global_busy = False
    sent: list[tuple[float, int]] = []
    n = len(requests)

    def schedule(at: float, kind: str, chat: int) -> None:
        nonlocal n
        n += 1
        heapq.heappush(events, (at, n, kind, chat))

    while events:
        now, _, kind, chat = heapq.heappop(events)
        if kind == "arrive":
            queues.setdefault(chat, []).append(now)
        elif kind == "chat_ready":
            global_queue.append(chat)
        else:  # "go": the head of the global queue wakes up and sends
            lim.take_global(now)
            lim.commit_chat(chat, chat < 0, now)
            sent.append((now, chat))
            busy.discard(chat)
            global_busy = False
        if not global_busy and global_queue:
            head = global_queue.pop(0)
            global_busy = True
            schedule(lim.global_ready_at(now) + lateness, "go", head)
        for waiting in [c for c, q in queues.items() if q and c not in busy]:
            queues[waiting].pop(0)
            busy.add(waiting)
            schedule(lim.chat_ready_at(waiting, waiting < 0, now) + lateness, "chat_ready", waiting)
    return sent


@pytest.mark.parametrize(("seed", "lateness"), [(1, 0.0), (2, 0.0), (3, 0.05), (4, 0.5)])
def test_a_random_workload_never_trips_the_fakes_flood_control(seed: int, lateness: float) -> None:
    """Our buckets with default limits against the fake's Telegram-like ones: zero violations, also when
    every wake-up comes late (a busy process)."""
    rng = random.Random(seed)
    chats = [*range(1, 60), *range(-20, 0)]
    requests = sorted((rng.uniform(0, 120), rng.choice(chats)) for _ in range(3000))
    sent = simulate(limiter(), requests, lateness)
    assert len(sent) == len(requests)
    flood = FloodControl(RateLimits())
    for at, chat in sorted(sent):
        assert flood.check(chat, chat < 0, at) is None, (at, chat)
    assert flood.violations == 0


def test_the_global_rate_is_used_fully_when_chats_are_many() -> None:
    requests = [(0.0, chat) for chat in range(1, 301)]
    sent = simulate(limiter(global_per_second=30.0), requests)
    assert max(at for at, _ in sent) == pytest.approx(299 / 30)
