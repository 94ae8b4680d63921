"""Cron schedules with a time zone: parsing and the next firing time (pure; the clock is an argument).

Five fields, `minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a step `*/n`,
`a-b/n` or `a/n`, or a comma list of those; months and weekdays also by name (`jan`, `mon`); weekday 0 and 7
are Sunday. When both day fields are restricted a day matches either (classic cron). `@hourly`, `@daily`
(`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`) stand for their usual expansions.

Daylight saving time: a schedule fires at wall-clock times of its zone. A wall time that does not exist (the
spring-forward gap) fires as late as the gap is long (02:30 becomes 03:30 that day); a wall time that happens
twice (fall back) fires once, the first time, unless the hour field is `*`, in which case it fires at both
(an hourly schedule keeps firing every hour).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: n for n, name in enumerate(_MONTH_NAMES, start=1)}
_WEEKDAYS = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (  # name, low, high, names
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most each month can have
_HORIZON_DAYS = 366 * 8 + 2  # a Feb 29 comes round within 8 years
_UTC = ZoneInfo("UTC")


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says which part and why."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. "Europe/Berlin"); raises `CronError` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r}") from exc


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    number = names.get(text.lower())
    if number is None:
        if not text.isdigit():
            raise CronError(f"{field}: {text!r} is not a number")
        number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field}: {number} is outside {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, low, high, names, field), _value(last, low, high, names, field)
            if start > end:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, low, high, names, field)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@attrs.frozen
class Cron:
    """A parsed cron expression (`Cron.parse`); `next_after` gives its next firing time in a zone."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool
    every_hour: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse a five-field expression or a macro; raises `CronError` with the offending field."""
        text = _MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != len(_FIELDS):
            raise CronError(f"a cron expression has 5 fields (minute hour day month weekday), not {len(parts)}")
        sets = [_field(part, *spec[:3], spec[3]) for part, spec in zip(parts, _FIELDS, strict=True)]
        minutes, hours, days, months, weekdays = sets
        any_day, any_weekday = parts[2] == "*", parts[4] == "*"
        if any_weekday and not any(day <= _DAYS_IN_MONTH[month - 1] for day in days for month in months):
            raise CronError(f"{expression!r} names no day that exists in its months")
        return cls(
            expression=expression, minutes=tuple(sorted(minutes)), hours=tuple(sorted(hours)), days=days,
            months=months, weekdays=frozenset(d % 7 for d in weekdays), any_day=any_day, any_weekday=any_weekday,
            every_hour=parts[1] == "*",
        )  # fmt: skip

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def next_after(self, after: float, tz: ZoneInfo = _UTC) -> float:
        """The first firing time strictly after the epoch time `after`, as an epoch time, in zone `tz`."""
        start = datetime.fromtimestamp(after, tz).date()
        for offset in range(_HORIZON_DAYS):
            day = start + timedelta(days=offset)
            if self._day_matches(day):
                found = self._first_in_day(day, after, tz)
                if found is not None:
                    return found
        raise CronError(f"{self.expression!r} does not fire within {_HORIZON_DAYS // 366} years")

    def _first_in_day(self, day: date, after: float, tz: ZoneInfo) -> float | None:
        best: float | None = None
        best_hour = 0
        for hour in self.hours:
            if best is not None and hour > best_hour + 2:
                break  # nothing later in the day can come first, however the clocks moved
            for minute in self.minutes:
                for at in _instants(datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz), self.every_hour):
                    if at > after and (best is None or at < best):
                        best, best_hour = at, hour
        return best


def _instants(wall: datetime, both_folds: bool) -> tuple[float, ...]:
    """The epoch times a wall-clock time stands for: one, or two in a fall-back hour when `both_folds`.

    A wall time in a spring-forward gap reads with the offset before the jump, so it lands after the gap.
    """
    first = wall.timestamp()
    if not both_folds:
        return (first,)
    second = wall.replace(fold=1).timestamp()
    return (first, second) if second > first else (first,)  # in a gap, fold 1 reads earlier: not a second time
