"""Cron schedules: parsing errors and the next firing time, with daylight saving changes (an injected clock)."""

from __future__ import annotations

from datetime import datetime

import pytest

from afactors.model import Cron, CronError, Timer, TimerError, TurnTimers, new_timer
from afactors.model.cron import zone

BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")


def fires(expression: str, start: datetime, count: int, tz=BERLIN) -> list[str]:
    cron = Cron.parse(expression)
    at = start.timestamp()
    out = []
    for _ in range(count):
        at = cron.next_after(at, tz)
        out.append(datetime.fromtimestamp(at, tz).isoformat())
    return out


def test_daily_at_nine_keeps_wall_time_across_spring_forward() -> None:
    got = fires("0 9 * * *", datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), 3)
    assert got == ["2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]


def test_daily_at_nine_keeps_wall_time_across_fall_back_new_york() -> None:
    got = fires("0 9 * * *", datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK), 2, NEW_YORK)
    assert got == ["2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00"]


def test_a_wall_time_in_the_gap_fires_after_the_jump_once() -> None:
    got = fires("30 2 * * *", datetime(2026, 3, 28, 3, 0, tzinfo=BERLIN), 3)
    assert got == ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]


def test_a_repeated_wall_time_fires_once_for_a_fixed_hour() -> None:
    got = fires("30 2 * * *", datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN), 2)
    assert got == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_an_hourly_schedule_fires_every_real_hour_through_fall_back() -> None:
    got = fires("30 * * * *", datetime(2026, 10, 25, 0, 45, tzinfo=BERLIN), 4)
    assert got == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:30:00+01:00",
    ]


def test_an_hourly_schedule_skips_the_missing_hour_of_spring_forward() -> None:
    got = fires("0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 3)
    assert got == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("*/15 * * * *", datetime(2026, 1, 1, 10, 7), "2026-01-01T10:15:00+01:00"),
        ("0 9 * * mon-fri", datetime(2026, 1, 2, 10, 0), "2026-01-05T09:00:00+01:00"),  # Fri after 9 -> Mon
        ("0 0 29 feb *", datetime(2026, 1, 1), "2028-02-29T00:00:00+01:00"),
        ("0 12 1 * 0", datetime(2026, 2, 2), "2026-02-08T12:00:00+01:00"),  # day 1 OR Sunday
        ("@monthly", datetime(2026, 1, 15), "2026-02-01T00:00:00+01:00"),
        ("0 8 * * 7", datetime(2026, 1, 1), "2026-01-04T08:00:00+01:00"),  # 7 is Sunday too
        ("5 4 1-10/3 jan,jul *", datetime(2026, 1, 2), "2026-01-04T04:05:00+01:00"),
    ],
)
def test_next_firing(expression: str, start: datetime, expected: str) -> None:
    assert fires(expression, start.replace(tzinfo=BERLIN), 1) == [expected]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day of week: 8"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "'x' is not a number"),
        ("0 0 30 feb *", "no day that exists"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(expression)


def test_unknown_time_zone() -> None:
    with pytest.raises(TimerError, match="unknown time zone 'Mars/Olympus'"):
        new_timer(now=0, cron="@daily", timezone="Mars/Olympus")


def test_a_schedule_skips_missed_occurrences_when_it_fires_late() -> None:
    start = datetime(2026, 3, 1, 0, 0, tzinfo=BERLIN).timestamp()
    timer = new_timer(now=start, cron="0 * * * *", timezone="Europe/Berlin")
    assert datetime.fromtimestamp(timer.due_at, BERLIN).hour == 1
    late = timer.following(now=start + 5 * 3600 + 60)  # fired five hours late (the host was down)
    assert late is not None and late.fired == 1
    assert datetime.fromtimestamp(late.due_at, BERLIN).isoformat() == "2026-03-01T06:00:00+01:00"
    assert new_timer(now=start, after=10).following(now=start + 10) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of at, after or cron"),
        ({"after": 1, "at": 2}, "exactly one"),
        ({"after": -1}, "zero or more"),
        ({"after": "soon"}, "number of seconds"),
        ({"at": datetime(2026, 1, 1)}, "aware datetime"),
        ({"at": float("nan")}, "epoch seconds"),
        ({"after": 1, "timezone": "UTC"}, "timezone goes with cron"),
        ({"after": 1, "id": "a/b"}, "timer id 'a/b'"),
        ({"after": 1, "payload": [1]}, "payload must be a JSON object"),
        ({"after": 1, "payload": {"x": object()}}, "payload is not JSON"),
        ({"after": 1, "payload": {"x": "y" * 70_000}}, "the limit is"),
        ({"at": 1e20}, "after the year 9999"),
        ({"after": float("inf")}, "after the year 9999"),
    ],
)
def test_bad_timers_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TimerError, match=message):
        new_timer(now=100.0, **kwargs)  # type: ignore[arg-type]


def test_turn_timers_record_changes_over_the_committed_ones() -> None:
    committed = [Timer(id="a", due_at=50.0), Timer(id="b", due_at=10.0)]
    loads: list[int] = []

    def loader() -> list[Timer]:
        loads.append(1)
        return committed

    book = TurnTimers(loader, clock=lambda: 1000.0)
    new = book.after(5, id="c", payload={"n": 1})
    assert new.due_at == 1005.0 and book.changes == {"c": new}
    assert book.cancel("a") and not book.cancel("zzz")
    assert [t.id for t in book.list()] == ["b", "c"]
    assert book.get("a") is None and book.get("b") == committed[1]
    assert len(loads) == 1
