"""Pure tests of the fake's flood control (time is passed in explicitly)."""

from afactors_telegram.testing.ratelimit import GLOBAL, FloodControl, RateLimits


def test_private_chat_allows_a_burst_then_one_per_second() -> None:
    flood = FloodControl(RateLimits(per_chat_burst=3))
    assert [flood.check(1, False, 0.0) for _ in range(3)] == [None, None, None]
    assert flood.check(1, False, 0.0) == 1
    assert flood.violations == 1
    assert flood.check(1, False, 0.5) == 1, "a retry inside the flood wait is refused again"
    assert flood.violations == 2
    assert flood.check(1, False, 1.0) is None, "after retry_after the chat may send again"
    assert flood.check(2, False, 1.0) is None, "other chats are not affected"
    assert flood.violations_by_chat == {1: 2}


def test_groups_are_limited_to_twenty_per_minute() -> None:
    flood = FloodControl(RateLimits(per_chat_per_second=100, per_chat_burst=100, per_group_per_minute=20))
    assert all(flood.check(-5, True, i * 0.01) is None for i in range(20))
    assert flood.check(-5, True, 0.2) == 3  # one token per 3 s


def test_global_limit_covers_all_chats() -> None:
    flood = FloodControl(RateLimits(global_per_second=30, global_burst=30))
    assert all(flood.check(chat, False, 0.0) is None for chat in range(30))
    assert flood.check(99, False, 0.0) == 1
    assert flood.check(100, False, 0.5) == 1, "the flood wait is global"
    assert flood.check(100, False, 1.0) is None


def test_unenforced_limits_only_count() -> None:
    flood = FloodControl(RateLimits(per_chat_burst=1, enforce=False))
    assert [flood.check(1, False, 0.0) for _ in range(4)] == [None] * 4
    assert flood.violations == 3


def test_imposed_waits_apply_without_limits() -> None:
    flood = FloodControl(None)
    assert all(flood.check(1, False, 0.0) is None for _ in range(1000))
    flood.impose(1, 5, now=0.0)
    assert flood.check(1, False, 1.0) == 4
    assert flood.check(2, False, 1.0) is None
    flood.impose(GLOBAL, 2, now=10.0)
    assert flood.check(2, False, 10.5) == 2
    assert flood.violations == 2
